/**
 * The etcd watch against members that accept TCP and never answer (a hung etcd, a black-holed
 * link): real TCP listeners, a real etcd behind a proxy that can turn silent. The watch must
 * report the failure by etcd.dialTimeout, keep retrying, and never hang, neither at its first
 * read nor on a reconnect.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { configSchema } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import type { Change } from '../../core/queue/contract.js';
import { startEtcdWatch } from '../../webhook/etcd-watch.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { waitFor } from '../support/ports.js';

const DIAL_MS = 1_000;
/** Generous: waits for what must happen, never a bound on how fast. */
const WAIT_MS = 60_000;

interface LogLine {
  msg: string;
  error?: string;
  attempt?: number;
}

function watchWithLog(endpoint: string) {
  const lines: LogLine[] = [];
  const changes: Change[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  const config = configSchema.parse({
    etcd: { endpoints: [endpoint], dialTimeout: `${DIAL_MS}ms` },
    watch: { enabled: true },
  });
  const watch = startEtcdWatch({
    config,
    recorder: { record: (c) => changes.push(c) },
    log: createLogger({ level: 'debug', destination: sink }),
  });
  return { watch, lines, changes };
}

/**
 * A TCP proxy to etcd that can go silent: then every open connection is cut and new ones are
 * accepted and never answered, as by a member that hangs. Connections made while silent stay
 * silent after `pass()`, as a black-holed link would.
 */
async function silentableProxy(upstreamPort: number) {
  let silent = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined).on('close', () => sockets.delete(client));
    if (silent) return;
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy()).on('close', () => sockets.delete(upstream));
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    silence() {
      silent = true;
      for (const s of sockets) s.destroy();
    },
    pass() {
      silent = false;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd.stop();
});

test('a member that never answers: the first read fails by etcd.dialTimeout, is retried, and stop() does not hang', async () => {
  const proxy = await silentableProxy(Number(new URL(etcd.endpoint).port));
  proxy.silence();
  const w = watchWithLog(proxy.endpoint);
  try {
    const first = await waitFor(
      'the first failed read',
      () => Promise.resolve(w.lines.find((l) => l.msg.includes('reading the current revision failed'))),
      WAIT_MS,
    );
    // Our deadline, not the client's per-attempt one (which its retries multiplied by 3).
    assert.match(first.error ?? '', /no answer within the dial timeout \(etcd\.dialTimeout 1000 ms\)/);
    await waitFor(
      'more attempts',
      () => Promise.resolve(w.lines.some((l) => (l.attempt ?? 0) >= 3) || undefined),
      WAIT_MS,
    );
    assert.equal(w.watch.watching, false);
  } finally {
    await w.watch.stop();
    await proxy.stop();
  }
});

test('a reconnect that gets no answer is given up after etcd.dialTimeout and retried; no change is missed', async () => {
  const proxy = await silentableProxy(Number(new URL(etcd.endpoint).port));
  const w = watchWithLog(proxy.endpoint);
  const recorded = (resource: string) => () =>
    Promise.resolve(w.changes.some((c) => c.resource === resource) || undefined);
  try {
    await waitFor('the watch to be open', () => Promise.resolve(w.watch.watching || undefined), WAIT_MS);
    await etcd.client.put('/registry/configmaps/ns/before').value('1');
    await waitFor('the first change', recorded('configmaps ns/before'), WAIT_MS);

    proxy.silence();
    // Before the fix the library's reconnect waited for the silent member's answer with no deadline.
    await waitFor(
      'the stuck reconnect to be given up, naming the dial timeout',
      () =>
        Promise.resolve(
          w.lines.some((l) =>
            /no answer to the watch within the dial timeout \(etcd\.dialTimeout 1000 ms\)/.test(l.error ?? ''),
          ) || undefined,
        ),
      WAIT_MS,
    );
    // And tried again with a new connection, more than once while the member stays silent.
    await waitFor(
      'more attempts',
      () => Promise.resolve(w.lines.filter((l) => l.msg === 'etcd watch: watching').length >= 3 || undefined),
      WAIT_MS,
    );
    // A change made while the watch cannot see etcd is read once it is back, from the revision it left off.
    await etcd.client.put('/registry/configmaps/ns/during').value('1');
    proxy.pass();
    await waitFor('the change made meanwhile', recorded('configmaps ns/during'), WAIT_MS);
    assert.ok(w.watch.watching);
    assert.ok(w.lines.some((l) => l.msg.includes('reconnected, resuming')));
  } finally {
    await w.watch.stop();
    await proxy.stop();
  }
});
