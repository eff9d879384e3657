/**
 * Which etcd keys are worth a snapshot, and how to name them. Pure functions of a key and the
 * `watch` config, shared by the etcd watch and its tests. Only keys: a value may be a Secret.
 */
import type { Config } from '../core/config/index.js';

export type WatchSettings = Pick<Config['watch'], 'prefix' | 'ignorePrefixes'>;

export const KEY_IGNORE_REASONS = ['outside-prefix', 'ignored-prefix'] as const;
export type KeyIgnoreReason = (typeof KEY_IGNORE_REASONS)[number];

export type KeyDecision = { trigger: true; resource: string } | { trigger: false; reason: KeyIgnoreReason };

export function filterKey(key: string, watch: WatchSettings): KeyDecision {
  if (!key.startsWith(watch.prefix)) return { trigger: false, reason: 'outside-prefix' };
  if (watch.ignorePrefixes.some((p) => key.startsWith(p))) return { trigger: false, reason: 'ignored-prefix' };
  return { trigger: true, resource: keyResource(key, watch.prefix) };
}

/** Long enough for any Kubernetes name (253) with its resource and namespace, short enough for a sample. */
const MAX_LABEL = 320;

/**
 * A readable label for a Kubernetes key, close to the audit source's `group/resource ns/name`:
 *
 * - `/registry/deployments/shop/web` -> `deployments shop/web`
 * - `/registry/namespaces/shop` -> `namespaces shop`
 * - `/registry/cert-manager.io/certificates/shop/tls` -> `cert-manager.io/certificates shop/tls`
 *
 * The apiserver stores built-in resources under their resource name alone and the others (CRDs,
 * aggregated APIs) under `<group>/<resource>`; a first segment with a dot is taken for a group,
 * as Kubernetes group names other than the built-ins always have one. Keys with another layout
 * (`services/specs/...`, `ranges/serviceips`) keep their remaining segments after the first,
 * which is readable enough for a sample.
 */
export function keyResource(key: string, prefix: string): string {
  const rest = (key.startsWith(prefix) ? key.slice(prefix.length) : key).replace(/^\/+/, '');
  const segments = rest.split('/').filter((s) => s !== '');
  if (segments.length === 0) return printable(key);
  const [first, ...others] = segments as [string, ...string[]];
  let resource = first;
  let object = others;
  if (first.includes('.') && others.length > 0) {
    resource = `${first}/${others[0] as string}`;
    object = others.slice(1);
  }
  const label = object.length > 0 ? `${resource} ${object.join('/')}` : resource;
  return printable(label);
}

/** Control characters replaced, length capped: labels end up in logs, job data and the dashboard. */
function printable(label: string): string {
  let out = '';
  for (const ch of label) {
    const code = ch.codePointAt(0) as number;
    out += code < 0x20 || code === 0x7f ? '?' : ch;
  }
  return out.length > MAX_LABEL ? `${out.slice(0, MAX_LABEL - 1)}…` : out;
}
