import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filtersSchema } from '../../core/config/schema.js';
import {
  filterAdmissionRequest,
  filterAuditEvent,
  isDryRun,
  resourceLabel,
  type FilterDecision,
} from '../../webhook/filters.js';
import { admissionRequestSchema, auditEventSchema, type AuditEvent } from '../../webhook/wire.js';
import { fixture } from './harness.js';

const defaults = filtersSchema.parse({});

interface Expected {
  triggers: string[];
  ignored: Record<string, string>;
}

const events = fixture<{ items: unknown[] }>('audit-eventlist-mixed.json').items.map((i) => auditEventSchema.parse(i));
const expected = fixture<Expected>('audit-eventlist-mixed.expected.json');

/** The fixture keys events by auditID, or auditID@stage where one id has several stages. */
function keyOf(e: AuditEvent, all: AuditEvent[]): string {
  const id = e.auditID ?? '';
  return all.filter((o) => o.auditID === id).length > 1 && e.stage !== 'ResponseComplete' ? `${id}@${e.stage}` : id;
}

// The expected file explains each ignored event in prose; these are the reasons its prose names.
const REASON_OF_PROSE: Array<[RegExp, string]> = [
  [/^stage /, 'stage'],
  [/^verb /, 'verb'],
  [/leases|events are high-churn/, 'resource'],
  [/^403/, 'status'],
  [/dryRun=All/, 'dry-run'],
];

test('the mixed audit batch triggers exactly the expected events, and ignores the rest for their reasons', () => {
  const triggers: string[] = [];
  const ignored: Record<string, string> = {};
  for (const e of events) {
    const d = filterAuditEvent(e, defaults);
    if (d.trigger) triggers.push(keyOf(e, events));
    else ignored[keyOf(e, events)] = d.reason;
  }
  assert.deepEqual(triggers, expected.triggers);
  const wanted = Object.fromEntries(
    Object.entries(expected.ignored).map(([key, prose]) => {
      const reason = REASON_OF_PROSE.find(([re]) => re.test(prose))?.[1];
      assert.ok(reason, `no reason label mapped for "${prose}"`);
      return [key, reason];
    }),
  );
  assert.deepEqual(ignored, wanted);
});

test('triggers carry a group/resource namespace/name label', () => {
  const labels = events
    .map((e) => filterAuditEvent(e, defaults))
    .filter((d) => d.trigger)
    .map((d) => d.resource);
  assert.deepEqual(labels, [
    'pods default/nginx',
    'apps/deployments shop/web',
    'apiextensions.k8s.io/customresourcedefinitions certificates.cert-manager.io',
  ]);
});

function auditWrite(patch: Partial<Record<string, unknown>> = {}): AuditEvent {
  return auditEventSchema.parse({
    auditID: 'x',
    stage: 'ResponseComplete',
    verb: 'update',
    requestURI: '/apis/apps/v1/namespaces/shop/deployments/web',
    user: { username: 'alice' },
    objectRef: { resource: 'deployments', apiGroup: 'apps', namespace: 'shop', name: 'web' },
    responseStatus: { code: 200 },
    ...patch,
  });
}

test('audit filters: status, subresources, users, impersonation, missing objectRef', () => {
  const reason = (d: FilterDecision) => (d.trigger ? 'trigger' : d.reason);
  assert.equal(reason(filterAuditEvent(auditWrite(), defaults)), 'trigger');
  assert.equal(reason(filterAuditEvent(auditWrite({ responseStatus: { code: 409 } }), defaults)), 'status');
  assert.equal(reason(filterAuditEvent(auditWrite({ responseStatus: undefined }), defaults)), 'status');
  assert.equal(reason(filterAuditEvent(auditWrite({ stage: 'ResponseStarted' }), defaults)), 'stage');
  assert.equal(reason(filterAuditEvent(auditWrite({ stage: 'Panic' }), defaults)), 'stage');
  assert.equal(reason(filterAuditEvent(auditWrite({ verb: 'watch' }), defaults)), 'verb');
  assert.equal(reason(filterAuditEvent(auditWrite({ objectRef: undefined }), defaults)), 'resource');

  const exec = auditWrite({
    verb: 'create',
    objectRef: { resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-1' },
  });
  assert.equal(reason(filterAuditEvent(exec, defaults)), 'subresource');
  const scale = auditWrite({
    objectRef: { resource: 'deployments', apiGroup: 'apps', subresource: 'scale', namespace: 'shop', name: 'web' },
  });
  assert.deepEqual(filterAuditEvent(scale, defaults), { trigger: true, resource: 'apps/deployments/scale shop/web' });

  const noisy = filtersSchema.parse({ ignoreUsers: ['system:serviceaccount:kube-system:noisy'] });
  assert.equal(
    reason(filterAuditEvent(auditWrite({ user: { username: 'system:serviceaccount:kube-system:noisy' } }), noisy)),
    'user',
  );
  assert.equal(reason(filterAuditEvent(auditWrite(), noisy)), 'trigger');
  // An impersonated request writes as the impersonated user.
  const impersonating = auditWrite({
    user: { username: 'alice' },
    impersonatedUser: { username: 'system:serviceaccount:kube-system:noisy' },
  });
  assert.equal(reason(filterAuditEvent(impersonating, noisy)), 'user');

  // ignoreResources uses `group/resource`, and the core group is the bare resource.
  const noConfigMaps = filtersSchema.parse({ ignoreResources: ['configmaps'] });
  const cm = auditWrite({ objectRef: { resource: 'configmaps', namespace: 'shop', name: 'c' } });
  assert.equal(reason(filterAuditEvent(cm, noConfigMaps)), 'resource');
  assert.equal(reason(filterAuditEvent(auditWrite(), noConfigMaps)), 'trigger');
});

test('dry runs are recognised from the requestURI query only', () => {
  assert.equal(isDryRun('/api/v1/namespaces/shop/configmaps/web-config?dryRun=All'), true);
  assert.equal(isDryRun('/api/v1/namespaces/shop/configmaps?fieldManager=kubectl&dryRun=All'), true);
  assert.equal(isDryRun('/api/v1/namespaces/dryRun=All/configmaps'), false);
  assert.equal(isDryRun('/api/v1/namespaces/shop/configmaps?dryRun='), false);
  assert.equal(isDryRun('/api/v1/namespaces/shop/configmaps'), false);
});

test('resource labels for core, cluster-scoped and unnamed targets', () => {
  assert.equal(resourceLabel({ group: '', resource: 'namespaces', name: 'shop' }), 'namespaces shop');
  assert.equal(resourceLabel({ group: '', resource: 'pods', namespace: 'shop' }), 'pods shop/*');
  assert.equal(
    resourceLabel({ group: 'rbac.authorization.k8s.io', resource: 'clusterroles' }),
    'rbac.authorization.k8s.io/clusterroles',
  );
});

test('admission requests: operations, dry run, and the shared resource/user filters', () => {
  const review = fixture<{ request: unknown }>('admission-review-update.json');
  const request = admissionRequestSchema.parse(review.request);
  assert.deepEqual(filterAdmissionRequest(request, defaults), { trigger: true, resource: 'apps/deployments shop/web' });
  assert.deepEqual(filterAdmissionRequest({ ...request, dryRun: true }, defaults), {
    trigger: false,
    reason: 'dry-run',
  });
  assert.deepEqual(filterAdmissionRequest({ ...request, operation: 'CONNECT' }, defaults), {
    trigger: false,
    reason: 'verb',
  });
  // CONNECT stays ignored even if someone lists a connect verb.
  assert.deepEqual(
    filterAdmissionRequest({ ...request, operation: 'CONNECT' }, filtersSchema.parse({ verbs: ['connect', 'create'] })),
    {
      trigger: false,
      reason: 'verb',
    },
  );
  // Names from Object.prototype are not operations.
  assert.deepEqual(filterAdmissionRequest({ ...request, operation: 'toString' }, defaults), {
    trigger: false,
    reason: 'verb',
  });
  // UPDATE covers patch: a verbs list with only patch still sees it.
  assert.equal(filterAdmissionRequest(request, filtersSchema.parse({ verbs: ['patch'] })).trigger, true);
  assert.equal(filterAdmissionRequest(request, filtersSchema.parse({ verbs: ['create'] })).trigger, false);
  assert.deepEqual(
    filterAdmissionRequest({ ...request, resource: { group: 'coordination.k8s.io', resource: 'leases' } }, defaults),
    {
      trigger: false,
      reason: 'resource',
    },
  );
  assert.deepEqual(filterAdmissionRequest({ ...request, subResource: 'exec' }, defaults), {
    trigger: false,
    reason: 'subresource',
  });
  assert.deepEqual(filterAdmissionRequest(request, filtersSchema.parse({ ignoreUsers: ['kubernetes-admin'] })), {
    trigger: false,
    reason: 'user',
  });
});
