/**
 * The chart's PrometheusRule and Grafana dashboard. The rule is checked with the real Prometheus tooling (Debian's `promtool`): the
 * rendered rule is valid, each alert fires on series shaped like ours and stays quiet when all is
 * well; the metrics and labels the rules and the dashboard read are the ones a real `serve`
 * process exports.
 */
import { before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { chartTools, renderChart, RELEASE } from '../support/helm.js';
import { skipOrFailInCi } from '../support/skip.js';
import { tempDir } from '../support/tmp.js';
import { exportedName, groupingLabels, metricRefs, type Exposition } from '../support/promql.js';
import { scrapeRealService } from '../support/real-scrape.js';

const run = promisify(execFile);
const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
/** Short windows keep the test series short: 1m debounce window, 1h maxInterval, drills within 2h. */
const TEST_VALUES = [
  'prometheusRule.enabled=true',
  'config.queue.debounceWindow=1m',
  'config.queue.maxInterval=1h',
  'prometheusRule.drillMaxAge=2h',
  'config.delta.enabled=true',
  'prometheusRule.deltaMaxLag=2m',
];
const WORKER_JOB = `${RELEASE}-etcd-autobackup-worker`;
const WEBHOOK_JOB = `${RELEASE}-etcd-autobackup-webhook`;
/** Labels Prometheus adds to every series it scrapes through the chart's ServiceMonitor. */
const TARGET_LABELS = ['job', 'pod', 'namespace', 'instance', 'service', 'endpoint', 'container'];

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}

async function renderedGroups(set: readonly string[]): Promise<RuleGroup[]> {
  const objects = await renderChart([], set);
  const rule = objects.find((o) => o.kind === 'PrometheusRule');
  assert.ok(rule, 'no PrometheusRule rendered');
  return (rule.spec as { groups: RuleGroup[] }).groups;
}

async function promtool(args: readonly string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, [...args]);
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

let scraped: Promise<Exposition> | undefined;
/** One real scrape for the rule and the dashboard checks (it takes a snapshot, a drill and failures). */
function realExposition(): Promise<Exposition> {
  scraped ??= scrapeRealService();
  return scraped;
}

let havePromtool = false;
before(async () => {
  await chartTools();
  havePromtool = await run(PROMTOOL, ['--version']).then(
    () => true,
    () => false,
  );
});

function needPromtool(t: TestContext): boolean {
  if (havePromtool) return true;
  skipOrFailInCi(t, `${PROMTOOL} is not installed (Debian package prometheus; scripts/bootstrap.sh installs it)`);
  return false;
}

/** One input series: a service metric with its own labels, plus the target labels of its process. */
interface Series {
  metric: string;
  labels: Record<string, string>;
  process: 'worker' | 'webhook' | 'target';
  values: string;
  /** The pod's ordinal: another pod of the same process, e.g. after a restart. */
  pod?: number;
}

function seriesText(s: Series): string {
  const target =
    s.process === 'target'
      ? {}
      : {
          job: s.process === 'worker' ? WORKER_JOB : WEBHOOK_JOB,
          pod: `${s.process === 'worker' ? WORKER_JOB : WEBHOOK_JOB}-${s.pod ?? 0}`,
          namespace: 'backup',
          instance: '10.0.0.5:9471',
        };
  const labels = { ...s.labels, ...target };
  return `${s.metric}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}

interface Case {
  name: string;
  alert: string;
  series: Series[];
  at: string;
  /** Labels of each expected alert besides alertname and severity; empty: the alert stays quiet. */
  fires: Record<string, string>[];
  /** What `$value` prints in the annotations of the firing alert. */
  value?: string;
}

const cluster = { cluster: 'e2e' };
const w = (metric: string, labels: Record<string, string>, values: string): Series => ({
  metric,
  labels,
  process: 'worker',
  values,
});
const hook = (metric: string, values: string): Series => ({ metric, labels: {}, process: 'webhook', values });
const workerTarget = { job: WORKER_JOB, pod: `${WORKER_JOB}-0`, namespace: 'backup', instance: '10.0.0.5:9471' };
const webhookTarget = { job: WEBHOOK_JOB, pod: `${WEBHOOK_JOB}-0`, namespace: 'backup', instance: '10.0.0.5:9471' };
const LAST_SUCCESS = 'etcd_autobackup_snapshot_last_success_timestamp_seconds';
const DRILL_SUCCESS = 'etcd_autobackup_drill_last_success_timestamp_seconds';

/** With the test values: window 60 s, 3 windows = 180 s; maxInterval 3600 s + 180 s grace; drills 7200 s. */
export const CASES: readonly Case[] = [
  {
    name: 'a change waiting past 3 windows',
    alert: 'EtcdAutobackupChangeNotBackedUp',
    series: [w('etcd_autobackup_oldest_pending_change_age_seconds', cluster, '0 60 120 180 240 300 360')],
    at: '5m',
    fires: [cluster],
    value: '5m 0s',
  },
  {
    name: 'changes backed up within 2 windows each time',
    alert: 'EtcdAutobackupChangeNotBackedUp',
    series: [w('etcd_autobackup_oldest_pending_change_age_seconds', cluster, '0 60 120 0 60 120 0 60')],
    at: '7m',
    fires: [],
  },
  {
    name: 'no success for maxInterval + grace',
    alert: 'EtcdAutobackupSnapshotTooOld',
    series: [w(LAST_SUCCESS, cluster, '0x100')],
    at: '70m',
    fires: [cluster],
    value: '1h 10m 0s',
  },
  {
    name: 'last success within maxInterval',
    alert: 'EtcdAutobackupSnapshotTooOld',
    series: [w(LAST_SUCCESS, cluster, '0x100')],
    at: '60m',
    fires: [],
  },
  {
    name: 'the worker restarted (its gauge starts empty) and nothing succeeded since: still old',
    alert: 'EtcdAutobackupSnapshotTooOld',
    series: [w(LAST_SUCCESS, cluster, '0x30'), { ...w(LAST_SUCCESS, cluster, '_x100'), pod: 1 }],
    at: '70m',
    fires: [cluster],
    value: '1h 10m 0s',
  },
  {
    name: 'a snapshot succeeding every minute',
    alert: 'EtcdAutobackupSnapshotTooOld',
    series: [w(LAST_SUCCESS, cluster, '0+60x100')],
    at: '70m',
    fires: [],
  },
  {
    name: 'the first failure (the counter appears at 1)',
    alert: 'EtcdAutobackupSnapshotFailing',
    series: [w('etcd_autobackup_snapshot_failures_total', { ...cluster, stage: 'store' }, '_x10 1x60')],
    at: '12m',
    fires: [{ ...cluster, stage: 'store' }],
  },
  {
    name: 'failures going on',
    alert: 'EtcdAutobackupSnapshotFailing',
    series: [w('etcd_autobackup_snapshot_failures_total', { ...cluster, stage: 'connect' }, '1+1x60')],
    at: '50m',
    fires: [{ ...cluster, stage: 'connect' }],
  },
  {
    name: 'an old failure, none for 30 minutes',
    alert: 'EtcdAutobackupSnapshotFailing',
    series: [w('etcd_autobackup_snapshot_failures_total', { ...cluster, stage: 'store' }, '_x10 1x60')],
    at: '45m',
    fires: [],
  },
  {
    name: 'Redis unreachable for 2 minutes',
    alert: 'EtcdAutobackupRedisDown',
    series: [hook('etcd_autobackup_redis_up', '1 1 0 0 0 0 0')],
    at: '5m',
    fires: [webhookTarget],
  },
  {
    name: 'a one-minute Redis blip',
    alert: 'EtcdAutobackupRedisDown',
    series: [hook('etcd_autobackup_redis_up', '1 0 1 1 1 1 1')],
    at: '5m',
    fires: [],
  },
  {
    name: 'triggers piling up in memory',
    alert: 'EtcdAutobackupPendingTriggersGrowing',
    series: [hook('etcd_autobackup_pending_triggers', '0 0 5 10 15 20 25 30 35 40')],
    at: '7m',
    fires: [webhookTarget],
    value: '30',
  },
  {
    name: 'no triggers held',
    alert: 'EtcdAutobackupPendingTriggersGrowing',
    series: [hook('etcd_autobackup_pending_triggers', '0x20')],
    at: '15m',
    fires: [],
  },
  {
    name: 'a failed retention run',
    alert: 'EtcdAutobackupRetentionFailing',
    series: [w('etcd_autobackup_prune_runs_total', { ...cluster, result: 'failure' }, '_x5 1x100')],
    at: '10m',
    fires: [cluster],
  },
  {
    name: 'retention runs that succeed',
    alert: 'EtcdAutobackupRetentionFailing',
    series: [w('etcd_autobackup_prune_runs_total', { ...cluster, result: 'success' }, '1+1x100')],
    at: '30m',
    fires: [],
  },
  {
    name: 'the lifecycle rule could not be applied at start',
    alert: 'EtcdAutobackupStoreSetupWarning',
    series: [w('etcd_autobackup_store_setup_warnings_total', { ...cluster, step: 'lifecycle' }, '1x100')],
    at: '5m',
    fires: [{ ...cluster, step: 'lifecycle' }],
  },
  {
    name: 'an hour after that warning',
    alert: 'EtcdAutobackupStoreSetupWarning',
    series: [w('etcd_autobackup_store_setup_warnings_total', { ...cluster, step: 'lifecycle' }, '1x100')],
    at: '70m',
    fires: [],
  },
  {
    name: 'a failed drill',
    alert: 'EtcdAutobackupDrillFailing',
    series: [w('etcd_autobackup_drills_total', { ...cluster, result: 'failure' }, '_x5 1x100')],
    at: '10m',
    fires: [cluster],
  },
  {
    name: 'drills that succeed',
    alert: 'EtcdAutobackupDrillFailing',
    series: [w('etcd_autobackup_drills_total', { ...cluster, result: 'success' }, '1+1x100')],
    at: '30m',
    fires: [],
  },
  {
    name: 'no successful drill for drillMaxAge',
    alert: 'EtcdAutobackupNoProvenRestorableSnapshot',
    series: [w(DRILL_SUCCESS, cluster, '0x200')],
    at: '130m',
    fires: [cluster],
    value: '2h 10m 0s',
  },
  {
    name: 'a drill within drillMaxAge',
    alert: 'EtcdAutobackupNoProvenRestorableSnapshot',
    series: [w(DRILL_SUCCESS, cluster, '0x200')],
    at: '110m',
    fires: [],
  },
  {
    name: 'the delta log 5 minutes behind',
    alert: 'EtcdAutobackupDeltaLogLagging',
    series: [w('etcd_autobackup_delta_lag_seconds', cluster, '0 0 0 60+60x20')],
    at: '10m',
    fires: [cluster],
    value: '8m 0s',
  },
  {
    name: 'the delta log keeping up',
    alert: 'EtcdAutobackupDeltaLogLagging',
    series: [w('etcd_autobackup_delta_lag_seconds', cluster, '0 5 0 8 0 3 0 9 0 0 0 0 0 0')],
    at: '12m',
    fires: [],
  },
  {
    name: 'no worker holding the delta writer lock',
    alert: 'EtcdAutobackupDeltaLogNoWriter',
    series: [w('etcd_autobackup_delta_writer_leader', cluster, '1 1 0x20')],
    at: '10m',
    fires: [cluster],
  },
  {
    name: 'one of two workers writing the delta log',
    alert: 'EtcdAutobackupDeltaLogNoWriter',
    series: [
      w('etcd_autobackup_delta_writer_leader', cluster, '0x20'),
      { ...w('etcd_autobackup_delta_writer_leader', cluster, '1x20'), pod: 1 },
    ],
    at: '10m',
    fires: [],
  },
  {
    name: 'the worker target down for 5 minutes',
    alert: 'EtcdAutobackupWorkerDown',
    series: [{ metric: 'up', labels: workerTarget, process: 'target', values: '1 1 0 0 0 0 0 0 0' }],
    at: '8m',
    fires: [{}],
  },
  {
    name: 'the worker target up',
    alert: 'EtcdAutobackupWorkerDown',
    series: [{ metric: 'up', labels: workerTarget, process: 'target', values: '1x10' }],
    at: '8m',
    fires: [],
  },
];

/** The annotations Prometheus renders for an alert with these labels and value. */
function annotationsFor(rule: Rule, labels: Record<string, string>, value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, text] of Object.entries(rule.annotations)) {
    out[k] = text
      .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '')
      .replace(/\{\{ \$value( \| humanizeDuration)? \}\}/g, () => {
        assert.ok(value !== undefined, `${rule.alert} prints $value: give the case a value`);
        return value;
      });
  }
  return out;
}

/** A promtool unit test file with one test per case (so their series never meet). */
function unitTests(rules: Rule[], ruleFile: string, cases: readonly Case[]): string {
  return stringify({
    rule_files: [ruleFile],
    evaluation_interval: '1m',
    tests: cases.map((c) => {
      const rule = rules.find((r) => r.alert === c.alert);
      assert.ok(rule, `no rule ${c.alert}`);
      return {
        interval: '1m',
        input_series: c.series.map((s) => ({ series: seriesText(s), values: s.values })),
        alert_rule_test: [
          {
            eval_time: c.at,
            alertname: c.alert,
            exp_alerts: c.fires.map((labels) => ({
              exp_labels: { ...labels, ...rule.labels },
              exp_annotations: annotationsFor(rule, { ...labels, ...rule.labels }, c.value),
            })),
          },
        ],
      };
    }),
  });
}

describe('PrometheusRule', () => {
  test('renders only when enabled, in the release namespace, with the labels a Prometheus selects by', async () => {
    assert.equal((await renderChart()).filter((o) => o.kind === 'PrometheusRule').length, 0);
    const objects = await renderChart([], ['prometheusRule.enabled=true', 'prometheusRule.labels.release=kps']);
    const rule = objects.find((o) => o.kind === 'PrometheusRule');
    assert.equal(rule?.metadata.namespace, 'backup');
    assert.equal(rule?.metadata.labels?.release, 'kps');
  });

  test('thresholds follow the debounce window and maxInterval; maxInterval 0 drops the age alert', async () => {
    const rules = (await renderedGroups(TEST_VALUES)).flatMap((g) => g.rules);
    const expr = (alert: string) => rules.find((r) => r.alert === alert)?.expr ?? '';
    assert.match(expr('EtcdAutobackupChangeNotBackedUp'), /> 180$/);
    assert.match(expr('EtcdAutobackupSnapshotTooOld'), /\[7560s\]\)\) > 3780$/);
    const defaults = (await renderedGroups(['prometheusRule.enabled=true'])).flatMap((g) => g.rules);
    // 5m window x 3; 24h + that.
    assert.match(defaults.find((r) => r.alert === 'EtcdAutobackupChangeNotBackedUp')?.expr ?? '', /> 900$/);
    assert.match(defaults.find((r) => r.alert === 'EtcdAutobackupSnapshotTooOld')?.expr ?? '', /> 87300$/);
    const off = (await renderedGroups([...TEST_VALUES, 'config.queue.maxInterval=0', 'prometheusRule.drillMaxAge=0s']))
      .flatMap((g) => g.rules)
      .map((r) => r.alert);
    assert.ok(!off.includes('EtcdAutobackupSnapshotTooOld'), 'maxInterval 0 still has the age alert');
    assert.ok(
      !off.includes('EtcdAutobackupNoProvenRestorableSnapshot'),
      'drillMaxAge 0s still has the drill age alert',
    );
    assert.ok(
      !(await renderedGroups(['prometheusRule.enabled=true']))
        .flatMap((g) => g.rules)
        .some((r) => r.alert?.startsWith('EtcdAutobackupDeltaLog')),
      'delta-log alerts without config.delta.enabled',
    );
    const mixed = (await renderedGroups([...TEST_VALUES, 'config.queue.debounceWindow=1m30s'])).flatMap((g) => g.rules);
    assert.match(mixed.find((r) => r.alert === 'EtcdAutobackupChangeNotBackedUp')?.expr ?? '', /> 270$/);
  });

  test('promtool check rules accepts the rendered rule (defaults and the test values)', async (t) => {
    if (!needPromtool(t)) return;
    const dir = await tempDir('promrule');
    try {
      // The test values turn the delta log on, which adds its two alerts.
      for (const [set, count] of [
        [['prometheusRule.enabled=true', 'prometheusRule.alertLabels.team=platform'], 10],
        [TEST_VALUES, 12],
      ] as const) {
        const groups = await renderedGroups(set);
        const file = join(dir.path, 'rules.yaml');
        await writeFile(file, stringify({ groups }));
        const r = await promtool(['check', 'rules', file]);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, new RegExp(`SUCCESS: ${count} rules found`));
      }
    } finally {
      await dir.remove();
    }
  });

  test('promtool test rules: every alert fires on series shaped like ours, and stays quiet when all is well', async (t) => {
    if (!needPromtool(t)) return;
    const groups = await renderedGroups(TEST_VALUES);
    const rules = groups.flatMap((g) => g.rules);
    for (const r of rules) {
      assert.ok(
        CASES.some((c) => c.alert === r.alert && c.fires.length > 0),
        `no case where ${r.alert} fires`,
      );
      assert.ok(
        CASES.some((c) => c.alert === r.alert && c.fires.length === 0),
        `no case where ${r.alert} stays quiet`,
      );
    }
    const dir = await tempDir('promrule');
    try {
      await writeFile(join(dir.path, 'rules.yaml'), stringify({ groups }));
      await writeFile(join(dir.path, 'tests.yaml'), unitTests(rules, 'rules.yaml', CASES));
      const r = await promtool(['test', 'rules', join(dir.path, 'tests.yaml')]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /SUCCESS/);

      // The harness can fail: a quiet case expected to fire, and a firing one expected quiet.
      const flipped = CASES.map((c) =>
        c.fires.length > 0 ? { ...c, fires: [] } : { ...c, fires: [{ ...cluster }], value: '0s' },
      );
      await writeFile(join(dir.path, 'flipped.yaml'), unitTests(rules, 'rules.yaml', flipped));
      const bad = await promtool(['test', 'rules', join(dir.path, 'flipped.yaml')]);
      assert.notEqual(bad.code, 0, bad.out);
      for (const c of CASES) assert.ok(bad.out.includes(`alertname: ${c.alert}`), `${c.name}: flip not caught`);
    } finally {
      await dir.remove();
    }
  });

  test('the metrics, labels and label values the rules read are what a real serve process exports', async () => {
    const exposition = await realExposition();
    const rules = (await renderedGroups(TEST_VALUES)).flatMap((g) => g.rules);
    assertReadsExported(
      exposition,
      rules.map((r) => ({ where: r.alert, expr: r.expr, extra: Object.values(r.annotations).join(' ') })),
    );
    // The promtool cases use the label sets the real process exports for each metric.
    for (const c of CASES) {
      for (const s of c.series.filter((x) => x.process !== 'target')) {
        const real = exposition.get(s.metric);
        assert.ok(real, `${c.name}: ${s.metric} is not exported`);
        assert.deepEqual(Object.keys(s.labels).sort(), [...real.keys()].sort(), `${c.name}: labels of ${s.metric}`);
      }
    }
  });
});

/**
 * Every etcd_autobackup_* metric an expression reads is exported, each matcher's label is one of
 * that metric's labels with a value the service uses, and every grouping label (and `$labels.x`
 * in the annotations) is a label of the metrics it groups or one Prometheus adds to the target.
 */
export function assertReadsExported(
  exposition: Exposition,
  exprs: readonly { where: string; expr: string; extra?: string }[],
): void {
  const valuesOf = (label: string) =>
    new Set([...exposition.values()].flatMap((labels) => [...(labels.get(label) ?? [])]));
  for (const { where, expr, extra } of exprs) {
    const refs = metricRefs(expr);
    for (const ref of refs) {
      const name = exportedName(exposition, ref.name);
      assert.ok(name, `${where}: ${ref.name} is not exported by the service`);
      const labels = exposition.get(name) as Map<string, Set<string>>;
      for (const m of ref.matchers) {
        if (TARGET_LABELS.includes(m.label)) continue;
        assert.ok(labels.has(m.label), `${where}: ${name} has no label ${m.label}`);
        if (m.value.startsWith('$')) continue; // a dashboard variable
        // A value seen on this metric, or in the same label of another (result="failure" before a failure).
        assert.ok(
          labels.get(m.label)?.has(m.value) || valuesOf(m.label).has(m.value),
          `${where}: ${name}{${m.label}="${m.value}"} is never exported`,
        );
      }
    }
    const own = new Set(
      refs.flatMap((r) => [...(exposition.get(exportedName(exposition, r.name) ?? '')?.keys() ?? [])]),
    );
    const grouped = [
      ...groupingLabels(expr),
      ...[...(extra ?? '').matchAll(/\$labels\.(\w+)/g)].map((m) => m[1] as string),
    ];
    for (const l of grouped)
      assert.ok(
        own.has(l) || TARGET_LABELS.includes(l),
        `${where}: groups or prints by ${l}, which no metric it reads has`,
      );
  }
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string; legendFormat?: string }[];
  datasource?: { uid: string };
}

describe('Grafana dashboard', () => {
  async function dashboardConfigMap(set: readonly string[] = []) {
    const objects = await renderChart([], ['grafanaDashboard.enabled=true', ...set]);
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'));
    assert.ok(cm, 'no dashboard ConfigMap rendered');
    return cm;
  }

  test('opt-in ConfigMap with the sidecar label, in the release or the given namespace, with a folder', async () => {
    const off = await renderChart();
    assert.equal(off.filter((o) => o.metadata.name.endsWith('-dashboard')).length, 0, 'rendered while off');
    const cm = await dashboardConfigMap();
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
    assert.equal(cm.metadata.namespace, 'backup');
    const moved = await dashboardConfigMap([
      'grafanaDashboard.namespace=monitoring',
      'grafanaDashboard.folder=Platform',
    ]);
    assert.equal(moved.metadata.namespace, 'monitoring');
    assert.equal(moved.metadata.annotations?.grafana_folder, 'Platform');
  });

  test('panels for snapshots, durations, sizes, triggers by source, queue and drills, on every metric it reads exported', async () => {
    const cm = await dashboardConfigMap();
    const json = (cm.data as Record<string, string>)['etcd-autobackup.json'] as string;
    const dashboard = JSON.parse(json) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };
    assert.equal(dashboard.uid, 'etcd-autobackup');
    assert.deepEqual(
      dashboard.templating.list.map((v) => v.name),
      ['datasource', 'cluster', 'job'],
    );
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    for (const p of panels) {
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has no query`);
      assert.equal(p.datasource?.uid, '${datasource}', `panel ${p.title} does not use the datasource variable`);
    }
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr })));
    const read = new Set(exprs.flatMap((e) => metricRefs(e.expr).map((r) => r.name)));
    for (const m of [
      'etcd_autobackup_snapshots_total',
      'etcd_autobackup_snapshot_duration_seconds_bucket',
      'etcd_autobackup_snapshot_size_bytes',
      'etcd_autobackup_triggers_total',
      'etcd_autobackup_queue_jobs',
      'etcd_autobackup_drills_total',
      'etcd_autobackup_oldest_pending_change_age_seconds',
    ])
      assert.ok(read.has(m), `no panel reads ${m}`);
    // Legends print only labels the query keeps.
    const withLegends = panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        where: p.title,
        expr: t.expr,
        extra: (t.legendFormat ?? '').replace(/\{\{(\w+)\}\}/g, '$labels.$1'),
      })),
    );
    assertReadsExported(await realExposition(), withLegends);
    // The label variables read metrics that exist too.
    assertReadsExported(await realExposition(), [
      { where: 'variable cluster', expr: 'etcd_autobackup_snapshots_total' },
      { where: 'variable job', expr: 'etcd_autobackup_redis_up' },
    ]);
  });
});
