/**
 * OCI API-key credentials, from `store.oci` or from an OCI config file as the oci CLI writes it.
 * Everything that can be checked without a request is checked here, so that a wrong passphrase or
 * a fingerprint that belongs to another key fails at start-up naming the field, instead of as a
 * 401 from the service that cannot say which of the four values is wrong.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { Config } from '../../core/config/index.js';
import { ConfigError, messageOf } from '../../core/errors.js';

export type OciConfig = Config['store']['oci'];

export interface OciCredentials {
  tenancy: string;
  user: string;
  fingerprint: string;
  /** Unencrypted PKCS#8 PEM, in memory only: the SDK's own PEM parser does not read every encrypted format. */
  privateKey: string;
  /** The region the credentials name, if any (the config file's `region`, or store.oci.region). */
  region: string | undefined;
  /** Where the values came from, for messages. */
  source: string;
}

const DEFAULT_CONFIG_FILE = '~/.oci/config';

/**
 * The API key to sign with. `store.oci.tenancy`, `user`, `fingerprint` and `privateKeyFile` together
 * take precedence; otherwise the profile of the config file (store.oci.configFile, $OCI_CONFIG_FILE,
 * ~/.oci/config) is read.
 */
export function resolveOciCredentials(oci: OciConfig, env: NodeJS.ProcessEnv = process.env): OciCredentials {
  const explicit = {
    tenancy: oci.tenancy,
    user: oci.user,
    fingerprint: oci.fingerprint,
    privateKeyFile: oci.privateKeyFile,
  };
  const given = Object.entries(explicit).filter(([, v]) => v !== undefined);
  if (given.length > 0) {
    if (oci.configFile !== undefined) {
      throw new ConfigError(
        'store.oci: give either the API-key fields (tenancy, user, fingerprint, privateKeyFile) or configFile, not both',
      );
    }
    // The fingerprint follows from the key (the original service took none): only the other three are needed.
    const missing = Object.entries(explicit)
      .filter(([k, v]) => v === undefined && k !== 'fingerprint')
      .map(([k]) => `store.oci.${k}`);
    if (missing.length > 0) {
      throw new ConfigError(
        `store.oci: API-key auth needs tenancy, user and privateKeyFile together (fingerprint is optional); missing ${missing.join(', ')} (or set none of them and use store.oci.configFile)`,
      );
    }
    const keyFile = expandHome(explicit.privateKeyFile as string);
    const loaded = loadPrivateKey(
      keyFile,
      oci.passphrase,
      explicit.fingerprint,
      'store.oci.privateKeyFile',
      'store.oci.passphrase',
      'store.oci.fingerprint',
    );
    return {
      tenancy: explicit.tenancy as string,
      user: explicit.user as string,
      fingerprint: loaded.fingerprint,
      privateKey: loaded.pem,
      region: oci.region,
      source: 'store.oci',
    };
  }
  return fromConfigFile(oci, env);
}

function fromConfigFile(oci: OciConfig, env: NodeJS.ProcessEnv): OciCredentials {
  const path = expandHome(oci.configFile ?? env.OCI_CONFIG_FILE ?? DEFAULT_CONFIG_FILE);
  const field =
    oci.configFile !== undefined
      ? 'store.oci.configFile'
      : env.OCI_CONFIG_FILE
        ? '$OCI_CONFIG_FILE'
        : 'the default OCI config file';
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `store.oci: no OCI credentials: cannot read ${field} "${path}" (${messageOf(err)}); set store.oci.configFile, or tenancy, user, fingerprint and privateKeyFile`,
    );
  }
  const profiles = parseOciConfig(text, path);
  const profile = profiles.get(oci.profile);
  if (!profile) {
    throw new ConfigError(
      `store.oci.profile: no profile [${oci.profile}] in "${path}" (profiles: ${[...profiles.keys()].join(', ') || 'none'})`,
    );
  }
  // As the oci CLI does: a profile inherits the keys it does not set from DEFAULT.
  const values = new Map([...(profiles.get('DEFAULT') ?? new Map<string, string>()), ...profile]);
  const where = `profile [${oci.profile}] of "${path}"`;
  if (values.has('security_token_file') && !values.has('user')) {
    throw new ConfigError(
      `store.oci: ${where} uses session-token auth (security_token_file); use a profile with an API key (user, fingerprint, key_file)`,
    );
  }
  const need = (key: string): string => {
    const v = values.get(key);
    if (!v)
      throw new ConfigError(
        `store.oci: ${where} has no "${key}" (an API-key profile needs user, fingerprint, tenancy, key_file and usually region)`,
      );
    return v;
  };
  const tenancy = need('tenancy');
  const user = need('user');
  const fingerprint = need('fingerprint').toLowerCase();
  const keyFile = expandHome(need('key_file'));
  const passphrase = oci.passphrase ?? values.get('pass_phrase');
  return {
    tenancy,
    user,
    fingerprint,
    privateKey: loadPrivateKey(
      keyFile,
      passphrase,
      fingerprint,
      `key_file of ${where}`,
      oci.passphrase ? 'store.oci.passphrase' : `pass_phrase of ${where}`,
      `fingerprint of ${where}`,
    ).pem,
    region: oci.region ?? values.get('region'),
    source: where,
  };
}

/**
 * The INI-like format of ~/.oci/config: `[PROFILE]` headers, `key=value` lines, `#` comments.
 * Messages never quote a line: a malformed one may hold a passphrase.
 */
export function parseOciConfig(text: string, path: string): Map<string, Map<string, string>> {
  const profiles = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.startsWith('[') && line.endsWith(']')) {
      const name = line.slice(1, -1).trim();
      if (!name) throw new ConfigError(`store.oci: "${path}" line ${i + 1}: empty profile name`);
      current = profiles.get(name) ?? new Map<string, string>();
      profiles.set(name, current);
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0)
      throw new ConfigError(`store.oci: "${path}" line ${i + 1} is neither a [PROFILE] header nor key=value`);
    if (!current) throw new ConfigError(`store.oci: "${path}" line ${i + 1} comes before any [PROFILE] header`);
    current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  });
  return profiles;
}

/** OCI's API-key fingerprint: MD5 of the DER public key, as colon-separated lowercase hex. */
export function ociFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return (createHash('md5').update(der).digest('hex').match(/../g) ?? []).join(':');
}

/** The key as unencrypted PKCS#8 PEM and its fingerprint, checked against `fingerprint` when one is given. */
function loadPrivateKey(
  path: string,
  passphrase: string | undefined,
  fingerprint: string | undefined,
  keyField: string,
  passField: string,
  fpField: string,
): { pem: string; fingerprint: string } {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${keyField}: cannot read the private key "${path}": ${messageOf(err)}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(
      passphrase === undefined ? { key: pem, format: 'pem' } : { key: pem, format: 'pem', passphrase },
    );
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MISSING_PASSPHRASE')
      throw new ConfigError(`${keyField}: "${path}" is encrypted; set ${passField}`);
    // A wrong passphrase on an encrypted PEM usually fails the CBC padding ("bad decrypt"), but about one
    // time in 256 the padding happens to be valid and the garbage fails to decode instead (ERR_OSSL_UNSUPPORTED):
    // for an encrypted key with a passphrase given, every decode failure means the passphrase is wrong.
    if (passphrase !== undefined && (isEncryptedPem(pem) || /decrypt/i.test(messageOf(err)))) {
      throw new ConfigError(`${keyField}: cannot decrypt "${path}": check ${passField}`);
    }
    throw new ConfigError(
      `${keyField}: "${path}" is not a PEM private key (${typeof code === 'string' ? code : 'unreadable'})`,
    );
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new ConfigError(
      `${keyField}: "${path}" is a ${key.asymmetricKeyType ?? 'non-RSA'} key; OCI API keys are RSA`,
    );
  const actual = ociFingerprint(key);
  if (fingerprint !== undefined && actual !== fingerprint.toLowerCase()) {
    throw new ConfigError(
      `${fpField} (${fingerprint}) is not the fingerprint of the private key in "${path}" (${actual}): the key and fingerprint belong to different API keys; compare with the user's API keys in the OCI console`,
    );
  }
  return { pem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), fingerprint: actual };
}

function expandHome(path: string): string {
  if (path === '~' || path.startsWith('~/')) return resolve(homedir(), path.slice(2));
  return resolve(path);
}

/** PKCS#8 `ENCRYPTED PRIVATE KEY` or a traditional PEM with `Proc-Type: 4,ENCRYPTED`. */
function isEncryptedPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type:\s*4,ENCRYPTED/m.test(pem);
}
