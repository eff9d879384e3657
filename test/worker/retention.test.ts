import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retentionSchema } from '../../core/config/schema.js';
import { newSnapshotId } from '../../worker/manifest.js';
import {
  isoWeek,
  isStale,
  orphanSafeAge,
  parseOwnName,
  planRetention,
  type Candidate,
  type RetentionPolicy,
} from '../../worker/retention.js';

const NONE: RetentionPolicy = { keepLast: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0 };
let revision = 0;

function snap(iso: string, verified = true): Candidate {
  const createdAt = new Date(iso);
  revision += 1;
  return { id: newSnapshotId(createdAt, revision, () => 'abcd'), createdAt, revision, verified };
}

/** `count` snapshots every `stepMs`, ending at `end` (the newest), oldest first. */
function series(end: string, count: number, stepMs: number): Candidate[] {
  const last = new Date(end).getTime();
  return Array.from({ length: count }, (_, i) => snap(new Date(last - (count - 1 - i) * stepMs).toISOString()));
}

const kept = (plan: ReturnType<typeof planRetention>) => plan.keep.map((d) => d.snapshot.createdAt.toISOString());
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

test('defaults are the documented ones', () => {
  const d = retentionSchema.parse({});
  assert.deepEqual(
    {
      enabled: d.enabled,
      afterSnapshot: d.afterSnapshot,
      keepLast: d.keepLast,
      hourly: d.hourly,
      daily: d.daily,
      weekly: d.weekly,
      monthly: d.monthly,
      orphanAge: d.orphanAge,
    },
    { enabled: true, afterSnapshot: true, keepLast: 10, hourly: 24, daily: 7, weekly: 4, monthly: 6, orphanAge: DAY },
  );
});

test('keepLast keeps exactly the newest N, whatever the input order', () => {
  const all = series('2026-03-10T12:00:00Z', 6, 60_000);
  const plan = planRetention([...all].reverse(), { ...NONE, keepLast: 3 });
  assert.deepEqual(kept(plan), ['2026-03-10T12:00:00.000Z', '2026-03-10T11:59:00.000Z', '2026-03-10T11:58:00.000Z']);
  assert.deepEqual(
    plan.keep.map((d) => d.reasons[0]),
    ['last 1/3', 'last 2/3', 'last 3/3'],
  );
  assert.equal(plan.remove.length, 3);
  assert.ok(plan.remove.every((d) => d.reasons.length === 0));
});

test('hourly keeps the newest snapshot of each of the last N hours that have one, across a day boundary', () => {
  // Every 20 minutes from 21:00 to 01:40 next day (UTC): hours 21, 22, 23, 00, 01.
  const all = series('2026-03-11T01:40:00Z', 15, 20 * 60_000);
  const plan = planRetention(all, { ...NONE, hourly: 4 });
  assert.deepEqual(kept(plan), [
    '2026-03-11T01:40:00.000Z',
    '2026-03-11T00:40:00.000Z',
    '2026-03-10T23:40:00.000Z',
    '2026-03-10T22:40:00.000Z',
  ]);
  assert.deepEqual(
    plan.keep.map((d) => d.reasons),
    [
      ['hourly 2026-03-11T01', 'newest verified'],
      ['hourly 2026-03-11T00'],
      ['hourly 2026-03-10T23'],
      ['hourly 2026-03-10T22'],
    ],
  );
});

test('hours without a snapshot do not use up the count (like restic)', () => {
  const all = [
    snap('2026-03-10T01:10:00Z'),
    snap('2026-03-10T05:10:00Z'),
    snap('2026-03-10T09:10:00Z'),
    snap('2026-03-10T09:50:00Z'),
  ];
  const plan = planRetention(all, { ...NONE, hourly: 3 });
  assert.deepEqual(kept(plan), ['2026-03-10T09:50:00.000Z', '2026-03-10T05:10:00.000Z', '2026-03-10T01:10:00.000Z']);
});

test('daily uses UTC days: 23:59 and 00:01 are different days', () => {
  const all = [
    snap('2026-03-09T12:00:00Z'),
    snap('2026-03-09T23:59:00Z'),
    snap('2026-03-10T00:01:00Z'),
    snap('2026-03-10T08:00:00Z'),
  ];
  const plan = planRetention(all, { ...NONE, daily: 2 });
  assert.deepEqual(kept(plan), ['2026-03-10T08:00:00.000Z', '2026-03-09T23:59:00.000Z']);
});

test('weekly follows ISO weeks: Sunday and the next Monday are different weeks, and year ends are ISO-correct', () => {
  assert.equal(isoWeek(new Date('2026-03-08T23:59:59Z')), '2026-W10'); // Sunday
  assert.equal(isoWeek(new Date('2026-03-09T00:00:00Z')), '2026-W11'); // Monday
  assert.equal(isoWeek(new Date('2024-12-30T10:00:00Z')), '2025-W01'); // Monday of 2025's first week
  assert.equal(isoWeek(new Date('2021-01-03T10:00:00Z')), '2020-W53'); // Sunday, still 2020's week 53
  assert.equal(isoWeek(new Date('2026-01-01T00:00:00Z')), '2026-W01'); // Thursday

  // One snapshot a day for three weeks, ending on a Wednesday.
  const all = series('2026-03-18T06:00:00Z', 21, DAY);
  const plan = planRetention(all, { ...NONE, weekly: 3 });
  assert.deepEqual(kept(plan), ['2026-03-18T06:00:00.000Z', '2026-03-15T06:00:00.000Z', '2026-03-08T06:00:00.000Z']);
  assert.deepEqual(
    plan.keep.map((d) => d.reasons[0]),
    ['weekly 2026-W12', 'weekly 2026-W11', 'weekly 2026-W10'],
  );
});

test('monthly keeps the last snapshot of each month, across a year boundary and a leap day', () => {
  const all = [
    snap('2023-11-30T23:00:00Z'),
    snap('2023-12-01T00:00:00Z'),
    snap('2023-12-31T23:59:00Z'),
    snap('2024-01-01T00:00:00Z'),
    snap('2024-02-29T12:00:00Z'),
    snap('2024-03-01T00:00:00Z'),
  ];
  const plan = planRetention(all, { ...NONE, monthly: 4 });
  assert.deepEqual(kept(plan), [
    '2024-03-01T00:00:00.000Z',
    '2024-02-29T12:00:00.000Z',
    '2024-01-01T00:00:00.000Z',
    '2023-12-31T23:59:00.000Z',
  ]);
  assert.deepEqual(
    plan.remove.map((d) => d.snapshot.createdAt.toISOString()),
    ['2023-12-01T00:00:00.000Z', '2023-11-30T23:00:00.000Z'],
  );
});

test('rules combine: a snapshot kept by several rules is kept once with every reason', () => {
  // Hourly for two days, plus older dailies.
  const recent = series('2026-03-10T12:30:00Z', 48, HOUR);
  const older = series('2026-03-05T12:30:00Z', 10, DAY);
  const plan = planRetention([...older, ...recent], { keepLast: 2, hourly: 5, daily: 4, weekly: 2, monthly: 2 });
  const first = plan.keep[0];
  assert.deepEqual(first?.reasons, [
    'last 1/2',
    'hourly 2026-03-10T12',
    'daily 2026-03-10',
    'weekly 2026-W11',
    'monthly 2026-03',
    'newest verified',
  ]);
  // keepLast 2, hourly reaches 5 hours back; daily 4 adds 3 older days' newest; weekly adds W10's newest
  // (Sunday 03-08, also a daily) ; monthly adds February's newest.
  assert.deepEqual(kept(plan), [
    '2026-03-10T12:30:00.000Z',
    '2026-03-10T11:30:00.000Z',
    '2026-03-10T10:30:00.000Z',
    '2026-03-10T09:30:00.000Z',
    '2026-03-10T08:30:00.000Z',
    '2026-03-09T23:30:00.000Z',
    '2026-03-08T23:30:00.000Z',
    '2026-03-05T12:30:00.000Z',
    '2026-02-28T12:30:00.000Z',
  ]);
  assert.equal(plan.keep.length + plan.remove.length, 58);
});

test('the newest verified snapshot is kept even when every count is 0 and newer unverified ones exist', () => {
  const a = snap('2026-03-10T10:00:00Z');
  const b = snap('2026-03-10T11:00:00Z');
  const c = snap('2026-03-10T12:00:00Z', false);
  const plan = planRetention([a, b, c], NONE);
  assert.deepEqual(
    plan.keep.map((d) => [d.snapshot.id, d.reasons]),
    [[b.id, ['newest verified']]],
  );
  assert.deepEqual(
    plan.remove.map((d) => d.snapshot.id),
    [c.id, a.id],
  );
});

test('equal times are ordered by revision, so the newest is well defined', () => {
  const low = snap('2026-03-10T12:00:00Z');
  const high = snap('2026-03-10T12:00:00Z');
  const plan = planRetention([high, low], { ...NONE, keepLast: 1 });
  assert.deepEqual(
    plan.keep.map((d) => d.snapshot.id),
    [high.id],
  );
});

test('names: only what newSnapshotId and the manifest module produce is ours', () => {
  const id = '20261124T032800Z-r12345-a1b2';
  assert.deepEqual(parseOwnName(`${id}.db.gz`), { id, kind: 'object' });
  assert.deepEqual(parseOwnName(`${id}.db`), { id, kind: 'object' });
  assert.deepEqual(parseOwnName(`${id}.manifest.json`), { id, kind: 'manifest' });
  for (const foreign of [
    `${id}.db.gz.bak`,
    `x${id}.db`,
    `sub/${id}.db`,
    'README.md',
    `${id}.DB`,
    `${id}.db.gz.partial-0a1b`,
    '20261124-r1-ab.db',
  ]) {
    assert.equal(parseOwnName(foreign), undefined, foreign);
  }
});

test('orphan age: never younger than snapshot.timeout; unknown times never stale', () => {
  assert.equal(orphanSafeAge(DAY, 30 * 60_000), DAY);
  assert.equal(orphanSafeAge(60_000, 2 * HOUR), 2 * HOUR);
  const now = new Date('2026-03-10T12:00:00Z');
  assert.equal(isStale(new Date(now.getTime() - HOUR - 1), now, HOUR), true);
  assert.equal(isStale(new Date(now.getTime() - HOUR), now, HOUR), false);
  assert.equal(isStale(undefined, now, 0), false);
});

test('the newest snapshot proven restorable by a drill is kept first, whatever the counts', () => {
  const newest = snap('2026-11-24T12:00:00Z');
  const drilledOld = { ...snap('2026-11-20T12:00:00Z'), drilled: true };
  const drilledOlder = { ...snap('2026-11-19T12:00:00Z'), drilled: true };
  const failedDrill = { ...snap('2026-11-22T12:00:00Z'), drilled: false };
  const plan = planRetention([drilledOlder, failedDrill, newest, drilledOld], { ...NONE, keepLast: 1 });
  assert.deepEqual(
    plan.keep.map((d) => [d.snapshot.id, d.reasons]),
    [
      [newest.id, ['last 1/1', 'newest verified']],
      [drilledOld.id, ['newest proven restorable']],
    ],
  );
  assert.deepEqual(
    plan.remove.map((d) => d.snapshot.id),
    [failedDrill.id, drilledOlder.id],
  );
  // Without any drill record the rule adds nothing.
  assert.equal(planRetention([newest], NONE).keep[0]?.reasons.includes('newest proven restorable'), false);
});

test('parseOwnName: drill records are ours, beside their snapshot', () => {
  assert.deepEqual(parseOwnName('20261124T032800Z-r12345-a1b2.drill.json'), {
    id: '20261124T032800Z-r12345-a1b2',
    kind: 'drill',
  });
});
