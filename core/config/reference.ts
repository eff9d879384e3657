/**
 * The configuration reference, derived from the schema and the settings table so that
 * docs/configuration.md and the Helm values schema cannot drift from the code.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';
import { envName, SETTINGS } from './settings.js';

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

/** JSON Schema of the config as written by users (durations as strings or milliseconds). */
export function configJsonSchema(): JsonSchema {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

export interface ReferenceRow {
  path: string;
  type: string;
  default: string;
  description: string;
  flag?: string;
  env?: string;
  secret: boolean;
}

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (s.anyOf) return s.anyOf.map(typeOf).join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'values'}`;
  if (s.type === 'integer' || s.type === 'number') return 'number';
  return Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
}

export function referenceRows(): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  const walk = (node: JsonSchema, prefix: string) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (child.type === 'object' && child.properties) {
        walk(child, path);
        continue;
      }
      const setting = SETTINGS.find((s) => s.path === path);
      const isDuration = child.anyOf?.some((a) => a.type === 'string') && child.anyOf.some((a) => a.type === 'integer');
      rows.push({
        path,
        type: isDuration ? 'duration (e.g. 30s, 5m, 24h) or milliseconds' : typeOf(child),
        default: child.default === undefined ? '' : JSON.stringify(child.default),
        description: child.description ?? '',
        ...(setting ? { flag: `--${setting.flag}`, env: envName(setting.flag) } : {}),
        secret: setting?.secret === true || /Secret: never logged/.test(child.description ?? ''),
      });
    }
  };
  walk(configJsonSchema(), '');
  return rows;
}

export function referenceMarkdown(): string {
  const rows = referenceRows();
  const sections = new Map<string, ReferenceRow[]>();
  for (const row of rows) {
    const section = row.path.includes('.') ? (row.path.split('.')[0] as string) : 'general';
    sections.set(section, [...(sections.get(section) ?? []), row]);
  }
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated from core/config/schema.ts and core/config/settings.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'Every setting can be given in a YAML file (`--config FILE` or `ETCD_AUTOBACKUP_CONFIG`), in the',
    'YAML path shown here; many also have a flag and an env var. Precedence: defaults < file < env < flags.',
    'Durations take `ms`, `s`, `m`, `h`, `d` suffixes. Helm values use the same paths under `config:`.',
    'Settings marked secret are never printed or logged; prefer env vars or files (Kubernetes Secrets) for them.',
    '',
  ];
  for (const [section, list] of sections) {
    out.push(
      `## ${section}`,
      '',
      '| key | type | default | flag / env | description |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const r of list) {
      const flag = r.flag ? `\`${r.flag}\`<br>\`${r.env}\`` : '';
      const desc = `${r.description}${r.secret ? ' **(secret)**' : ''}`.replace(/\|/g, '\\|');
      out.push(`| \`${r.path}\` | ${r.type} | ${r.default ? `\`${r.default}\`` : ''} | ${flag} | ${desc} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
