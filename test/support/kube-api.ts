/**
 * A small Kubernetes API server for tests: HTTPS on loopback, speaking the JSON of the paths this
 * project uses (Secrets, ValidatingWebhookConfigurations, Jobs with watch, Pods and their logs).
 * It keeps objects in memory with resourceVersions (a stale update gets 409 Conflict, a duplicate
 * create 409 AlreadyExists), applies JSON and merge patches, and checks every request: its verb,
 * path, content type, bearer token and body. Whatever it finds wrong is answered with the status
 * the real apiserver would give and listed in `problems`, which tests assert empty.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { createCa, issueCert, type Pem } from '../../certs/pki.js';

export type KubeObject = Record<string, unknown> & { metadata: Metadata };
interface Metadata {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  labels?: Record<string, string>;
  [key: string]: unknown;
}

interface Resource {
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

const RESOURCES: Record<string, Resource> = {
  secrets: { group: '', version: 'v1', kind: 'Secret', namespaced: true },
  pods: { group: '', version: 'v1', kind: 'Pod', namespaced: true },
  jobs: { group: 'batch', version: 'v1', kind: 'Job', namespaced: true },
  deployments: { group: 'apps', version: 'v1', kind: 'Deployment', namespaced: true },
  events: { group: 'events.k8s.io', version: 'v1', kind: 'Event', namespaced: true },
  validatingwebhookconfigurations: {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'ValidatingWebhookConfiguration',
    namespaced: false,
  },
};

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'log';

export interface KubeRequest {
  verb: Verb;
  method: string;
  path: string;
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  query: URLSearchParams;
  contentType: string | undefined;
  body: unknown;
}

type CreateHook = (object: KubeObject, api: FakeKubeApi) => void;

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: string;
  object: KubeObject;
}

/** One rule of a Role, as rbac.authorization.k8s.io/v1 writes it. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** Whether `rules` let a client do `verb` on `resource` (`pods/log` for logs), as RBAC decides. */
export function rbacAllows(
  rules: readonly PolicyRule[],
  group: string,
  resource: string,
  verb: string,
  name?: string,
): boolean {
  return rules.some(
    (r) =>
      (r.apiGroups.includes(group) || r.apiGroups.includes('*')) &&
      (r.resources.includes(resource) || r.resources.includes('*')) &&
      (r.verbs.includes(verb) || r.verbs.includes('*')) &&
      // resourceNames never match list, watch or create: RBAC cannot limit those by name.
      (r.resourceNames === undefined ||
        r.resourceNames.length === 0 ||
        (name !== undefined && verb !== 'create' && r.resourceNames.includes(name))),
  );
}

export interface FakeKubeApiOptions {
  /** Bearer token the clients must send. */
  token?: string;
  /** Also flag an update (PUT) without metadata.resourceVersion, i.e. without optimistic concurrency. */
  requireResourceVersionOnUpdate?: boolean;
}

export class FakeKubeApi {
  readonly requests: KubeRequest[] = [];
  readonly problems: string[] = [];
  readonly ca: Pem;
  url = '';
  private readonly objects = new Map<string, KubeObject>();
  private readonly logs = new Map<string, string>();
  private readonly events: WatchEvent[] = [];
  private readonly watchers = new Set<(e: WatchEvent) => void>();
  private readonly hooks = new Map<string, CreateHook[]>();
  private readonly responses = new Set<ServerResponse>();
  private rv = 100;
  private server: Server | undefined;
  private readonly token: string;
  /**
   * The Role of the client's service account: with it set, a request no rule allows is answered 403
   * Forbidden, as RBAC does, and noted in `problems`, so code and chart cannot drift apart.
   */
  rbac: readonly PolicyRule[] | undefined;
  /** Runs before each request is handled (after it is recorded): tests hold requests here to force races. */
  gate: ((req: KubeRequest) => Promise<void>) | undefined;

  private constructor(
    private readonly serving: Pem,
    ca: Pem,
    private readonly options: FakeKubeApiOptions,
  ) {
    this.ca = ca;
    this.token = options.token ?? 'test-token';
  }

  static async start(options: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
    const ca = createCa('fake-kube-ca');
    const serving = issueCert(ca, {
      commonName: 'kube-apiserver',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    const api = new FakeKubeApi(serving, ca, options);
    await api.listen();
    return api;
  }

  private async listen(): Promise<void> {
    const server = createServer({ cert: this.serving.cert, key: this.serving.key }, (req, res) => {
      this.responses.add(res);
      res.on('close', () => this.responses.delete(res));
      void this.handle(req, res).catch((err: unknown) => {
        this.problems.push(`internal: ${String(err)}`);
        if (!res.headersSent) this.status(res, 500, 'InternalError', String(err));
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** A client config for this server, through the real loader (server URL, CA data, token). */
  kubeConfig(namespace = 'default'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'fake', server: this.url, caData: Buffer.from(this.ca.cert).toString('base64'), skipTLSVerify: false },
      ],
      users: [{ name: 'tester', token: this.token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester', namespace }],
      currentContext: 'fake',
    });
    return kc;
  }

  async close(): Promise<void> {
    for (const res of this.responses) res.destroy();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Runs `hook` after each successful create of `resource` (a stand-in for a controller). */
  onCreate(resource: string, hook: CreateHook): void {
    this.hooks.set(resource, [...(this.hooks.get(resource) ?? []), hook]);
  }

  requestsOf(verb: Verb, resource?: string): KubeRequest[] {
    return this.requests.filter((r) => r.verb === verb && (resource === undefined || r.resource === resource));
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(key(resource, namespace, name));
    return o === undefined ? undefined : clone(o);
  }

  list(resource: string, namespace?: string): KubeObject[] {
    return [...this.objects.entries()]
      .filter(
        ([k]) =>
          k.startsWith(`${resource}/${namespace ?? ''}/`) || (namespace === undefined && k.startsWith(`${resource}/`)),
      )
      .map(([, o]) => clone(o));
  }

  /** Creates or replaces an object as a controller would (no request recorded). */
  put(resource: string, object: Record<string, unknown>): KubeObject {
    const res = resourceOf(resource);
    const obj = clone(object) as KubeObject;
    obj.apiVersion = apiVersionOf(res);
    obj.kind = res.kind;
    const k = key(resource, obj.metadata.namespace, obj.metadata.name);
    const existing = this.objects.get(k);
    obj.metadata.uid = existing?.metadata.uid ?? obj.metadata.uid ?? randomUUID();
    obj.metadata.creationTimestamp ??= existing?.metadata.creationTimestamp ?? new Date().toISOString();
    return this.store(resource, obj, existing ? 'MODIFIED' : 'ADDED');
  }

  /** Changes a stored object as a controller would (e.g. a Job's status). */
  modify(resource: string, namespace: string | undefined, name: string, change: (o: KubeObject) => void): KubeObject {
    const existing = this.objects.get(key(resource, namespace, name));
    if (!existing) throw new Error(`no ${resource} ${namespace ?? ''}/${name}`);
    const obj = clone(existing);
    change(obj);
    return this.store(resource, obj, 'MODIFIED');
  }

  /** Deletes an object as a person or a controller would (watchers see DELETED). */
  remove(resource: string, namespace: string | undefined, name: string): void {
    const o = this.objects.get(key(resource, namespace, name));
    if (o) this.removeObject(resource, o);
  }

  setLog(namespace: string, pod: string, text: string): void {
    this.logs.set(`${namespace}/${pod}`, text);
  }

  private store(resource: string, obj: KubeObject, type: WatchEvent['type']): KubeObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    this.objects.set(key(resource, obj.metadata.namespace, obj.metadata.name), obj);
    this.emit({ rv: this.rv, type, resource, object: clone(obj) });
    return clone(obj);
  }

  private removeObject(resource: string, obj: KubeObject): void {
    this.rv++;
    this.objects.delete(key(resource, obj.metadata.namespace, obj.metadata.name));
    const gone = clone(obj);
    gone.metadata.resourceVersion = String(this.rv);
    this.emit({ rv: this.rv, type: 'DELETED', resource, object: gone });
  }

  private emit(event: WatchEvent): void {
    this.events.push(event);
    for (const w of this.watchers) w(event);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const route = parsePath(url.pathname);
    const text = await readBody(req);
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    let body: unknown = undefined;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        this.problems.push(`${req.method} ${url.pathname}: body is not JSON`);
        this.status(res, 400, 'BadRequest', 'body is not JSON');
        return;
      }
    }
    const method = req.method ?? 'GET';
    if (!route) {
      this.problems.push(`${method} ${url.pathname}: no such API path`);
      this.status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
      return;
    }
    const verb = verbOf(method, route, url.searchParams);
    const recorded: KubeRequest = {
      verb: verb ?? 'get',
      method,
      path: url.pathname,
      resource: route.resource,
      namespace: route.namespace,
      name: route.name,
      query: url.searchParams,
      contentType,
      body,
    };
    this.requests.push(recorded);
    if (this.gate) await this.gate(recorded);
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.problems.push(`${method} ${url.pathname}: missing or wrong bearer token`);
      this.status(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    if (verb === undefined) {
      this.problems.push(`${method} ${url.pathname}: method not allowed`);
      this.status(res, 405, 'MethodNotAllowed', `${method} is not supported here`);
      return;
    }
    const res0 = RESOURCES[route.resource];
    if (!res0 || res0.namespaced !== (route.namespace !== undefined)) {
      this.problems.push(`${method} ${url.pathname}: unknown resource or wrong scope`);
      this.status(res, 404, 'NotFound', `the server could not find the requested resource`);
      return;
    }
    const r: Route = { ...route, def: res0 };
    if (this.rbac) {
      const [rbacResource, rbacVerb] = verb === 'log' ? [`${route.resource}/log`, 'get'] : [route.resource, verb];
      if (!rbacAllows(this.rbac, res0.group, rbacResource, rbacVerb, route.name)) {
        this.problems.push(`${method} ${url.pathname}: RBAC forbids ${rbacVerb} ${rbacResource}`);
        this.status(
          res,
          403,
          'Forbidden',
          `${rbacResource} is forbidden: User "system:serviceaccount:test:fake" cannot ${rbacVerb} resource "${rbacResource}"`,
        );
        return;
      }
    }
    switch (verb) {
      case 'get':
        return this.doGet(res, r);
      case 'list':
        return this.doList(res, r, url.searchParams);
      case 'watch':
        return this.doWatch(req, res, r, url.searchParams);
      case 'create':
        return this.doCreate(res, r, body, contentType);
      case 'update':
        return this.doUpdate(res, r, body, contentType);
      case 'patch':
        return this.doPatch(res, r, body, contentType);
      case 'delete':
        return this.doDelete(res, r, body);
      case 'log':
        return this.doLog(res, r, url.searchParams);
    }
  }

  private doGet(res: ServerResponse, r: Route): void {
    const obj = this.objects.get(key(r.resource, r.namespace, r.name ?? ''));
    if (!obj) return this.notFound(res, r);
    this.json(res, 200, obj);
  }

  private doList(res: ServerResponse, r: Route, query: URLSearchParams): void {
    const items = this.matching(r, query);
    this.json(res, 200, {
      apiVersion: apiVersionOf(r.def),
      kind: `${r.def.kind}List`,
      metadata: { resourceVersion: String(this.rv) },
      items,
    });
  }

  private matching(r: Route, query: URLSearchParams): KubeObject[] {
    const labels = parseSelector(query.get('labelSelector') ?? '');
    const fields = parseSelector(query.get('fieldSelector') ?? '');
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${r.resource}/${r.namespace ?? ''}/`))
      .map(([, o]) => o)
      .filter((o) => matches(o.metadata.labels ?? {}, labels) && matches(fieldsOf(o), fields));
  }

  private doWatch(req: IncomingMessage, res: ServerResponse, r: Route, query: URLSearchParams): void {
    const labels = parseSelector(query.get('labelSelector') ?? '');
    const fields = parseSelector(query.get('fieldSelector') ?? '');
    const from = query.get('resourceVersion');
    const wanted = (e: WatchEvent) =>
      e.resource === r.resource &&
      (r.namespace === undefined || e.object.metadata.namespace === r.namespace) &&
      matches(e.object.metadata.labels ?? {}, labels) &&
      matches(fieldsOf(e.object), fields);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const send = (e: WatchEvent) => {
      if (wanted(e)) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    };
    if (from === null || from === '' || from === '0') {
      for (const o of this.matching(r, query)) res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
    } else {
      for (const e of this.events.filter((e) => e.rv > Number(from))) send(e);
    }
    this.watchers.add(send);
    const timeout = Number(query.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    const stop = () => {
      clearTimeout(timer);
      this.watchers.delete(send);
    };
    req.on('close', stop);
    res.on('close', stop);
  }

  private checkBody(method: string, r: Route, body: unknown, contentType: string | undefined): KubeObject | string {
    if (contentType !== 'application/json')
      return `${method} ${r.resource}: content-type ${contentType ?? 'none'}, expected application/json`;
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return `${method} ${r.resource}: body is not an object`;
    const obj = body as KubeObject;
    if (obj.apiVersion !== apiVersionOf(r.def) || obj.kind !== r.def.kind) {
      return `${method} ${r.resource}: apiVersion/kind ${String(obj.apiVersion)}/${String(obj.kind)}, expected ${apiVersionOf(r.def)}/${r.def.kind}`;
    }
    const meta = obj.metadata as Metadata | undefined;
    if (typeof meta?.name !== 'string' || meta.name === '') return `${method} ${r.resource}: metadata.name is missing`;
    if (meta.namespace !== undefined && meta.namespace !== r.namespace)
      return `${method} ${r.resource}: metadata.namespace ${meta.namespace} does not match the path`;
    if (r.name !== undefined && meta.name !== r.name)
      return `${method} ${r.resource}: metadata.name ${meta.name} does not match the path`;
    if (r.resource === 'events') return eventProblem(obj) ?? obj;
    return obj;
  }

  private doCreate(res: ServerResponse, r: Route, body: unknown, contentType: string | undefined): void {
    const checked = this.checkBody('create', r, body, contentType);
    if (typeof checked === 'string') return this.invalid(res, r, checked);
    if (checked.metadata.resourceVersion)
      return this.invalid(res, r, 'create: metadata.resourceVersion must not be set');
    const k = key(r.resource, r.namespace, checked.metadata.name);
    if (this.objects.has(k)) {
      return this.status(res, 409, 'AlreadyExists', `${r.resource} "${checked.metadata.name}" already exists`, {
        name: checked.metadata.name,
        kind: r.resource,
      });
    }
    const obj = clone(checked);
    if (r.namespace !== undefined) obj.metadata.namespace = r.namespace;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = new Date().toISOString();
    const stored = this.store(r.resource, obj, 'ADDED');
    this.json(res, 201, stored);
    for (const hook of this.hooks.get(r.resource) ?? []) hook(clone(stored), this);
  }

  private doUpdate(res: ServerResponse, r: Route, body: unknown, contentType: string | undefined): void {
    const checked = this.checkBody('update', r, body, contentType);
    if (typeof checked === 'string') return this.invalid(res, r, checked);
    const k = key(r.resource, r.namespace, r.name ?? '');
    const current = this.objects.get(k);
    if (!current) return this.notFound(res, r);
    const rv = checked.metadata.resourceVersion;
    if (rv === undefined && this.options.requireResourceVersionOnUpdate !== false) {
      this.problems.push(`update ${r.resource}/${r.name ?? ''}: no metadata.resourceVersion (an unconditional update)`);
    }
    if (rv !== undefined && rv !== current.metadata.resourceVersion) return this.conflict(res, r);
    this.finishWrite(res, r, current, clone(checked));
  }

  private doPatch(res: ServerResponse, r: Route, body: unknown, contentType: string | undefined): void {
    const k = key(r.resource, r.namespace, r.name ?? '');
    const current = this.objects.get(k);
    if (!current) return this.notFound(res, r);
    let patched: KubeObject;
    try {
      if (contentType === 'application/json-patch+json') {
        if (!Array.isArray(body)) return this.invalid(res, r, 'json patch: body must be an array of operations');
        patched = applyJsonPatch(clone(current), body as unknown[]) as KubeObject;
      } else if (
        contentType === 'application/merge-patch+json' ||
        contentType === 'application/strategic-merge-patch+json'
      ) {
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          return this.invalid(res, r, 'merge patch: body must be an object');
        patched = mergePatch(clone(current), body) as KubeObject;
      } else {
        return this.status(
          res,
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (got ${contentType ?? 'none'})`,
        );
      }
    } catch (err) {
      return this.invalid(res, r, `patch: ${(err as Error).message}`);
    }
    // A resourceVersion in the patched object is a precondition, as on the real apiserver.
    if (patched.metadata.resourceVersion !== current.metadata.resourceVersion) return this.conflict(res, r);
    if (patched.metadata.name !== current.metadata.name)
      return this.invalid(res, r, 'patch: metadata.name cannot change');
    this.finishWrite(res, r, current, patched);
  }

  private finishWrite(res: ServerResponse, r: Route, current: KubeObject, next: KubeObject): void {
    next.metadata.uid = current.metadata.uid;
    next.metadata.creationTimestamp = current.metadata.creationTimestamp;
    if (r.namespace !== undefined) next.metadata.namespace = r.namespace;
    if (
      isDeepStrictEqual(
        { ...next, metadata: { ...next.metadata, resourceVersion: '' } },
        { ...current, metadata: { ...current.metadata, resourceVersion: '' } },
      )
    ) {
      return this.json(res, 200, current);
    }
    this.json(res, 200, this.store(r.resource, next, 'MODIFIED'));
  }

  private doDelete(res: ServerResponse, r: Route, body: unknown): void {
    const current = this.objects.get(key(r.resource, r.namespace, r.name ?? ''));
    if (!current) return this.notFound(res, r);
    if (body !== undefined) {
      const kind = (body as { kind?: unknown }).kind;
      if (kind !== 'DeleteOptions') this.problems.push(`delete ${r.resource}: body is not a DeleteOptions`);
    }
    this.removeObject(r.resource, current);
    this.json(res, 200, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name: r.name, kind: r.resource, uid: current.metadata.uid },
    });
  }

  private doLog(res: ServerResponse, r: Route, query: URLSearchParams): void {
    if (r.resource !== 'pods') return this.invalid(res, r, 'log: only pods have logs');
    if (!this.objects.has(key('pods', r.namespace, r.name ?? ''))) return this.notFound(res, r);
    let text = this.logs.get(`${r.namespace ?? ''}/${r.name ?? ''}`) ?? '';
    const tail = query.get('tailLines');
    if (tail !== null) {
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      text = lines
        .slice(-Number(tail))
        .map((l) => `${l}\n`)
        .join('');
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(text);
  }

  private notFound(res: ServerResponse, r: Route): void {
    this.status(res, 404, 'NotFound', `${r.resource} "${r.name ?? ''}" not found`, { name: r.name, kind: r.resource });
  }

  private conflict(res: ServerResponse, r: Route): void {
    this.status(
      res,
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${r.resource} "${r.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`,
      { name: r.name, kind: r.resource },
    );
  }

  private invalid(res: ServerResponse, r: Route, message: string): void {
    this.problems.push(message);
    this.status(res, 422, 'Invalid', message, { name: r.name, kind: r.resource });
  }

  private status(
    res: ServerResponse,
    code: number,
    reason: string,
    message: string,
    details?: Record<string, unknown>,
  ): void {
    this.json(res, code, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason,
      ...(details ? { details } : {}),
      code,
    });
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

interface Route {
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  sub: string | undefined;
  def: Resource;
}

/** What the apiserver's validation of an events.k8s.io/v1 Event would reject (pkg/apis/core/validation). */
function eventProblem(e: KubeObject): string | undefined {
  const need = ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason'] as const;
  for (const f of need) if (typeof e[f] !== 'string' || e[f] === '') return `create events: ${f} is required`;
  if (e.type !== 'Normal' && e.type !== 'Warning') return `create events: type must be Normal or Warning`;
  if (typeof e.note === 'string' && Buffer.byteLength(e.note) > 1024) return 'create events: note is over 1 kB';
  if (String(e.action).length > 128 || String(e.reason).length > 128) return 'create events: action/reason over 128';
  if (String(e.reportingInstance).length > 128) return 'create events: reportingInstance over 128';
  const regarding = e.regarding as Record<string, unknown> | undefined;
  if (!regarding || typeof regarding.name !== 'string' || typeof regarding.kind !== 'string')
    return 'create events: regarding needs kind and name';
  return undefined;
}

function parsePath(path: string): Omit<Route, 'def'> | undefined {
  const p = path
    .split('/')
    .filter((s) => s.length > 0)
    .map(decodeURIComponent);
  let rest: string[];
  if (p[0] === 'api' && p[1] === 'v1') rest = p.slice(2);
  else if (p[0] === 'apis' && p.length >= 4) rest = p.slice(3);
  else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub] = rest;
  if (resource === undefined || rest.length > 3) return undefined;
  return { resource, namespace, name, sub };
}

function verbOf(method: string, route: Omit<Route, 'def'>, query: URLSearchParams): Verb | undefined {
  if (route.sub !== undefined) return method === 'GET' && route.sub === 'log' ? 'log' : undefined;
  if (route.name === undefined) {
    if (method === 'GET') return query.get('watch') === 'true' || query.get('watch') === '1' ? 'watch' : 'list';
    return method === 'POST' ? 'create' : undefined;
  }
  return ({ GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, Verb>)[method];
}

function apiVersionOf(r: Resource): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

function resourceOf(resource: string): Resource {
  const r = RESOURCES[resource];
  if (!r) throw new Error(`unknown resource ${resource}`);
  return r;
}

function key(resource: string, namespace: string | undefined, name: string): string {
  return `${resource}/${namespace ?? ''}/${name}`;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

type Requirement = { key: string; op: '=' | '!=' | 'exists'; value?: string };

function parseSelector(text: string): Requirement[] {
  return text
    .split(',')
    .filter((s) => s.length > 0)
    .map((s) => {
      const ne = s.indexOf('!=');
      if (ne >= 0) return { key: s.slice(0, ne), op: '!=' as const, value: s.slice(ne + 2) };
      const eq = s.indexOf('=');
      if (eq >= 0) return { key: s.slice(0, eq), op: '=' as const, value: s.slice(eq + 1).replace(/^=/, '') };
      return { key: s, op: 'exists' as const };
    });
}

function matches(values: Record<string, string>, reqs: readonly Requirement[]): boolean {
  return reqs.every((r) =>
    r.op === 'exists' ? r.key in values : r.op === '=' ? values[r.key] === r.value : values[r.key] !== r.value,
  );
}

function fieldsOf(o: KubeObject): Record<string, string> {
  return {
    'metadata.name': o.metadata.name,
    ...(o.metadata.namespace ? { 'metadata.namespace': o.metadata.namespace } : {}),
  };
}

function pointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`path "${path}" is not a JSON pointer`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyJsonPatch(doc: unknown, ops: readonly unknown[]): unknown {
  for (const raw of ops) {
    const op = raw as { op?: string; path?: string; value?: unknown };
    if (typeof op.path !== 'string') throw new Error('an operation has no path');
    const keys = pointer(op.path);
    const last = keys.pop() as string;
    let parent: unknown = doc;
    for (const k of keys) {
      parent = (parent as Record<string, unknown>)[k];
      if (typeof parent !== 'object' || parent === null) throw new Error(`path ${op.path} does not exist`);
    }
    const container = parent as Record<string, unknown> & unknown[];
    const has = Array.isArray(container) ? Number(last) < container.length : last in container;
    switch (op.op) {
      case 'test':
        if (!isDeepStrictEqual(container[last as keyof typeof container], op.value))
          throw new Error(`test of ${op.path} failed`);
        break;
      case 'remove':
        if (!has) throw new Error(`remove: ${op.path} does not exist`);
        if (Array.isArray(container)) container.splice(Number(last), 1);
        else Reflect.deleteProperty(container, last);
        break;
      case 'replace':
        if (!has) throw new Error(`replace: ${op.path} does not exist`);
        (container as Record<string, unknown>)[last] = op.value;
        break;
      case 'add':
        if (Array.isArray(container)) container.splice(last === '-' ? container.length : Number(last), 0, op.value);
        else (container as Record<string, unknown>)[last] = op.value;
        break;
      default:
        throw new Error(`operation ${String(op.op)} is not supported by the fake`);
    }
  }
  return doc;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? (target as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
