/**
 * Key counts per top-level prefix at one revision, recorded at snapshot time and compared by
 * drills. For Kubernetes the prefix is the resource (`/registry/pods/`); any other key space is
 * grouped by its first path segment (`/foo/`), so tests and non-Kubernetes etcds get counts too.
 *
 * Cost, bounded: the walk asks for the next key at or after a cursor (keys-only, limit 1), counts
 * that key's group (count-only, no values sent), then jumps the cursor past the group: two small
 * requests per prefix, whatever the number of keys. A Kubernetes cluster has tens of resource
 * prefixes; `maxPrefixes` caps pathological key spaces and the record says when it stopped early.
 */
import type { Etcd3 } from 'etcd3';

export interface KeyCounts {
  /** The revision the counts are of. */
  revision: number;
  method: 'walk-prefixes';
  /** Range requests spent. */
  requests: number;
  /** True when maxPrefixes stopped the walk: the counts cover only the first groups. */
  truncated: boolean;
  total: number;
  prefixes: Record<string, number>;
}

/** The group a key counts under: `/registry/<resource>/`, else `/<first segment>/`, else the key. */
export function groupOf(key: string): string {
  const registry = '/registry/';
  const base = key.startsWith(registry) ? registry.length : key.startsWith('/') ? 1 : 0;
  const slash = key.indexOf('/', base);
  return slash < 0 ? key : key.slice(0, slash + 1);
}

/** The first key after every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export async function countKeys(client: Etcd3, revision: number, maxPrefixes = 1000): Promise<KeyCounts> {
  const all = Buffer.from([0]);
  const result: KeyCounts = {
    revision,
    method: 'walk-prefixes',
    requests: 0,
    truncated: false,
    total: 0,
    prefixes: {},
  };
  let cursor: Buffer = Buffer.from([0]);
  for (;;) {
    const next = await client.kv.range({ key: cursor, range_end: all, limit: 1, keys_only: true, revision });
    result.requests++;
    const first = next.kvs[0];
    if (!first) break;
    if (Object.keys(result.prefixes).length >= maxPrefixes) {
      result.truncated = true;
      break;
    }
    const group = groupOf(first.key.toString('utf8'));
    const start = Buffer.from(group, 'utf8');
    // A group that is a whole key (no slash after it) covers exactly that key.
    const end = group.endsWith('/') ? prefixEnd(start) : Buffer.concat([start, Buffer.from([0])]);
    const counted = await client.kv.range({ key: start, range_end: end, count_only: true, revision });
    result.requests++;
    const n = Number(counted.count);
    result.prefixes[group] = n;
    result.total += n;
    cursor = end;
  }
  return result;
}

/** The differences between two count records, as lines; empty when they agree. */
export function compareCounts(expected: KeyCounts, actual: KeyCounts): string[] {
  const problems: string[] = [];
  for (const [prefix, n] of Object.entries(expected.prefixes)) {
    const got = actual.prefixes[prefix] ?? 0;
    if (got !== n) problems.push(`${prefix}: ${got} keys, expected ${n}`);
  }
  if (!expected.truncated && !actual.truncated) {
    for (const prefix of Object.keys(actual.prefixes))
      if (!(prefix in expected.prefixes)) problems.push(`${prefix}: ${actual.prefixes[prefix]} keys, expected none`);
  }
  return problems;
}
