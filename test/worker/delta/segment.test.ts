import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildChains,
  decodeEvent,
  encodeEvent,
  parseSegmentKey,
  segmentManifestKey,
  segmentObjectKey,
  type DeltaEvent,
  type DeltaManifest,
} from '../../../worker/delta/segment.js';
import { SegmentBuilder } from '../../../worker/delta/segment-write.js';
import { fakeDeltaManifest } from '../../support/manifests.js';

function manifest(first: number, last: number, follows = 'snap-a', startRevision = 101): DeltaManifest {
  return fakeDeltaManifest(first, last, { follows, startRevision }, (r) => new Date(r * 1000).toISOString());
}

describe('delta segment format', () => {
  it('round-trips binary keys and values, and deletes carry no value', () => {
    const put: DeltaEvent = {
      revision: 7,
      type: 'put',
      key: Buffer.from([0x2f, 0x00, 0xff, 0x0a]),
      value: Buffer.from([0x6b, 0x38, 0x73, 0x00, 0x0a]),
      createRevision: 5,
      version: 2,
      lease: '7587862072907296000',
      receivedAt: 1764633600123,
    };
    const line = encodeEvent(put);
    assert.equal(line.split('\n').length, 2, 'one line per event, newline-terminated');
    assert.deepEqual(decodeEvent(line.trim(), 'seg:1'), put);
    const del: DeltaEvent = { ...put, type: 'delete', value: Buffer.alloc(0), createRevision: 0, version: 0 };
    assert.doesNotMatch(encodeEvent(del), /"v"/);
    assert.deepEqual(decodeEvent(encodeEvent(del), 'seg:2'), del);
  });

  it('the builder copies lines into reused chunks: bodies are exact, lines may span chunks, released chunks serve the next segment', () => {
    const builder = new SegmentBuilder({ chunkBytes: 100 });
    const event = (revision: number, size: number): DeltaEvent => ({
      revision,
      type: 'put',
      key: Buffer.from(`/registry/k${revision}`),
      value: Buffer.alloc(size, revision),
      createRevision: revision,
      version: 1,
      lease: '0',
      receivedAt: 1764633600000 + revision,
    });
    const first = [event(1, 10), event(2, 150), event(3, 0), event(3, 40)];
    for (const e of first) builder.add(e);
    const a = builder.take();
    assert.ok(a);
    const body = Buffer.concat(a.chunks).toString('latin1');
    assert.equal(body, first.map(encodeEvent).join(''));
    assert.equal(a.bytes, body.length);
    assert.deepEqual([a.firstRevision, a.lastRevision, a.eventCount], [1, 3, 4]);
    assert.deepEqual(
      body
        .trimEnd()
        .split('\n')
        .map((l, i) => decodeEvent(l, `line ${i}`)),
      first,
    );
    assert.ok(a.chunks.length >= 3, 'a line longer than a chunk spans chunks');
    const memory = new Set(a.chunks.map((c) => c.buffer));
    a.release();
    const second = [event(4, 60), event(5, 60)];
    for (const e of second) builder.add(e);
    const b = builder.take();
    assert.ok(b);
    assert.equal(Buffer.concat(b.chunks).toString('latin1'), second.map(encodeEvent).join(''));
    assert.ok(
      b.chunks.every((c) => memory.has(c.buffer)),
      'the next segment reuses the released chunks',
    );
    assert.equal(builder.take(), undefined, 'empty after take');
  });

  it('names the segment in a decode error', () => {
    assert.throws(() => decodeEvent('{"r":1}', 'c/deltas/x line 3'), /c\/deltas\/x line 3: not a delta event/);
    assert.throws(() => decodeEvent('nope', 'c/deltas/x line 4'), /line 4: not a JSON event line/);
  });

  it('names sort by revision and parse back', () => {
    const a = segmentObjectKey('c', 9, 10, 'gzip', true);
    const b = segmentObjectKey('c', 11, 100, 'gzip', true);
    assert.equal(a, 'c/deltas/r00000000000000000009-r00000000000000000010.events.ndjson.gz.age');
    assert.ok(a < b);
    assert.deepEqual(parseSegmentKey(b), { firstRevision: 11, lastRevision: 100, kind: 'object' });
    assert.deepEqual(parseSegmentKey(segmentManifestKey('c', 11, 100)), {
      firstRevision: 11,
      lastRevision: 100,
      kind: 'manifest',
    });
    assert.equal(parseSegmentKey('c/deltas/gaps/r00000000000000000009.json'), undefined);
    assert.equal(parseSegmentKey('c/deltas/r00000000000000000010-r00000000000000000009.manifest.json'), undefined);
  });

  it('builds contiguous chains, splits at a gap and skips a wholly covered re-send', () => {
    const { chains, problems } = buildChains([
      manifest(151, 200),
      manifest(101, 150),
      manifest(120, 150), // re-sent range inside the first segment
      manifest(260, 300), // 201..259 missing
      manifest(401, 450, 'snap-b', 401),
    ]);
    assert.deepEqual(
      chains.map((c) => [c.follows, c.startRevision, c.endRevision, c.fromSnapshot, c.segments.length]),
      [
        ['snap-a', 101, 200, true, 2],
        ['snap-a', 260, 300, false, 1],
        ['snap-b', 401, 450, true, 1],
      ],
    );
    assert.deepEqual(problems, [{ kind: 'gap', follows: 'snap-a', expected: 201, found: 260 }]);
  });

  it('reports a partly overlapping segment instead of replaying events twice', () => {
    const { chains, problems } = buildChains([manifest(101, 150), manifest(140, 160)]);
    assert.equal(chains.length, 1);
    assert.equal(chains[0]?.endRevision, 150);
    assert.deepEqual(problems, [{ kind: 'overlap', follows: 'snap-a', expected: 151, found: 140 }]);
  });
});
