/**
 * Just enough of PromQL and of the Prometheus text format to check which metrics and labels the
 * chart's alert rules and dashboard use against what a real process exports.
 */

/** One `name{label="value",...}` reference of a service (or Node process) metric in an expression. */
export interface MetricRef {
  name: string;
  matchers: { label: string; value: string }[];
}

const REF = /\b((?:etcd_autobackup|process|nodejs)_[a-z0-9_]+)(\{([^}]*)\})?/g;

/** Every etcd_autobackup_*, process_* and nodejs_* metric an expression reads, with its matchers. */
export function metricRefs(expr: string): MetricRef[] {
  return [...expr.matchAll(REF)].map((m) => ({
    name: m[1] as string,
    matchers: [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=~?\s*"([^"]*)"/g)].map((x) => ({
      label: x[1] as string,
      value: x[2] as string,
    })),
  }));
}

/** The labels of every `by (...)` / `on (...)` / `ignoring (...)` clause. */
export function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|on|ignoring|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] as string)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** A /metrics text as metric name -> label name -> the values seen (names from # HELP, so empty ones count). */
export type Exposition = Map<string, Map<string, Set<string>>>;

export function parseExposition(text: string, into: Exposition = new Map()): Exposition {
  for (const line of text.split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
    if (help) {
      if (!into.has(help[1] as string)) into.set(help[1] as string, new Map());
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? /.exec(line);
    if (!m) continue;
    // Histogram samples belong to their metric: x_bucket, x_sum, x_count are x.
    const base = (m[1] as string).replace(/_(bucket|sum|count)$/, '');
    const name = into.has(m[1] as string) ? (m[1] as string) : base;
    const labels = into.get(name) ?? new Map<string, Set<string>>();
    into.set(name, labels);
    for (const pair of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const set = labels.get(pair[1] as string) ?? new Set<string>();
      set.add(pair[2] as string);
      labels.set(pair[1] as string, set);
    }
  }
  return into;
}

/** The exported metric a reference reads: x_bucket/x_sum/x_count read the histogram x. */
export function exportedName(exposition: Exposition, name: string): string | undefined {
  if (exposition.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return exposition.has(base) ? base : undefined;
}
