/** `etcd-autobackup audit-config`: the audit policy, webhook kubeconfig and apiserver flags for each control-plane node. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { renderAuditConfig, type AuditConfigOptions, type RenderedFile } from '../../certs/audit-config.js';
import { createCa, issueCert } from '../../certs/pki.js';
import { ConfigError, messageOf } from '../../core/errors.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

interface Opts {
  server: string;
  caFile: string;
  tlsServerName?: string;
  auth: 'cert' | 'token' | 'none';
  clientCert?: string;
  clientKey?: string;
  embedCerts?: boolean;
  tokenFile?: string;
  nodeDir: string;
  batchMaxSize: string;
  batchMaxWait: string;
  kubeadmApi: 'v1beta3' | 'v1beta4';
  out?: string;
  print?: 'policy' | 'kubeconfig' | 'flags' | 'kubeadm';
}

const PARTS: Record<NonNullable<Opts['print']>, string> = {
  policy: 'policy.yaml',
  kubeconfig: 'webhook-kubeconfig.yaml',
  flags: 'kube-apiserver-flags.txt',
  kubeadm: 'kubeadm-clusterconfiguration.yaml',
};

export function registerAuditConfig(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('audit-config')
      .description(
        'print (or write to --out) the audit policy, audit webhook kubeconfig, kube-apiserver flags and kubeadm snippet for the control-plane nodes',
      )
      .requiredOption(
        '--server <url>',
        'audit endpoint as the apiserver reaches it, e.g. https://10.96.0.50/audit (the path defaults to /audit)',
      )
      .requiredOption('--ca-file <file>', 'PEM CA of the webhook serving certificate (ca.crt of the certs Secret)')
      .option(
        '--tls-server-name <name>',
        'name the serving certificate is checked against, when --server uses an IP (e.g. etcd-autobackup-webhook.backup.svc)',
      )
      .addOption(
        new Option('--auth <mode>', 'how the apiserver authenticates to /audit')
          .choices(['cert', 'token', 'none'])
          .default('cert'),
      )
      .option(
        '--client-cert <file>',
        'client certificate for --auth cert (path on the node); without it and with --out, one is generated with its CA',
      )
      .option('--client-key <file>', 'key of --client-cert (path on the node)')
      .option(
        '--embed-certs',
        'put the client certificate and key into the kubeconfig instead of referencing the files',
      )
      .option('--token-file <file>', 'for --auth token: path on the node of the file holding the token (never printed)')
      .option(
        '--node-dir <dir>',
        'directory on the node for the policy and kubeconfig, mounted into the apiserver',
        '/etc/kubernetes/audit',
      )
      .option('--batch-max-size <n>', 'events per audit batch', '100')
      .option('--batch-max-wait <duration>', 'longest wait before a batch is sent', '5s')
      .addOption(
        new Option('--kubeadm-api <version>', 'kubeadm config API version')
          .choices(['v1beta3', 'v1beta4'])
          .default('v1beta4'),
      )
      .option('--out <dir>', 'write the files into this directory instead of printing them')
      .addOption(new Option('--print <part>', 'print only this part (parseable as is)').choices(Object.keys(PARTS))),
  ).action(async (opts: Opts, cmd: Command) => {
    const { config } = setup(cmd);
    const server = auditUrl(opts.server);
    let caPem: string;
    try {
      caPem = await readFile(opts.caFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read --ca-file ${opts.caFile}: ${messageOf(err)}`);
    }
    if (!caPem.includes('BEGIN CERTIFICATE'))
      throw new ConfigError(`--ca-file ${opts.caFile} holds no PEM certificate`);
    const batchMaxSize = Number(opts.batchMaxSize);
    if (!Number.isInteger(batchMaxSize) || batchMaxSize < 1)
      throw new ConfigError(`--batch-max-size expects a whole number above 0 (got "${opts.batchMaxSize}")`);

    const extra: RenderedFile[] = [];
    let auth: AuditConfigOptions['auth'] = { mode: 'none' };
    if (opts.auth === 'token') {
      if (!opts.tokenFile)
        throw new ConfigError('--auth token needs --token-file: the path on the node of the file holding the token');
      auth = { mode: 'token', tokenPath: opts.tokenFile };
    } else if (opts.auth === 'cert') {
      if (opts.clientCert && opts.clientKey) {
        auth = opts.embedCerts
          ? {
              mode: 'cert',
              certPath: opts.clientCert,
              keyPath: opts.clientKey,
              certPem: await readFile(opts.clientCert, 'utf8'),
              keyPem: await readFile(opts.clientKey, 'utf8'),
            }
          : { mode: 'cert', certPath: opts.clientCert, keyPath: opts.clientKey };
      } else if (opts.clientCert || opts.clientKey) {
        throw new ConfigError('--client-cert and --client-key go together');
      } else if (opts.out) {
        // A CA of its own, so that /audit trusts this client and nothing else the cluster CA signed.
        const ca = createCa('etcd-autobackup audit client CA');
        const client = issueCert(ca, { commonName: 'kube-apiserver-audit', usage: ['client'], days: 3650 });
        auth = { mode: 'cert', certPath: '', keyPath: '', certPem: client.cert, keyPem: client.key };
        extra.push(
          { name: 'audit-client-ca.crt', content: ca.cert },
          { name: 'audit-client-ca.key', content: ca.key, secret: true },
        );
      } else {
        throw new ConfigError(
          '--auth cert needs --client-cert and --client-key, or --out DIR to generate a client certificate and its CA',
        );
      }
    }
    if (isIP(new URL(server).hostname.replace(/^\[|\]$/g, '')) !== 0 && !opts.tlsServerName) {
      process.stderr.write(
        'note: --server uses an IP address; the webhook certificate names the Service, so give --tls-server-name <service>.<namespace>.svc\n',
      );
    }
    const files = [
      ...renderAuditConfig(
        {
          server,
          caPem,
          tlsServerName: opts.tlsServerName,
          auth,
          nodeDir: opts.nodeDir,
          batchMaxSize,
          batchMaxWait: opts.batchMaxWait,
          kubeadmApiVersion: opts.kubeadmApi,
        },
        config.filters,
      ),
      ...extra,
    ];

    if (opts.print) {
      const file = files.find((f) => f.name === PARTS[opts.print as keyof typeof PARTS]);
      context.print((file?.content ?? '').trimEnd());
      return;
    }
    if (opts.out) {
      await mkdir(opts.out, { recursive: true });
      for (const f of files) await writeFile(join(opts.out, f.name), f.content, { mode: f.secret ? 0o600 : 0o644 });
      const lines = [`wrote ${files.length} files to ${opts.out}:`];
      for (const f of files)
        lines.push(`  ${f.name}${f.nodePath ? `  -> copy to ${f.nodePath} on each control-plane node` : ''}`);
      if (extra.length > 0)
        lines.push("  audit-client-ca.crt is the webhook's auditAuth.clientCaFile; keep audit-client-ca.key offline");
      lines.push(
        'then add the flags of kube-apiserver-flags.txt (or merge kubeadm-clusterconfiguration.yaml); see docs/audit-webhook.md',
      );
      context.print(lines.join('\n'));
      return;
    }
    context.print(files.map((f) => `# ==> ${f.nodePath ?? f.name} <==\n${f.content.trimEnd()}`).join('\n\n'));
  });
}

function auditUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`--server expects a URL like https://10.96.0.50/audit (got "${text}")`);
  }
  if (url.protocol !== 'https:')
    throw new ConfigError(
      '--server must be https://: audit events say who changed what, and the webhook CA is how the apiserver knows it talks to the right endpoint',
    );
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/audit';
  return url.toString();
}
