/**
 * Hostile and broken requests against a real `etcd-autobackup webhook` process on real Redis:
 * truncated and wrong-typed bodies, deep nesting, huge arrays and strings, bad encodings, wrong
 * content types and methods, generated programmatically. For each: status, time and the
 * process's RSS after it; meanwhile an admission prober measures p99 latency. Afterwards a valid
 * audit batch and review must still work. Exit 1 on any 5xx or a broken valid request.
 *
 * Run: `npx tsx bench/bad-requests.ts` (env BAD_SMOKE=1: a few cases only).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { freePort, waitFor } from '../test/support/ports.js';
import { startRedis } from '../test/support/redis.js';

const ROOT = join(import.meta.dirname, '..');
const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', name), 'utf8')) as unknown;
const BATCH = fixture('audit-eventlist-mixed.json') as { items: unknown[] };
const REVIEW = fixture('admission-review-update.json') as { request: Record<string, unknown> };

interface Case {
  name: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

const json = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const MB = 1024 * 1024;

export function badCases(smoke: boolean): Case[] {
  const cases: Case[] = [];
  const both = ['/audit', '/admission'];
  const add = (c: Case) => cases.push(c);
  const good = (path: string) => (path === '/audit' ? json(BATCH) : json(REVIEW));
  for (const path of both) {
    const text = good(path).toString();
    for (const cut of [1, 10, 50, Math.floor(text.length / 2), text.length - 1])
      add({ name: `truncated at ${cut}`, path, body: json(text.slice(0, cut)) });
    for (const v of [null, 0, 1.5, true, 'x', [], [1, 2], {}, { kind: 7 }, { apiVersion: [] }])
      add({ name: `wrong type ${JSON.stringify(v)}`, path, body: json(v) });
    for (const field of path === '/audit' ? ['items', 'kind', 'apiVersion'] : ['request', 'kind', 'apiVersion'])
      for (const v of [null, 42, 'str', { a: 1 }, [[]]])
        add({
          name: `${field}=${JSON.stringify(v)}`,
          path,
          body: json({ ...(JSON.parse(text) as object), [field]: v }),
        });
    for (const depth of [100, 600, 10_000, 1_500_000])
      add({ name: `nested ${depth}`, path, body: json(`{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`) });
    for (const n of [1_001, 100_000, 1_500_000])
      add({
        name: `${n} items`,
        path,
        body: json(`{"apiVersion":"audit.k8s.io/v1","kind":"EventList","items":[${'{},'.repeat(n - 1)}{}]}`),
      });
    for (const size of [1 * MB, 2.9 * MB, 3.1 * MB, 11 * MB]) {
      const r = { ...REVIEW, request: { ...REVIEW.request, name: 'n'.repeat(size) } };
      add({
        name: `string ${size} bytes`,
        path,
        body: json(path === '/audit' ? { ...BATCH, pad: 'p'.repeat(size) } : r),
      });
    }
    const g = good(path);
    for (const [enc, body] of [
      ['gzip', Buffer.from('junk')],
      ['gzip', gzipSync(g).subarray(0, 20)],
      ['deflate', deflateSync(g).subarray(0, 15)],
      ['br', Buffer.from([1, 2, 3, 4, 5])],
      ['br', brotliCompressSync(g).subarray(0, 10)],
      ['compress', g],
      ['zstd', g],
      ['gzip, gzip', gzipSync(gzipSync(g))],
      ['gzip', gzipSync(Buffer.alloc(50 * MB, 0x20))],
    ] as const)
      add({ name: `encoding ${enc} (${body.length} bytes)`, path, headers: { 'content-encoding': enc }, body });
    for (const type of [
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/json; charset=latin1',
      '',
    ])
      add({ name: `content type "${type}"`, path, headers: { 'content-type': type }, body: g });
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
      add({ name: `method ${method}`, path, method, body: method === 'GET' ? undefined : g });
    // Malformed JSON text a parser must refuse without throwing past the route.
    for (const [name, body] of [
      ['empty body', Buffer.alloc(0)],
      ['whitespace only', Buffer.from(' \n\t ')],
      ['UTF-8 BOM before valid JSON', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), g])],
      [
        'invalid UTF-8 in a string',
        Buffer.concat([
          g.subarray(0, g.indexOf('"', 2) + 1),
          Buffer.from([0xc3, 0x28, 0xff]),
          g.subarray(g.indexOf('"', 2) + 1),
        ]),
      ],
      ['trailing garbage', Buffer.concat([g, Buffer.from('}}garbage')])],
      ['two JSON documents', Buffer.concat([g, Buffer.from('\n'), g])],
      ['NaN literal', Buffer.from('{"kind":NaN}')],
      ['number 1e400', Buffer.from('{"kind":1e400,"apiVersion":1e400}')],
      ['lone surrogate escape', Buffer.from('{"kind":"\\ud800","apiVersion":"\\udfff"}')],
      [
        'duplicate keys',
        Buffer.from(`{"kind":"x","kind":${JSON.stringify((JSON.parse(text) as { kind: string }).kind)}}`),
      ],
      ['nested objects 10000', Buffer.from(`${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`)],
      [
        '100000 keys in one object',
        Buffer.from(`{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(',')}}`),
      ],
      ['a 2 MB key', Buffer.from(`{"${'k'.repeat(2 * MB)}":1}`)],
    ] as const)
      add({ name, path, body });
    // Well-formed envelopes whose inner fields have the wrong types.
    const inner =
      path === '/audit'
        ? (v: Record<string, unknown>) => ({
            ...BATCH,
            items: [{ ...(BATCH.items[0] as Record<string, unknown>), ...v }],
          })
        : (v: Record<string, unknown>) => ({ ...REVIEW, request: { ...REVIEW.request, ...v } });
    for (const v of path === '/audit'
      ? [{ objectRef: 'x' }, { verb: 5 }, { stage: [] }, { requestReceivedTimestamp: { a: 1 } }]
      : [{ object: 'x' }, { operation: 7 }, { resource: [] }, { uid: 12 }])
      add({ name: `inner ${JSON.stringify(v)}`, path, body: json(inner(v)) });
  }
  if (!smoke) return cases;
  const pick = ['truncated at 10', 'nested 1500000', '1500000 items', 'encoding gzip (4 bytes)', 'method PUT'];
  return cases.filter((c) => pick.includes(c.name));
}

function send(url: string, c: Case): Promise<number> {
  return new Promise((resolve) => {
    const req = request(`${url}${c.path}`, {
      method: c.method ?? 'POST',
      headers: {
        'content-type': 'application/json',
        ...c.headers,
        ...(c.body ? { 'content-length': c.body.length } : {}),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(-1));
    req.end(c.body);
  });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export async function runBadRequests(
  smoke: boolean,
): Promise<{ fivexx: number; admissionP99: number; validOk: boolean }> {
  const redis = await startRedis();
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'cli', 'main.ts'),
      'webhook',
      '--listen',
      `127.0.0.1:${port}`,
      '--redis-url',
      redis.url,
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      'webhook ready',
      async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200,
      60_000,
      200,
    );
    // Warm-up: the first requests of a fresh process pay for loading and compiling the routes.
    for (let i = 0; i < 20; i++) {
      await send(url, { name: 'warm-up', path: '/admission', body: json(REVIEW) });
      await send(url, { name: 'warm-up', path: '/audit', body: json(BATCH) });
    }
    // Built before the prober starts: building them blocks this process, not the webhook.
    const cases = badCases(smoke);
    const latencies: number[] = [];
    let flooding = true;
    const prober = (async () => {
      let i = 0;
      while (flooding) {
        const started = performance.now();
        const review = { ...REVIEW, request: { ...REVIEW.request, uid: `probe-${i++}` } };
        await send(url, { name: 'probe', path: '/admission', body: json(review) });
        latencies.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let fivexx = 0;
    for (const c of cases) {
      const started = performance.now();
      const status = await send(url, c);
      const ms = performance.now() - started;
      if (status >= 500 || status < 0) fivexx++;
      console.log(
        `${String(status).padStart(4)} ${ms.toFixed(0).padStart(6)} ms ${rssMiB(child.pid ?? 0)
          .toFixed(0)
          .padStart(5)} MiB  ${c.path} ${c.name}`,
      );
    }
    flooding = false;
    await prober;
    latencies.sort((a, b) => a - b);
    const admissionP99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? Number.NaN;
    const validOk =
      (await send(url, { name: 'valid audit', path: '/audit', body: json(BATCH) })) === 200 &&
      (await send(url, { name: 'valid review', path: '/admission', body: json(REVIEW) })) === 200;
    console.log(
      `${cases.length} bad requests: ${fivexx} 5xx/errors; admission p99 ${admissionP99.toFixed(0)} ms over ${latencies.length} probes; valid requests afterwards ${validOk ? 'ok' : 'FAILED'}`,
    );
    return { fivexx, admissionP99, validOk };
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nwebhook stderr:\n${stderr}`, { cause: err });
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    await redis.stop();
  }
}

if (process.argv[1] === import.meta.filename) {
  const r = await runBadRequests(process.env.BAD_SMOKE === '1');
  process.exitCode = r.fivexx === 0 && r.validOk ? 0 : 1;
}
