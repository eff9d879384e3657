/**
 * Certificates from certs/pki.ts as OpenSSL reads them. A serial whose DER integer carried a padding
 * byte made about one certificate in 500 unreadable ("illegal padding"), or, as a CA, silently left
 * out of the trust store ("unable to verify the first certificate"): flaky TLS tests.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { test } from 'node:test';
import forge from 'node-forge';
import { createCa, issueCert, serialNumber } from '../../certs/pki.js';

/** The content bytes of the DER INTEGER forge writes for a serial in hex. */
function derSerial(hex: string): Buffer {
  const integer = forge.asn1.create(
    forge.asn1.Class.UNIVERSAL,
    forge.asn1.Type.INTEGER,
    false,
    forge.util.hexToBytes(hex),
  );
  return Buffer.from(forge.asn1.toDer(integer).getBytes(), 'binary').subarray(2);
}

test('serials are written as minimal positive DER integers of 16 bytes (OpenSSL rejects a padding byte)', () => {
  // The former serial ('0' + 15 random bytes) fails about 1 in 512 draws: ~200 of these.
  for (let i = 0; i < 100_000; i++) {
    const hex = serialNumber();
    const der = derSerial(hex);
    assert.equal(der.length, 16, `serial ${hex} is 16 bytes as written`);
    assert.equal(der.toString('hex'), hex, `serial ${hex} is written as drawn`);
    assert.ok(der[0] !== undefined && der[0] >= 0x40 && der[0] < 0x80, `serial ${hex} is positive, no padding byte`);
  }
});

test('every issued certificate and key parses in OpenSSL and verifies against its CA', () => {
  const ca = createCa('pki test CA');
  const caX509 = new X509Certificate(ca.cert);
  assert.ok(caX509.ca);
  const serials = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const leaf = issueCert(ca, { commonName: `leaf-${i}`, ipAddresses: ['127.0.0.1'], usage: ['server', 'client'] });
    const x509 = new X509Certificate(leaf.cert);
    assert.ok(x509.verify(caX509.publicKey), `leaf ${i} is signed by the CA`);
    assert.ok(x509.checkIssued(caX509), `leaf ${i} names the CA as issuer`);
    assert.ok(x509.checkPrivateKey(createPrivateKey(leaf.key)), `leaf ${i} key matches`);
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    serials.add(x509.serialNumber);
  }
  assert.equal(serials.size, 40, 'serials are unique');
});

test('a mutual TLS handshake with issued certificates verifies both sides against the CA', async () => {
  const serverCa = createCa('pki test server CA');
  const clientCa = createCa('pki test client CA');
  const serving = issueCert(serverCa, { commonName: 'server', ipAddresses: ['127.0.0.1'] });
  const client = issueCert(clientCa, { commonName: 'client', usage: ['client'] });
  const server = createServer(
    { ...serving, ca: clientCa.cert, requestCert: true, rejectUnauthorized: true },
    (socket: TLSSocket) => socket.end(String(socket.getPeerCertificate().subject.CN)),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as { port: number };
    const socket = connect({ host: '127.0.0.1', port, ca: serverCa.cert, ...client });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'end');
    assert.equal(socket.authorized, true, String(socket.authorizationError));
    assert.equal(Buffer.concat(chunks).toString(), 'client', 'the server saw the client certificate');
  } finally {
    server.close();
  }
});
