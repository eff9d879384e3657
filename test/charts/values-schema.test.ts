import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  chartGeneratedTemplate,
  CHART_DIR,
  valuesJsonSchema,
  valuesSchemaObject,
} from '../../scripts/gen-values-schema.js';
import { configJsonSchema } from '../../core/config/reference.js';
import { SETTINGS } from '../../core/config/settings.js';

test('values.schema.json and templates/_generated.tpl match the config schema (run `npm run generate`)', async () => {
  assert.equal(
    await readFile(new URL('values.schema.json', CHART_DIR), 'utf8'),
    valuesJsonSchema(),
    'values.schema.json is stale',
  );
  assert.equal(
    await readFile(new URL('templates/_generated.tpl', CHART_DIR), 'utf8'),
    chartGeneratedTemplate(),
    'templates/_generated.tpl is stale',
  );
});

test("`config:` in the values takes exactly the config file's keys, and every secret setting is known to the chart", () => {
  const values = valuesSchemaObject() as {
    properties: { config: { properties: Record<string, unknown>; additionalProperties: boolean } };
  };
  assert.deepEqual(Object.keys(values.properties.config.properties), Object.keys(configJsonSchema().properties ?? {}));
  assert.equal(values.properties.config.additionalProperties, false);
  const tpl = chartGeneratedTemplate();
  for (const s of SETTINGS.filter((x) => x.secret))
    assert.match(tpl, new RegExp(`path: ${s.path.replace(/\./g, '\\.')},`));
});
