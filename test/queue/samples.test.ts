import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../core/config/index.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import { boundSample, MAX_SAMPLE_LENGTH } from '../../core/queue/sample.js';
import { startRedis } from '../support/redis.js';

test('boundSample keeps Kubernetes-sized names whole and cuts the rest, marking the cut', () => {
  const longest = `${'g'.repeat(253)}/${'r'.repeat(63)} ${'n'.repeat(63)}/${'x'.repeat(253)}`;
  assert.equal(boundSample(longest), longest);
  const cut = boundSample('a'.repeat(3 * 1024 * 1024));
  assert.equal(cut.length, MAX_SAMPLE_LENGTH);
  assert.ok(cut.endsWith('…'));
  assert.equal(boundSample('ns/a\nb\u0000c'), 'ns/a?b?c');
});

test('a 3 MiB resource name reaches neither Redis nor the job data whole', async () => {
  const redis = await startRedis();
  const config = configSchema.parse({ cluster: 'big', redis: { url: redis.url }, queue: { debounceWindow: '1h' } });
  const recorder = createQueueRecorder({ config });
  try {
    await recorder.queue.waitUntilReady();
    const huge = `apps/deployments shop/${'w'.repeat(3 * 1024 * 1024)}`;
    for (let i = 0; i < 10; i++) recorder.record({ source: 'admission', resource: `${huge}${i}`, at: new Date() });
    await recorder.flush();
    const manual = await recorder.enqueueNow({ resource: huge });

    const jobs = await recorder.queue.getJobs(['delayed', 'waiting']);
    assert.equal(jobs.length, 2);
    for (const job of jobs) {
      assert.ok(job.data.samples.length <= 5, job.id);
      for (const s of job.data.samples) assert.ok(s.length <= MAX_SAMPLE_LENGTH, `${job.id}: ${s.length}`);
    }
    assert.ok(jobs.some((j) => j.id === manual));
    const keys = (await redis.command('KEYS', '*')) as string[];
    for (const key of keys) {
      const size = Number(await redis.command('MEMORY', 'USAGE', key));
      assert.ok(size < 64 * 1024, `${key} holds ${size} bytes`);
    }
  } finally {
    await recorder.close();
    await redis.stop();
  }
});
