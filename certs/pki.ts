/**
 * A small PKI with node-forge: a CA and certificates it signs. Used for the webhook's serving
 * certificate and, in tests, for etcd's server and client certificates.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface Pem {
  cert: string;
  key: string;
}

export interface CertOptions {
  /** The subject's common name. */
  commonName: string;
  /**
   * DNS names the certificate is valid for (subjectAltName).
   * @defaultValue none
   */
  dnsNames?: string[];
  /**
   * IP addresses the certificate is valid for (subjectAltName).
   * @defaultValue none
   */
  ipAddresses?: string[];
  /**
   * Extended key usages: server auth, client auth, or both.
   * @defaultValue ['server']
   */
  usage?: ('server' | 'client')[];
  /**
   * Validity in days from `now`.
   * @defaultValue 365
   */
  days?: number;
  /**
   * The issue time (valid from 5 minutes before it).
   * @defaultValue the current time
   */
  now?: Date;
}

const KEY_BITS = 2048;

/**
 * A random 126-bit serial (RFC 5280: positive, at most 20 octets) whose DER encoding is the bytes as
 * they are. The top bit is clear so the integer is positive, and the next bit is set so the first
 * byte is never zero: forge strips at most one leading zero byte, so a serial starting 00 00 would be
 * written with a padding byte that OpenSSL rejects ("asn1 encoding routines::illegal padding"), and
 * as a CA such a certificate is silently dropped from the trust store ("unable to verify the first
 * certificate").
 */
export function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

interface KeyPair {
  publicKey: forge.pki.rsa.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
  /** The private key as PKCS#1 PEM, as OpenSSL wrote it. */
  privatePem: string;
}

/** An RSA key pair from OpenSSL (native, and far faster than forge's JavaScript prime search), for forge to sign with. */
function keyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: KEY_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    privatePem: privateKey,
  };
}

function validity(cert: forge.pki.Certificate, days: number, now: Date): void {
  // Backdate a little so a peer whose clock is slightly behind still accepts a fresh cert.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + days * 86_400_000);
}

export function createCa(commonName: string, days = 3650, now = new Date()): Pem {
  const keys = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, days, now);
  const attrs = [{ name: 'commonName', value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keys.privatePem };
}

export function issueCert(ca: Pem, options: CertOptions): Pem {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const keys = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, options.days ?? 365, options.now ?? new Date());
  cert.setSubject([{ name: 'commonName', value: options.commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  const usage = options.usage ?? ['server'];
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: usage.includes('server'), clientAuth: usage.includes('client') },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keys.privatePem };
}

/** The DNS names the apiserver may use for a Service: short, namespaced, and fully qualified. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.${clusterDomain}`,
  ];
}

/** The DNS names in a certificate's subjectAltName. */
export function certDnsNames(certPem: string): string[] {
  const ext: unknown = forge.pki.certificateFromPem(certPem).getExtension('subjectAltName');
  const altNames = (ext as { altNames?: { type: number; value?: unknown }[] } | undefined)?.altNames ?? [];
  const names: string[] = [];
  for (const n of altNames) if (n.type === 2 && typeof n.value === 'string') names.push(n.value);
  return names;
}

/** Whether `certPem` was signed by the first certificate of `caPem` (a bundle may follow it). */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const ca = forge.pki.certificateFromPem(caPem);
    return ca.verify(forge.pki.certificateFromPem(certPem));
  } catch {
    return false;
  }
}

/** Whether a certificate is expired, about to (within `renewBeforeMs`), or not yet valid at `now`. */
export function dueForRenewal(certPem: string, renewBeforeMs: number, now = new Date()): boolean {
  const { notBefore, notAfter } = forge.pki.certificateFromPem(certPem).validity;
  return now.getTime() < notBefore.getTime() || notAfter.getTime() - now.getTime() <= renewBeforeMs;
}

/** Whether a private key (PEM) belongs to a certificate (PEM). */
export function keyMatchesCert(keyPem: string, certPem: string): boolean {
  try {
    const key = forge.pki.privateKeyFromPem(keyPem);
    const pub = forge.pki.certificateFromPem(certPem).publicKey as forge.pki.rsa.PublicKey;
    return key.n.equals(pub.n) && key.e.equals(pub.e);
  } catch {
    return false;
  }
}
