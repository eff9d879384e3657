/**
 * core/young-generation.ts stops V8's new space from growing under a workload whose objects
 * survive scavenges (as a snapshot stream's chunks do), where V8 alone grows it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODULE = join(import.meta.dirname, '../../core/young-generation.ts');

/** New-space size before and after a workload that keeps 50,000 objects alive across many scavenges. */
async function newSpace(capped: boolean): Promise<{ before: number; after: number }> {
  const script = `
    ${capped ? `await import(${JSON.stringify(MODULE)});` : ''}
    const { getHeapSpaceStatistics } = await import('node:v8');
    const size = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
    const before = size();
    const keep = new Array(50000);
    for (let i = 0; i < 200000; i++) keep[i % 50000] = { i, s: 'x' + i };
    process.stdout.write(JSON.stringify({ before, after: size() }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
  return JSON.parse(stdout) as { before: number; after: number };
}

test('the young generation keeps its size where V8 alone grows it', async () => {
  const [alone, capped] = await Promise.all([newSpace(false), newSpace(true)]);
  assert.ok(alone.after > alone.before, `the workload grows new space without the cap (${JSON.stringify(alone)})`);
  assert.equal(capped.after, capped.before, 'new space grew with the cap');
});
