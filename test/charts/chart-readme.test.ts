import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { chartReadme } from '../../scripts/gen-chart-readme.js';
import { CHART_DIR } from '../../scripts/gen-values-schema.js';

test('the chart README is generated from the values schema and values.yaml (run `npm run generate`)', async () => {
  const readme = chartReadme();
  assert.equal(
    await readFile(new URL('README.md', CHART_DIR), 'utf8'),
    readme,
    'charts/etcd-autobackup/README.md is stale',
  );
  // Every value is in it, with its default: a sample of the chart's own and of the original's keys.
  assert.match(readme, /^\| `webhook\.replicas` \| `2` \| Replicas/m);
  assert.match(readme, /^\| `config\.queue\.debounceWindow` \| `5m` \|/m);
  assert.match(readme, /^\| `prometheusRule\.overdueWindows` \| `3` \|/m);
  assert.match(readme, /^\| `oci\.user_ocid` \| {2}\|/m);
});
