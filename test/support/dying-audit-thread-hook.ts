/** Listens before the real thread does (test/support/dying-audit-thread.ts imports it first). */
import { parentPort } from 'node:worker_threads';

parentPort?.on('message', ({ bytes }: { bytes: Uint8Array }) => {
  if (bytes[0] === 0x58) process.exit(3);
});
