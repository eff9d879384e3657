import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../core/config/index.js';
import { filterKey, keyResource } from '../../webhook/etcd-keys.js';

const watch = configSchema.parse({}).watch;

describe('filterKey', () => {
  test('keys under the prefix trigger with a readable resource', () => {
    assert.deepEqual(filterKey('/registry/deployments/shop/web', watch), {
      trigger: true,
      resource: 'deployments shop/web',
    });
    assert.deepEqual(filterKey('/registry/namespaces/shop', watch), { trigger: true, resource: 'namespaces shop' });
  });

  test('the default ignore list drops leases, events and master leases', () => {
    for (const key of [
      '/registry/leases/kube-node-lease/node-1',
      '/registry/events/shop/web.17a',
      '/registry/masterleases/10.0.0.1',
    ]) {
      assert.deepEqual(filterKey(key, watch), { trigger: false, reason: 'ignored-prefix' }, key);
    }
  });

  test('keys outside the prefix do not trigger', () => {
    assert.deepEqual(filterKey('/other/deployments/shop/web', watch), { trigger: false, reason: 'outside-prefix' });
    assert.deepEqual(filterKey('/registr', watch), { trigger: false, reason: 'outside-prefix' });
  });

  test('a configured prefix and ignore list replace the defaults', () => {
    const custom = { prefix: '/k8s/', ignorePrefixes: ['/k8s/configmaps/kube-system/'] };
    assert.deepEqual(filterKey('/k8s/configmaps/kube-system/x', custom), { trigger: false, reason: 'ignored-prefix' });
    assert.deepEqual(filterKey('/k8s/leases/a/b', custom), { trigger: true, resource: 'leases a/b' });
    assert.deepEqual(filterKey('/registry/pods/a/b', custom), { trigger: false, reason: 'outside-prefix' });
  });
});

describe('keyResource', () => {
  test('a first segment with a dot is a group', () => {
    assert.equal(
      keyResource('/registry/cert-manager.io/certificates/shop/tls', '/registry/'),
      'cert-manager.io/certificates shop/tls',
    );
    assert.equal(
      keyResource('/registry/apiregistration.k8s.io/apiservices/v1.apps', '/registry/'),
      'apiregistration.k8s.io/apiservices v1.apps',
    );
  });

  test('other layouts keep their segments', () => {
    assert.equal(keyResource('/registry/services/specs/shop/web', '/registry/'), 'services specs/shop/web');
    assert.equal(keyResource('/registry/ranges/serviceips', '/registry/'), 'ranges serviceips');
    assert.equal(keyResource('/registry/pods', '/registry/'), 'pods');
  });

  test('a key with nothing after the prefix is shown whole', () => {
    assert.equal(keyResource('/registry/', '/registry/'), '/registry/');
  });

  test('control characters are replaced and long keys are cut', () => {
    assert.equal(keyResource('/registry/pods/a\nb/c', '/registry/'), 'pods a?b/c');
    const long = keyResource(`/registry/pods/ns/${'x'.repeat(1000)}`, '/registry/');
    assert.ok(long.length <= 320, `length ${long.length}`);
    assert.ok(long.startsWith('pods ns/xxx'));
    assert.ok(long.endsWith('…'));
  });
});
