/**
 * The answer of the hot routes (/admission, /audit): one `res.end` of a string with its length.
 * Express' `res.json` turns the text into a Buffer and hashes it for an ETag, and node:http then
 * sends headers and body as two writes (writev); the CPU profile of the admission benchmark had
 * that path (ETag hashing, Buffer copy, writev) as the largest part of a request's cost beyond
 * the bare node:http floor. These answers are never cached, so they need no ETag.
 */
import type { ServerResponse } from 'node:http';

export function sendJson(
  res: ServerResponse,
  value: unknown,
  status = 200,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
