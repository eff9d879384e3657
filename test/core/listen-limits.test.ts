import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { listen } from '../../core/http/listen.js';

const limits = {
  headersTimeout: 300,
  requestTimeout: 600,
  keepAliveTimeout: 300,
  maxConnections: 3,
  checkIntervalMs: 50,
};

/** Resolves with what the server sent once it closes the socket, or 'still open' after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => resolve('still open'), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

test('a client trickling its body or its headers is cut off by requestTimeout / headersTimeout', async () => {
  // Answers once the body is complete, as the JSON routes do.
  const http = await listen((req, res) => req.resume().on('end', () => res.end('ok')), '127.0.0.1:0', { limits });
  const port = Number(new URL(http.url).port);
  try {
    const body = await open(port);
    body.write(
      'POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":',
    );
    const headers = await open(port);
    headers.write('POST /audit HTTP/1.1\r\nHost: x\r\n');
    // Generous: the limits are well under a second; without them Node waits 60s and 300s.
    const [slowBody, slowHeaders] = await Promise.all([closedWithin(body, 20_000), closedWithin(headers, 20_000)]);
    assert.match(slowBody, /^HTTP\/1\.1 408/);
    assert.match(slowHeaders, /^HTTP\/1\.1 408/);
  } finally {
    await http.close();
  }
});

test('connections beyond maxConnections are closed at once, and served again when one is free', async () => {
  const http = await listen((_req, res) => res.end('ok'), '127.0.0.1:0', {
    limits: { ...limits, headersTimeout: 60_000, requestTimeout: 60_000, keepAliveTimeout: 60_000 },
  });
  const port = Number(new URL(http.url).port);
  const held: Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await open(port));
    const extra = await open(port);
    extra.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await closedWithin(extra, 20_000), '');
    for (const s of held) assert.equal(s.destroyed, false);
    (held.shift() as Socket).destroy();
    // The server counts the closed socket once it has seen the close; retry until it has.
    let answered = false;
    for (let i = 0; i < 100 && !answered; i++) {
      const s = await open(port);
      s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      answered = /^HTTP\/1\.1 200/.test(await closedWithin(s, 20_000));
      if (!answered) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(answered);
  } finally {
    for (const s of held) s.destroy();
    await http.close();
  }
});
