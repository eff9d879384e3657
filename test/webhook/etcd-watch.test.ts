/**
 * The etcd watch trigger source against a real etcd: which writes trigger, resuming after etcd
 * restarts without missing a change, and starting over when the history was compacted.
 *
 * "Did not trigger" is never judged by waiting: a triggering write made afterwards comes in
 * revision order, so once its record is there every earlier event has been handled.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configSchema, type Config } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics, type Metrics } from '../../core/metrics.js';
import type { Change, ChangeRecorder } from '../../core/queue/contract.js';
import { COMPACTED_RESOURCE, startEtcdWatch, type EtcdWatch } from '../../webhook/etcd-watch.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort, waitFor } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

/** Generous: a reconnect waits out the client's backoff and circuit breaker. */
const WAIT_MS = 60_000;

class RecordingRecorder implements ChangeRecorder {
  readonly changes: Change[] = [];
  record(change: Change): void {
    this.changes.push(change);
  }
  resources(): string[] {
    return this.changes.map((c) => c.resource ?? '');
  }
}

interface Running {
  watch: EtcdWatch;
  recorder: RecordingRecorder;
  metrics: Metrics;
  logs: () => string;
}

function configFor(endpoint: string, watch: Config['watch'] | undefined = undefined): Config {
  return configSchema.parse({ etcd: { endpoints: [endpoint], dialTimeout: '2s' }, watch: { enabled: true, ...watch } });
}

function run(config: Config): Running {
  const recorder = new RecordingRecorder();
  const metrics = createMetrics({ defaultMetrics: false });
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged += chunk.toString('utf8');
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination: sink });
  return { watch: startEtcdWatch({ config, recorder, log, metrics }), recorder, metrics, logs: () => logged };
}

async function untilRecorded(r: Running, resource: string): Promise<void> {
  await waitFor(
    `a record for ${resource} (have ${JSON.stringify(r.recorder.resources())})`,
    () => Promise.resolve(r.recorder.resources().includes(resource)),
    WAIT_MS,
  );
}

async function untilWatching(w: EtcdWatch, watching = true): Promise<void> {
  await waitFor(
    `the watch to be ${watching ? 'open' : 'closed'}`,
    () => Promise.resolve(w.watching === watching),
    WAIT_MS,
  );
}

async function counter(
  metrics: Metrics,
  name: 'triggers' | 'triggersIgnored',
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metrics[name].get();
  const hit = values.find((v) => {
    const have: Record<string, string | number | undefined> = v.labels;
    return Object.entries(labels).every(([k, want]) => have[k] === want);
  });
  return hit?.value ?? 0;
}

async function put(etcd: EtcdServer, key: string, value = '{}'): Promise<number> {
  const res = await etcd.client.put(key).value(value).exec();
  return Number(res.header.revision);
}

describe('etcd watch: what triggers', () => {
  let etcd: EtcdServer;
  let r: Running;

  before(async () => {
    etcd = await startEtcd();
    // A write before the watch starts is history: it must not trigger.
    await put(etcd, '/registry/configmaps/shop/before');
    r = run(configFor(etcd.endpoint));
    await untilWatching(r.watch);
  });

  after(async () => {
    await r?.watch.stop();
    await etcd?.stop();
  });

  test('puts and deletes under the prefix trigger; ignored prefixes and other keys do not', async () => {
    await put(etcd, '/registry/leases/kube-node-lease/node-1');
    await put(etcd, '/registry/events/shop/web.17a');
    await put(etcd, '/registry/masterleases/10.0.0.1');
    await put(etcd, '/other/deployments/shop/web');
    await put(etcd, '/registry/deployments/shop/web');
    await put(etcd, '/registry/cert-manager.io/certificates/shop/tls');
    await etcd.client.delete().key('/registry/configmaps/shop/before').exec();
    const last = await put(etcd, '/registry/namespaces/sentinel');
    await untilRecorded(r, 'namespaces sentinel');

    assert.deepEqual(r.recorder.resources(), [
      'deployments shop/web',
      'cert-manager.io/certificates shop/tls',
      'configmaps shop/before',
      'namespaces sentinel',
    ]);
    for (const change of r.recorder.changes) {
      assert.equal(change.source, 'etcd-watch');
      assert.ok(change.at instanceof Date && !Number.isNaN(change.at.getTime()));
    }
    assert.equal(r.watch.nextRevision, last + 1);
    assert.equal(await counter(r.metrics, 'triggersIgnored', { source: 'etcd-watch', reason: 'ignored-prefix' }), 3);
    assert.equal(await counter(r.metrics, 'triggers', { source: 'etcd-watch', result: 'counted' }), 4);
  });

  test('values never reach the records or the logs', async () => {
    const secret = 'c3VwZXItc2VjcmV0LXZhbHVl-must-not-leak';
    await put(etcd, '/registry/secrets/shop/db', secret);
    await untilRecorded(r, 'secrets shop/db');
    assert.ok(!JSON.stringify(r.recorder.changes).includes(secret));
    assert.ok(!r.logs().includes(secret));
  });

  test('one transaction of many keys leads to a few records, not one per key', async () => {
    const before = r.recorder.changes.length;
    const txn = etcd.client.if('/registry/nothing', 'Version', '==', 0);
    const ops = Array.from({ length: 20 }, (_, i) => etcd.client.put(`/registry/configmaps/bulk/cm-${i}`).value('{}'));
    await txn.then(...ops).commit();
    await put(etcd, '/registry/namespaces/after-bulk');
    await untilRecorded(r, 'namespaces after-bulk');
    const bulk = r.recorder
      .resources()
      .slice(before)
      .filter((s) => s.startsWith('configmaps bulk/'));
    assert.ok(bulk.length >= 1 && bulk.length < 20, `bulk records: ${bulk.length}`);
    assert.ok((await counter(r.metrics, 'triggers', { source: 'etcd-watch', result: 'counted' })) >= 4 + 1 + 20 + 1);
  });
});

describe('etcd watch: reconnects', () => {
  let data: { path: string; remove: () => Promise<void> };
  const servers: EtcdServer[] = [];
  const watches: EtcdWatch[] = [];

  before(async () => {
    data = await tempDir('etcd-watch');
  });

  after(async () => {
    for (const w of watches) await w.stop();
    for (const s of servers) await s.stop();
    await data?.remove();
  });

  async function start(dataDir: string, clientPort?: number): Promise<EtcdServer> {
    const server = await startEtcd({ dataDir, ...(clientPort ? { clientPort } : {}) });
    servers.push(server);
    return server;
  }

  test('after etcd restarts, writes made while the watch was away still trigger', async () => {
    const dataDir = join(data.path, 'restart');
    const port = await freePort();
    let etcd = await start(dataDir, port);
    const r = run(configFor(etcd.endpoint));
    watches.push(r.watch);
    await untilWatching(r.watch);
    await put(etcd, '/registry/pods/shop/a');
    await untilRecorded(r, 'pods shop/a');

    await etcd.stop();
    await untilWatching(r.watch, false);
    // The same data on another port: writes the watch cannot see as they happen.
    etcd = await start(dataDir);
    await put(etcd, '/registry/pods/shop/b');
    await etcd.client.delete().key('/registry/pods/shop/a').exec();
    const last = await put(etcd, '/registry/pods/shop/c');
    await etcd.stop();

    await start(dataDir, port);
    await untilRecorded(r, 'pods shop/c');
    assert.deepEqual(r.recorder.resources(), ['pods shop/a', 'pods shop/b', 'pods shop/a', 'pods shop/c']);
    assert.equal(r.watch.nextRevision, last + 1);
    assert.ok(r.watch.watching);
  });

  test('when the history was compacted meanwhile, it triggers and watches on from the current revision', async () => {
    const dataDir = join(data.path, 'compact');
    const port = await freePort();
    let etcd = await start(dataDir, port);
    const r = run(configFor(etcd.endpoint));
    watches.push(r.watch);
    await untilWatching(r.watch);
    await put(etcd, '/registry/pods/shop/a');
    await untilRecorded(r, 'pods shop/a');

    await etcd.stop();
    await untilWatching(r.watch, false);
    etcd = await start(dataDir);
    await put(etcd, '/registry/pods/shop/lost-1');
    const compactedAt = await put(etcd, '/registry/pods/shop/lost-2');
    await etcd.client.kv.compact({ revision: compactedAt, physical: true });
    await etcd.stop();

    etcd = await start(dataDir, port);
    await untilRecorded(r, COMPACTED_RESOURCE);
    await untilWatching(r.watch);
    assert.ok(r.watch.nextRevision > compactedAt, `next ${r.watch.nextRevision} after compaction at ${compactedAt}`);
    assert.match(r.logs(), /compacted/);

    const after = await put(etcd, '/registry/pods/shop/after');
    await untilRecorded(r, 'pods shop/after');
    assert.equal(r.watch.nextRevision, after + 1);
    assert.equal(r.recorder.resources().filter((s) => s === COMPACTED_RESOURCE).length, 1);
  });
});

describe('etcd watch: lifecycle', () => {
  test('stop() returns while etcd is unreachable, and the watch never claims to be open', async () => {
    const r = run(configFor(`http://127.0.0.1:${await freePort()}`));
    await waitFor('a failed attempt to be logged', () => Promise.resolve(r.logs().includes('retrying')), WAIT_MS);
    assert.equal(r.watch.watching, false);
    assert.equal(r.watch.nextRevision, 0);
    await r.watch.stop();
    assert.equal(r.watch.watching, false);
  });

  test('an https endpoint without etcd.cacert fails at start, naming the field', () => {
    assert.throws(
      () => run(configFor('https://127.0.0.1:2379')),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /etcd\.cacert/);
        return true;
      },
    );
  });
});
