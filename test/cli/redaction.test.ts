import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

test('a one-letter secret does not blank that letter elsewhere in error messages', async () => {
  const r = await runCli(['list', '--store', 'nope://x', '--etcd-password', 'b', '--dashboard-password', 'e']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /file:\/\/\/var\/backups\/etcd/);
  assert.doesNotMatch(r.stderr, /\[redacted\]/);
});

test('a YAML syntax error in --config names line and column, not the text of the line', async (t) => {
  const dir = await tempDir('yaml-error');
  t.after(() => dir.remove());
  const file = join(dir.path, 'config.yaml');
  await writeFile(file, 'cluster: c1\ndashboard:\n  user: ops\n  password: "Hunter-Secret-42\n  other: [\n', 'utf8');
  const r = await runCli(['list', '--config', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is not valid YAML at line \d+, column \d+/);
  assert.doesNotMatch(r.stderr, /Hunter-Secret-42/);
  assert.doesNotMatch(r.stdout, /Hunter-Secret-42/);
});

test('--debounce-window 0 is refused at config load, naming the field, with exit 2', async () => {
  for (const value of ['0', '0s']) {
    const r = await runCli(['list', '--store', 'file:///nonexistent', '--debounce-window', value]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /queue\.debounceWindow: expected a positive duration .*\(flag --debounce-window, env ETCD_AUTOBACKUP_DEBOUNCE_WINDOW\)/,
    );
  }
});
