/**
 * The snapshot's own gRPC reader: framing and protobuf parsing over chunks split anywhere, and the
 * HTTP/2 side against a local h2c server standing in for etcd (status in trailers, trailers-only
 * errors, the token header, cancel on abort). Real etcd: test/worker/snapshot.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { IntegrityError } from '../../core/errors.js';
import { openSnapshotHttp2, SnapshotFramingError, SnapshotResponseParser } from '../../worker/snapshot-http2.js';

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** One gRPC-framed SnapshotResponse, fields in the order given (as etcd: header, remaining_bytes, blob). */
function message(fields: { header?: Buffer; remaining?: number; blob?: Buffer; extra?: Buffer }): Buffer {
  const parts: Buffer[] = [];
  if (fields.header) parts.push(Buffer.from([0x0a]), varint(fields.header.length), fields.header);
  if (fields.remaining !== undefined) parts.push(Buffer.from([0x10]), varint(fields.remaining));
  if (fields.extra) parts.push(fields.extra);
  if (fields.blob) parts.push(Buffer.from([0x1a]), varint(fields.blob.length), fields.blob);
  const body = Buffer.concat(parts);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** A header as etcd sends it: cluster_id, member_id, revision, raft_term (varints). */
const HEADER = Buffer.concat([
  Buffer.from([0x08]),
  varint(2 ** 40 + 7),
  Buffer.from([0x10]),
  varint(12345),
  Buffer.from([0x18]),
  varint(99),
]);

const db = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) % 256));
const trailer = Buffer.alloc(32, 0xab);
/** A snapshot of three messages: the database in two blobs, then the trailer. */
const wire = Buffer.concat([
  message({ header: HEADER, remaining: 3000, blob: db.subarray(0, 2000) }),
  message({ header: HEADER, remaining: 0, blob: db.subarray(2000) }),
  message({ header: HEADER, blob: trailer }),
]);

function parse(input: Buffer, sizes: number[]): { out: Buffer; parser: SnapshotResponseParser; expected: number[] } {
  const expected: number[] = [];
  const parser = new SnapshotResponseParser((n) => expected.push(n));
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < input.length; i++) {
    const size = sizes[i % sizes.length] as number;
    parser.write(input.subarray(at, at + size), (b) => out.push(b));
    at += size;
  }
  parser.end();
  return { out: Buffer.concat(out), parser, expected };
}

describe('SnapshotResponseParser', () => {
  test('the blobs in order and the announced total, whatever the split (prefix, varints and blobs split too)', () => {
    for (const sizes of [[1], [2], [3, 7], [5], [4096], [wire.length], [6, 1, 2000, 13]]) {
      const { out, parser, expected } = parse(wire, sizes);
      assert.ok(out.equals(Buffer.concat([db, trailer])), `split ${sizes.join(',')}: bytes differ`);
      assert.equal(parser.messages, 3);
      assert.deepEqual(expected, [2000 + 3000 + 32], 'announced once, from the first message');
    }
  });

  test('blob bytes are slices of the input, not copies', () => {
    const input = Buffer.from(wire);
    const slices: Buffer[] = [];
    const parser = new SnapshotResponseParser();
    parser.write(input, (b) => slices.push(b));
    assert.equal(slices[0]?.buffer, input.buffer);
  });

  test('unknown fields (varint, fixed64, fixed32, bytes) are skipped, empty messages allowed', () => {
    const extra = Buffer.concat([
      Buffer.from([0x20]),
      varint(300),
      Buffer.from([0x29]),
      Buffer.alloc(8, 1),
      Buffer.from([0x35]),
      Buffer.alloc(4, 2),
      Buffer.from([0x3a, 3, 9, 9, 9]),
    ]);
    const input = Buffer.concat([
      message({ remaining: 1, blob: Buffer.from('ab'), extra }),
      message({}),
      message({ blob: Buffer.from('c') }),
      message({ blob: Buffer.alloc(32, 7) }),
    ]);
    const { out, expected } = parse(input, [1]);
    assert.ok(out.equals(Buffer.concat([Buffer.from('abc'), Buffer.alloc(32, 7)])));
    assert.deepEqual(expected, [2 + 1 + 32]);
  });

  test('a short stream, one cut inside a message, and an empty one are integrity errors', () => {
    const short = wire.subarray(0, wire.length - message({ header: HEADER, blob: trailer }).length);
    assert.throws(
      () => parse(short, [100]),
      (e: unknown) => e instanceof IntegrityError && /got 5000 of 5032/.test(e.message),
    );
    assert.throws(() => parse(wire.subarray(0, wire.length - 1), [100]), /in the middle of a message/);
    assert.throws(() => new SnapshotResponseParser().end(), /without sending any data/);
  });

  test('compressed messages and fields overrunning their message are framing errors', () => {
    const compressed = Buffer.from(wire);
    compressed[0] = 1;
    assert.throws(() => parse(compressed, [10]), SnapshotFramingError);
    const overrun = message({ blob: Buffer.from('abcd') });
    overrun.writeUInt32BE(overrun.length - 5 - 2, 1);
    assert.throws(() => parse(overrun, [3]), /overruns its message/);
  });
});

interface FakeEtcd {
  endpoint: string;
  requests: http2.IncomingHttpHeaders[];
  closed: Promise<void>;
  close(): Promise<void>;
}

/** An h2c server answering the snapshot call with `respond`; `closed` resolves when a call's stream closed. */
async function fakeEtcd(respond: (stream: http2.ServerHttp2Stream) => void): Promise<FakeEtcd> {
  const server = http2.createServer();
  const requests: http2.IncomingHttpHeaders[] = [];
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  server.on('stream', (stream, headers) => {
    requests.push(headers);
    stream.on('error', () => undefined);
    stream.on('close', () => markClosed());
    respond(stream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    closed,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const OK_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };

describe('openSnapshotHttp2', () => {
  test('reads messages spanning DATA frames, sends the token, ends on grpc-status 0', async () => {
    const etcd = await fakeEtcd((stream) => {
      stream.respond(OK_HEADERS, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      // DATA frames that cut through prefixes, keys and blobs.
      for (const [a, b] of [
        [0, 3],
        [3, 10],
        [10, 2100],
        [2100, 2107],
        [2107, wire.length],
      ])
        stream.write(wire.subarray(a, b));
      stream.end();
    });
    try {
      let expected: number | undefined;
      const s = await openSnapshotHttp2({
        endpoint: etcd.endpoint,
        window: 1024 * 1024,
        token: 'tok-123',
        onExpected: (n) => (expected = n),
      });
      assert.ok((await readAll(s)).equals(Buffer.concat([db, trailer])));
      assert.equal(expected, 5032);
      assert.equal(etcd.requests[0]?.[':path'], '/etcdserverpb.Maintenance/Snapshot');
      assert.equal(etcd.requests[0]?.token, 'tok-123');
    } finally {
      await etcd.close();
    }
  });

  test('an error status in the trailers fails the stream with etcd’s message, even after data', async () => {
    const etcd = await fakeEtcd((stream) => {
      stream.respond(OK_HEADERS, { waitForTrailers: true });
      stream.on('wantTrailers', () =>
        stream.sendTrailers({ 'grpc-status': '14', 'grpc-message': 'etcdserver%3A%20snapshot%20failed' }),
      );
      stream.end(wire.subarray(0, 2100));
    });
    try {
      const s = await openSnapshotHttp2({ endpoint: etcd.endpoint, window: 1024 * 1024 });
      await assert.rejects(readAll(s), /etcd: etcdserver: snapshot failed \(gRPC status 14\)/);
    } finally {
      await etcd.close();
    }
  });

  test('a complete stream without grpc-status is not taken as a success', async () => {
    const etcd = await fakeEtcd((stream) => {
      stream.respond(OK_HEADERS);
      stream.end(wire);
    });
    try {
      const s = await openSnapshotHttp2({ endpoint: etcd.endpoint, window: 1024 * 1024 });
      await assert.rejects(readAll(s), /without a gRPC status/);
    } finally {
      await etcd.close();
    }
  });

  test('a trailers-only error (e.g. a bad token) fails the start', async () => {
    const etcd = await fakeEtcd((stream) => {
      stream.respond(
        { ...OK_HEADERS, 'grpc-status': '16', 'grpc-message': 'etcdserver: invalid auth token' },
        { endStream: true },
      );
    });
    try {
      await assert.rejects(
        openSnapshotHttp2({ endpoint: etcd.endpoint, window: 1024 * 1024, token: 'old' }),
        /etcd: etcdserver: invalid auth token \(gRPC status 16\)/,
      );
    } finally {
      await etcd.close();
    }
  });

  test('aborting mid-stream fails the stream with the reason and cancels the call', async () => {
    const etcd = await fakeEtcd((stream) => {
      stream.respond(OK_HEADERS);
      stream.write(wire.subarray(0, 1000));
      // Then nothing: etcd still sending, as far as the client knows.
    });
    try {
      const controller = new AbortController();
      const s = await openSnapshotHttp2({ endpoint: etcd.endpoint, window: 1024 * 1024, signal: controller.signal });
      const reading = readAll(s);
      controller.abort(new Error('shutting down'));
      await assert.rejects(reading, /shutting down/);
      await etcd.closed;
    } finally {
      await etcd.close();
    }
  });

  test('nobody listening fails the start', async () => {
    const etcd = await fakeEtcd(() => undefined);
    await etcd.close();
    await assert.rejects(openSnapshotHttp2({ endpoint: etcd.endpoint, window: 1024 * 1024 }), /ECONNREFUSED/);
  });
});
