/**
 * The floor for the webhook benchmark: a bare node:http server that does the least any webhook
 * must (read the body, JSON.parse it, answer), on the same machine at the same moment. What the
 * webhook adds on top of it is the product's cost; what the floor shows too is the machine's.
 * Prints its URL on stdout once listening; runs until killed.
 */
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const request = (body as { request?: { uid?: unknown } }).request;
    const answer =
      request === undefined
        ? { events: ((body as { items?: unknown[] }).items ?? []).length }
        : { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, allowed: true } };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
  process.stdout.write(`http://127.0.0.1:${addr.port}\n`);
});
