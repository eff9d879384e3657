import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import {
  ensureWebhookCerts,
  makeCerts,
  planCerts,
  startCertManager,
  syncCaBundle,
  type CertSyncOptions,
  type WebhookCerts,
} from '../../certs/manage.js';
import { certDnsNames, createCa, issueCert, issuedBy, serviceDnsNames } from '../../certs/pki.js';
import { FakeKubeApi, type KubeObject, type KubeRequest } from '../support/kube-api.js';
import { waitFor } from '../support/ports.js';

const log = pino({ level: 'silent' });
const NS = 'backup';
const SECRET = 'eab-webhook-tls';
const VWC = 'etcd-autobackup';
const DAY = 86_400_000;

let api: FakeKubeApi;

function options(over: Partial<CertSyncOptions> = {}): CertSyncOptions {
  return {
    kube: api.kubeConfig(NS),
    namespace: NS,
    secretName: SECRET,
    serviceName: 'eab-webhook',
    webhookConfigName: VWC,
    validityDays: 365,
    caValidityDays: 3650,
    renewBeforeMs: 30 * DAY,
    log,
    ...over,
  };
}

function secretCerts(): WebhookCerts {
  const s = api.get('secrets', NS, SECRET);
  assert.ok(s, 'the Secret exists');
  const d = s.data as Record<string, string>;
  const t = (k: string) => Buffer.from(d[k] as string, 'base64').toString('utf8');
  return { caBundle: t('ca.crt'), caKey: t('ca.key'), cert: t('tls.crt'), key: t('tls.key') };
}

function putSecret(certs: WebhookCerts): void {
  const b = (x: string) => Buffer.from(x).toString('base64');
  api.put('secrets', {
    metadata: { name: SECRET, namespace: NS },
    type: 'kubernetes.io/tls',
    data: { 'ca.crt': b(certs.caBundle), 'ca.key': b(certs.caKey), 'tls.crt': b(certs.cert), 'tls.key': b(certs.key) },
  });
}

function putWebhookConfig(): void {
  const hook = (name: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'NoneOnDryRun',
    clientConfig: { service: { name: 'eab-webhook', namespace: NS, path: '/admission', port: 443 } },
  });
  api.put('validatingwebhookconfigurations', {
    metadata: { name: VWC },
    webhooks: [hook('a.etcd-autobackup.io'), hook('b.etcd-autobackup.io')],
  });
}

/** Holds matching requests until `count` of them have arrived, so that replicas race for real. */
function barrier(count: number, match: (r: KubeRequest) => boolean): void {
  const waiting: (() => void)[] = [];
  api.gate = async (r) => {
    if (!match(r) || waiting.length >= count) return;
    await new Promise<void>((resolve) => {
      waiting.push(resolve);
      if (waiting.length === count) for (const w of waiting) w();
    });
  };
}

function assertCovers(certs: WebhookCerts): void {
  assert.deepEqual(certDnsNames(certs.cert).sort(), serviceDnsNames('eab-webhook', NS).sort());
  assert.ok(issuedBy(certs.cert, certs.caBundle), 'serving cert signed by the CA');
  const x = new X509Certificate(certs.cert);
  assert.ok(x.checkPrivateKey(createPrivateKey(certs.key)), 'key matches the certificate');
}

before(async () => {
  api = await FakeKubeApi.start();
});
after(async () => {
  await api.close();
});
beforeEach(() => {
  api.gate = undefined;
});

describe('planCerts', () => {
  const names = serviceDnsNames('eab-webhook', NS);
  const opts = { namespace: NS, serviceName: 'eab-webhook', validityDays: 365, caValidityDays: 3650 };
  const now = new Date('2030-01-01T00:00:00Z');
  const fresh = makeCerts('all', undefined, opts, now);

  test('keeps fresh certificates and renews near expiry, for other names, or a foreign CA', () => {
    assert.equal(planCerts(undefined, names, 30 * DAY, now), 'all');
    assert.equal(planCerts(fresh, names, 30 * DAY, now), 'keep');
    assert.equal(planCerts(fresh, names, 30 * DAY, new Date(now.getTime() + 340 * DAY)), 'serving');
    assert.equal(planCerts(fresh, [...names, 'other.example'], 30 * DAY, now), 'serving');
    assert.equal(planCerts(fresh, names, 30 * DAY, new Date(now.getTime() + 3630 * DAY)), 'all');
    const other = createCa('other');
    assert.equal(
      planCerts({ ...fresh, cert: issueCert(other, { commonName: 'x', dnsNames: names }).cert }, names, 30 * DAY, now),
      'serving',
    );
    assert.equal(planCerts({ ...fresh, caBundle: 'garbage' }, names, 30 * DAY, now), 'all');
  });

  test('a new CA keeps the previous one in the bundle', () => {
    const rotated = makeCerts('all', fresh, opts, now);
    assert.equal(rotated.caBundle.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.ok(rotated.caBundle.includes(fresh.caBundle.trim()));
    assert.ok(issuedBy(rotated.cert, rotated.caBundle));
    assert.ok(!issuedBy(rotated.cert, fresh.caBundle));
  });
});

describe('ensureWebhookCerts and syncCaBundle against the API', () => {
  test('the first replica creates the Secret; the caBundle is patched with a resourceVersion precondition', async () => {
    putWebhookConfig();
    const before = api.requests.length;
    const { certs, action } = await ensureWebhookCerts(options());
    assert.equal(action, 'created');
    assertCovers(certs);
    assert.deepEqual(secretCerts(), certs);
    const secret = api.get('secrets', NS, SECRET) as KubeObject;
    assert.equal(secret.type, 'kubernetes.io/tls');

    const reqs = api.requests.slice(before);
    assert.deepEqual(
      reqs.map((r) => `${r.verb} ${r.resource}`),
      ['get secrets', 'create secrets'],
    );
    assert.equal(reqs[1]?.path, `/api/v1/namespaces/${NS}/secrets`);

    const rvBefore = api.get('validatingwebhookconfigurations', undefined, VWC)?.metadata.resourceVersion;
    assert.equal(await syncCaBundle(options(), certs.caBundle), 'patched');
    const patch = api.requestsOf('patch', 'validatingwebhookconfigurations').at(-1);
    assert.equal(patch?.contentType, 'application/json-patch+json');
    assert.deepEqual((patch?.body as unknown[])[0], {
      op: 'replace',
      path: '/metadata/resourceVersion',
      value: rvBefore,
    });
    const vwc = api.get('validatingwebhookconfigurations', undefined, VWC) as KubeObject;
    for (const w of vwc.webhooks as { clientConfig: { caBundle?: string } }[]) {
      assert.equal(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString(), certs.caBundle);
    }
    // Already current: no write.
    const patches = api.requestsOf('patch').length;
    assert.equal(await syncCaBundle(options(), certs.caBundle), 'unchanged');
    assert.equal(api.requestsOf('patch').length, patches);
    assert.deepEqual(api.problems, []);
  });

  test("two replicas starting together: one creates, the other gets AlreadyExists and uses the winner's Secret", async () => {
    await deleteSecret();
    barrier(2, (r) => r.verb === 'get' && r.resource === 'secrets');
    const before = api.requests.length;
    const [a, b] = await Promise.all([ensureWebhookCerts(options()), ensureWebhookCerts(options())]);
    assert.deepEqual(a.certs, b.certs, 'both replicas serve the same certificate');
    assert.deepEqual([a.action, b.action].sort(), ['adopted', 'created']);
    assert.deepEqual(secretCerts(), a.certs);
    const creates = api.requests.slice(before).filter((r) => r.verb === 'create');
    assert.equal(creates.length, 2, 'both tried to create');
    assert.deepEqual(api.problems, []);
  });

  test('renewal near expiry keeps the CA; two replicas renewing at once: one writes, the other gets 409 and re-reads', async () => {
    const ca = createCa('eab test CA', 3650);
    const old = issueCert(ca, { commonName: 'eab-webhook', dnsNames: serviceDnsNames('eab-webhook', NS), days: 10 });
    putSecret({ caBundle: ca.cert, caKey: ca.key, cert: old.cert, key: old.key });
    barrier(2, (r) => r.verb === 'get' && r.resource === 'secrets');
    const before = api.requests.length;
    const [a, b] = await Promise.all([ensureWebhookCerts(options()), ensureWebhookCerts(options())]);
    assert.deepEqual(a.certs, b.certs);
    assert.deepEqual([a.action, b.action].sort(), ['adopted', 'renewed']);
    assert.equal(a.certs.caBundle, ca.cert, 'the CA stays: the caBundle need not change');
    assert.notEqual(a.certs.cert, old.cert);
    assertCovers(a.certs);
    assert.ok(new Date(new X509Certificate(a.certs.cert).validTo).getTime() > Date.now() + 300 * DAY);
    const updates = api.requests.slice(before).filter((r) => r.verb === 'update');
    assert.equal(updates.length, 2);
    for (const u of updates)
      assert.ok((u.body as KubeObject).metadata.resourceVersion, 'updates carry the resourceVersion');
    assert.deepEqual(secretCerts(), a.certs);
    assert.deepEqual(api.problems, []);
  });

  test('CA rotation: a CA near expiry is replaced, the caBundle carries both CAs, and TLS to the old and the new serving certificate verifies against it', async () => {
    putWebhookConfig();
    const oldCa = createCa('eab expiring CA', 20);
    const oldServing = issueCert(oldCa, { commonName: 'eab-webhook', dnsNames: serviceDnsNames('eab-webhook', NS) });
    putSecret({ caBundle: oldCa.cert, caKey: oldCa.key, cert: oldServing.cert, key: oldServing.key });

    const { certs, action } = await ensureWebhookCerts(options());
    assert.equal(action, 'renewed');
    assert.notEqual(certs.caKey, oldCa.key, 'a new CA key');
    assert.equal(certs.caBundle.match(/BEGIN CERTIFICATE/g)?.length, 2, 'new CA and the previous one');
    assert.ok(certs.caBundle.includes(oldCa.cert.trim()), 'the previous CA stays in the bundle');
    assertCovers(certs);
    assert.deepEqual(secretCerts(), certs);

    assert.equal(await syncCaBundle(options(), certs.caBundle), 'patched');
    const vwc = api.get('validatingwebhookconfigurations', undefined, VWC) as KubeObject;
    const bundles = (vwc.webhooks as { clientConfig: { caBundle?: string } }[]).map((w) =>
      Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString(),
    );
    assert.deepEqual(bundles, [certs.caBundle, certs.caBundle]);

    // What the apiserver does with the bundle: a replica still serving the old certificate and one
    // already serving the new one must both be trusted, so no admission call fails mid-rotation.
    for (const served of [oldServing, { cert: certs.cert, key: certs.key }]) {
      const server = createHttpsServer({ cert: served.cert, key: served.key }, (_req, res) => res.end('ok'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const body = await new Promise<string>((resolve, reject) => {
          const req = httpsRequest(
            { host: '127.0.0.1', port, path: '/', ca: bundles[0], servername: `eab-webhook.${NS}.svc` },
            (res) => {
              let text = '';
              res.on('data', (c: Buffer) => (text += c.toString()));
              res.on('end', () => resolve(text));
            },
          );
          req.on('error', reject);
          req.end();
        });
        assert.equal(body, 'ok');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
    assert.deepEqual(api.problems, []);
  });

  test('a caBundle patch that meets a concurrent change is retried', async () => {
    putWebhookConfig();
    let bumped = false;
    api.gate = async (r) => {
      if (r.verb === 'patch' && !bumped) {
        bumped = true;
        api.modify('validatingwebhookconfigurations', undefined, VWC, (o) => {
          (o.metadata.labels ??= {})['touched'] = 'yes';
        });
      }
      await Promise.resolve();
    };
    const certs = secretCerts();
    const patchesBefore = api.requestsOf('patch').length;
    assert.equal(await syncCaBundle(options(), certs.caBundle), 'patched');
    assert.equal(api.requestsOf('patch').length - patchesBefore, 2, 'first patch conflicted, second applied');
    const vwc = api.get('validatingwebhookconfigurations', undefined, VWC) as KubeObject;
    assert.equal(vwc.metadata.labels?.touched, 'yes', 'the concurrent change is kept');
    assert.ok(
      (vwc.webhooks as { clientConfig: { caBundle?: string } }[]).every(
        (w) => w.clientConfig.caBundle === Buffer.from(certs.caBundle).toString('base64'),
      ),
    );
    assert.deepEqual(api.problems, []);
  });

  test('a missing webhook configuration is reported, not fatal', async () => {
    assert.equal(
      await syncCaBundle(options({ webhookConfigName: 'not-installed' }), secretCerts().caBundle),
      'missing',
    );
  });

  test('the manager picks up a certificate renewed by another replica', async () => {
    const seen: WebhookCerts[] = [];
    const manager = await startCertManager({ ...options(), checkIntervalMs: 50, onChange: (c) => seen.push(c) });
    try {
      const first = manager.current();
      const renewed = makeCerts('serving', first, options(), new Date());
      putSecret(renewed);
      await waitFor('the manager to see the renewal', () => Promise.resolve(seen.length > 0 ? true : undefined));
      assert.equal(seen[0]?.cert, renewed.cert);
      assert.equal(manager.current().cert, renewed.cert);
    } finally {
      manager.stop();
    }
    assert.deepEqual(api.problems, []);
  });
});

async function deleteSecret(): Promise<void> {
  const { CoreV1Api } = await import('@kubernetes/client-node');
  await api.kubeConfig(NS).makeApiClient(CoreV1Api).deleteNamespacedSecret({ name: SECRET, namespace: NS });
}
