import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { configSchema } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { decodeAuditBatch, type AuditDecodeLimits } from '../../webhook/audit-decode.js';
import { AuditDecodePool, restartDelayMs } from '../../webhook/audit-decode-pool.js';
import { fixture } from './harness.js';

const filters = configSchema.parse({}).filters;
const limits: AuditDecodeLimits = { limit: 1024 * 1024, maxDepth: 16, maxItems: 5 };
const ARRIVAL = Date.parse('2030-01-01T00:00:00Z');
const mixed = Buffer.from(JSON.stringify(fixture('audit-eventlist-mixed.json')));
const list = (items: unknown): Buffer =>
  Buffer.from(JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items }));
const write = fixture<{ items: Array<Record<string, unknown>> }>('audit-eventlist-mixed.json').items[0] ?? {};
const { stageTimestamp: _s, requestReceivedTimestamp: _r, ...untimed } = write;

/** Each class of refusal with the status and message the sender gets. */
const REFUSED: Array<[string, Buffer, number, string]> = [
  [
    'not JSON',
    Buffer.from('hello'),
    400,
    'request body is not a valid JSON object; expected an audit.k8s.io/v1 EventList',
  ],
  [
    'broken JSON',
    Buffer.from('{"kind": '),
    400,
    'request body is not a valid JSON object; expected an audit.k8s.io/v1 EventList',
  ],
  [
    'wrong kind',
    Buffer.from('{"kind":"Pod","apiVersion":"v1"}'),
    400,
    'expected apiVersion audit.k8s.io/v1 or audit.k8s.io/v1beta1 and kind EventList, got apiVersion "v1" kind "Pod"',
  ],
  ['items not a list', list({}), 400, 'EventList.items must be an array of audit events'],
  [
    'too deep',
    list([JSON.parse('['.repeat(20) + ']'.repeat(20)) as unknown]),
    400,
    'request body nests objects and arrays deeper than 16 levels; raise webhook.maxJsonDepth to accept it',
  ],
  [
    'too many events',
    list([1, 2, 3, 4, 5, 6]),
    413,
    'request body holds more than 5 items; send smaller batches or raise webhook.auditMaxEvents',
  ],
];

test('decodeAuditBatch: the mixed batch gives its changes, the ignored reasons counted once each', () => {
  const decoded = decodeAuditBatch(mixed, { ...limits, maxItems: 1000 }, filters, ARRIVAL);
  assert.deepEqual(decoded, {
    ok: true,
    events: 9,
    changes: [
      { resource: 'pods default/nginx', atMs: Date.parse('2026-11-20T08:15:02.131Z') },
      { resource: 'apps/deployments shop/web', atMs: Date.parse('2026-11-20T08:15:03.019Z') },
      {
        resource: 'apiextensions.k8s.io/customresourcedefinitions certificates.cert-manager.io',
        atMs: Date.parse('2026-11-20T08:15:08.051Z'),
      },
    ],
    ignored: [
      ['stage', 1],
      ['verb', 1],
      ['resource', 2],
      ['status', 1],
      ['dry-run', 1],
    ].sort((a, b) => (decodedOrder(a) < decodedOrder(b) ? -1 : 1)),
  });
});

// The order reasons first appear in the fixture; asserted through the sorted expectation above.
function decodedOrder(entry: Array<string | number>): number {
  const decoded = decodeAuditBatch(mixed, { ...limits, maxItems: 1000 }, filters, ARRIVAL);
  return decoded.ok ? decoded.ignored.findIndex(([reason]) => reason === entry[0]) : -1;
}

test('decodeAuditBatch: malformed events, untimed events, filters and empty lists', () => {
  assert.deepEqual(decodeAuditBatch(list([untimed, 'junk']), limits, filters, ARRIVAL), {
    ok: true,
    events: 2,
    changes: [{ resource: 'pods default/nginx', atMs: ARRIVAL }],
    ignored: [['malformed', 1]],
  });
  const noPods = configSchema.parse({ filters: { ignoreResources: ['pods'] } }).filters;
  const filtered = decodeAuditBatch(list([untimed]), limits, noPods, ARRIVAL);
  assert.ok(filtered.ok);
  assert.deepEqual(filtered.changes, []);
  assert.deepEqual(filtered.ignored, [['resource', 1]]);
  for (const items of [[], null])
    assert.deepEqual(decodeAuditBatch(list(items), limits, filters, ARRIVAL), {
      ok: true,
      events: 0,
      changes: [],
      ignored: [],
    });
});

test('decodeAuditBatch: each refusal has its status and message', () => {
  for (const [what, body, status, message] of REFUSED) {
    const decoded = decodeAuditBatch(body, limits, filters, ARRIVAL);
    assert.ok(!decoded.ok, what);
    assert.deepEqual([decoded.status, decoded.message], [status, message], what);
  }
});

function quietLog(): { log: ReturnType<typeof createLogger>; text: () => string } {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), text: () => text };
}

async function untilReady(pool: AuditDecodePool, threads: number): Promise<void> {
  while (pool.threadsReady < threads) await new Promise((resolve) => setTimeout(resolve, 10));
}

test('the pool answers exactly as the inline decode for the same bodies', async () => {
  const pool = new AuditDecodePool({ threads: 2, limits, filters, log: quietLog().log });
  try {
    await untilReady(pool, 2);
    const bodies = [mixed, list([untimed, 'junk']), list(null), ...REFUSED.map(([, body]) => body)];
    const inline = bodies.map((body) => decodeAuditBatch(body, limits, filters, ARRIVAL));
    // Copies: the pool may move a body's memory to its thread.
    const pooled = await Promise.all(bodies.map((body) => pool.decode(Buffer.from(body), ARRIVAL)));
    assert.deepEqual(pooled, inline);
  } finally {
    await pool.close();
  }
});

test('a thread that dies fails its batch, is logged, and a fresh thread answers the next', async () => {
  const { log, text } = quietLog();
  const pool = new AuditDecodePool({
    threads: 1,
    limits,
    filters,
    log,
    entry: new URL('../support/dying-audit-thread.ts', import.meta.url),
  });
  try {
    await untilReady(pool, 1);
    await assert.rejects(pool.decode(Buffer.from('X'), ARRIVAL), /audit decode thread ended: exit code 3/);
    assert.match(text(), /audit decode thread ended; starting a new one/);
    await untilReady(pool, 1);
    const next = await pool.decode(list([untimed]), ARRIVAL);
    assert.deepEqual(next, {
      ok: true,
      events: 1,
      changes: [{ resource: 'pods default/nginx', atMs: ARRIVAL }],
      ignored: [],
    });
  } finally {
    await pool.close();
  }
});

test('restart delays: none after one death, then doubling from initialMs up to maxMs', () => {
  const backoff = { initialMs: 1000, maxMs: 60_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 7, 8, 100].map((deaths) => restartDelayMs(deaths, backoff)),
    [0, 1000, 2000, 4000, 32_000, 60_000, 60_000],
  );
});

test('a thread file that cannot load: restarts back off, batches decode on the event loop meanwhile', async () => {
  const { log, text } = quietLog();
  const pool = new AuditDecodePool({
    threads: 1,
    limits,
    filters,
    log,
    entry: new URL('../support/no-such-audit-thread.js', import.meta.url),
    restartBackoff: { initialMs: 100, maxMs: 200 },
  });
  try {
    // Never ready, so never sent a batch: every one is answered, inline.
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(
        await pool.decode(Buffer.from(mixed), ARRIVAL),
        decodeAuditBatch(mixed, limits, filters, ARRIVAL),
      );
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    assert.equal(pool.threadsReady, 0);
    const delays = text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; restartInMs?: number; error?: string })
      .filter((entry) => entry.msg.startsWith('audit decode thread ended'))
      .map((entry) => entry.restartInMs);
    // Without the backoff a missing file fails and restarts hundreds of times in these 750 ms.
    assert.ok(delays.length >= 3 && delays.length <= 8, `restarts: ${delays.join(', ')}`);
    assert.deepEqual(delays.slice(0, 3), [0, 100, 200]);
    assert.ok(
      delays.every((d) => d === 0 || d === 100 || d === 200),
      delays.join(', '),
    );
    assert.match(text(), /no-such-audit-thread/);
  } finally {
    await pool.close();
  }
});

test('closing the pool ends its threads: later batches are refused', async () => {
  const pool = new AuditDecodePool({ threads: 2, limits, filters, log: quietLog().log });
  assert.ok((await pool.decode(list([]), ARRIVAL)).ok);
  await pool.close();
  await assert.rejects(pool.decode(list([]), ARRIVAL), /closed/);
});
