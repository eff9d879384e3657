import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { loadConfig } from '../../../core/config/index.js';
import { IntegrityError } from '../../../core/errors.js';
import { readSegment } from '../../../worker/delta/segment-read.js';
import { segmentContent, writeSegment, type SegmentContent } from '../../../worker/delta/segment-write.js';
import { encodeEvent, type DeltaEvent, type DeltaManifest } from '../../../worker/delta/segment.js';
import { FileStore } from '../../../worker/stores/file.js';
import { tempDir } from '../../support/tmp.js';

let work: { path: string; remove: () => Promise<void> };
let store: FileStore;
const config = () =>
  loadConfig({ env: {}, flags: { cluster: 'c', store: `file://${join(work.path, 's')}`, compression: 'gzip' } });
const ETCD = { endpoint: 'e', memberId: '1', clusterId: '2', version: '3.4' };

function event(revision: number, value = 'v'): DeltaEvent {
  return {
    revision,
    type: 'put',
    key: Buffer.from(`/registry/configmaps/default/k${revision}`),
    value: Buffer.from(value),
    createRevision: revision,
    version: 1,
    lease: '0',
    receivedAt: 1_764_633_600_000 + revision,
  };
}

async function publish(content: SegmentContent): Promise<DeltaManifest> {
  return writeSegment(store, { config: config(), content, chain: { follows: 's', startRevision: 10 }, etcd: ETCD });
}

async function readAll(manifest: DeltaManifest, maxLineBytes?: number): Promise<DeltaEvent[]> {
  const out: DeltaEvent[] = [];
  for await (const e of readSegment({ store, manifest, ...(maxLineBytes ? { maxLineBytes } : {}) })) out.push(e);
  return out;
}

before(async () => {
  work = await tempDir('segment-read');
  store = new FileStore(join(work.path, 's'));
});
after(() => work?.remove());

describe('readSegment', () => {
  it('streams the events back, values split across chunks included', async () => {
    const events = [event(10), event(11, 'x'.repeat(200_000)), event(11, 'y'), event(12)];
    const m = await publish(segmentContent(events));
    assert.deepEqual(await readAll(m), events);
  });

  it('names the segment and line of a line too long or a line that is not an event', async () => {
    const long = await publish(segmentContent([event(20), event(21, 'z'.repeat(5_000))]));
    await assert.rejects(readAll(long, 1_000), (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.match(err.message, /delta segment r0*20-r0*21 \(.* in .*\) line 2: longer than 1000 bytes/);
      return true;
    });
    const lines = [Buffer.from(encodeEvent(event(30))), Buffer.from('{"r":31,"t":"put"}\n')];
    const bad: SegmentContent = {
      chunks: lines,
      firstRevision: 30,
      lastRevision: 31,
      eventCount: 2,
      firstEventAt: 1,
      lastEventAt: 2,
      bytes: lines[0]!.length + lines[1]!.length,
      release: () => undefined,
    };
    await assert.rejects(readAll(await publish(bad)), /delta segment r0*30-r0*31 .* line 2: not a delta event/);
  });

  it('refuses events outside the range, out of order, or fewer than the manifest says', async () => {
    const m = await publish(segmentContent([event(40), event(41)]));
    await assert.rejects(readAll({ ...m, eventCount: 3 }), /holds 2 events up to revision 41, but its manifest says 3/);
    await assert.rejects(
      readAll({ ...m, firstRevision: 39 }),
      /line 1: the first event is at revision 40, the segment starts at 39/,
    );
    await assert.rejects(readAll({ ...m, lastRevision: 40 }), /line 2: revision 41 is outside the segment's 40\.\.40/);
    const swapped = segmentContent([event(50), event(51)]);
    const reversed = [event(51), event(50)].map((e) => Buffer.from(encodeEvent(e)));
    const out: SegmentContent = { ...swapped, chunks: reversed, firstRevision: 50 };
    await assert.rejects(readAll(await publish(out)), /line 1: the first event is at revision 51/);
  });

  it('checks both SHA-256s against the manifest', async () => {
    const m = await publish(segmentContent([event(60), event(61)]));
    await assert.rejects(
      readAll({ ...m, sha256: '0'.repeat(64) }),
      /the events \(\d+ bytes\) hash to [0-9a-f]{64} but the manifest says 0{64}/,
    );
    await assert.rejects(
      readAll({ ...m, storedSha256: '1'.repeat(64) }),
      /the stored bytes \(\d+\) hash to .* but the manifest says 1{64}/,
    );
    await assert.rejects(readAll({ ...m, storedSize: m.storedSize + 1 }), /is \d+ bytes but its manifest says/);
  });
});
