/**
 * Checks the head of a bbolt database (etcd's backend file) without any etcd tool: pages 0 and 1
 * are meta pages, each a 16-byte page header followed by the meta struct
 *
 *   magic u32 | version u32 | pageSize u32 | flags u32 | root pgid u64 | root sequence u64 |
 *   freelist u64 | pgid u64 | txid u64 | checksum u64
 *
 * little-endian, where checksum is FNV-1a 64 over the 56 bytes before it. bbolt opens a file with
 * one good meta page, but a snapshot is written by `tx.WriteTo`, which writes both from the same
 * transaction: a snapshot with either one bad is damaged. `pgid` is the high-water mark of pages,
 * so `pgid * pageSize` bytes must exist: that catches a truncated file. Pure over a Buffer.
 */

export const BBOLT_MAGIC = 0xed0cdaed;
export const BBOLT_VERSION = 2;
const PAGE_HEADER = 16;
const META_FLAG = 0x04;
const CHECKSUM_AT = 56;
const MIN_PAGE = 1024;
const MAX_PAGE = 64 * 1024;
/** Enough of the file for both meta pages at the largest page size bbolt allows. */
export const BBOLT_HEAD_BYTES = 2 * MAX_PAGE;

export interface BboltMeta {
  page: 0 | 1;
  pageSize: number;
  pgid: bigint;
  txid: bigint;
  checksum: bigint;
}

export type BboltCheck = { ok: true; pageSize: number; txid: bigint; pages: bigint } | { ok: false; problem: string };

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;

export function fnv1a64(bytes: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK;
  return h;
}

/** Reads and checks the meta page at `offset`; a string says what is wrong. */
function readMeta(head: Buffer, offset: number, page: 0 | 1): BboltMeta | string {
  const at = offset + PAGE_HEADER;
  if (head.length < at + CHECKSUM_AT + 8)
    return `meta page ${page} is cut short (the file ends at ${head.length} bytes)`;
  const flags = head.readUInt16LE(offset + 8);
  if ((flags & META_FLAG) === 0) return `page ${page} is not a meta page (flags 0x${flags.toString(16)})`;
  const magic = head.readUInt32LE(at);
  if (magic !== BBOLT_MAGIC)
    return `meta page ${page} has magic 0x${magic.toString(16)}, not 0x${BBOLT_MAGIC.toString(16)}: not a bbolt database`;
  const version = head.readUInt32LE(at + 4);
  if (version !== BBOLT_VERSION) return `meta page ${page} has bbolt version ${version}, not ${BBOLT_VERSION}`;
  const pageSize = head.readUInt32LE(at + 8);
  if (pageSize < MIN_PAGE || pageSize > MAX_PAGE || (pageSize & (pageSize - 1)) !== 0)
    return `meta page ${page} has an impossible page size ${pageSize}`;
  const checksum = head.readBigUInt64LE(at + CHECKSUM_AT);
  const sum = fnv1a64(head.subarray(at, at + CHECKSUM_AT));
  if (sum !== checksum)
    return `meta page ${page} checksum mismatch (stored 0x${checksum.toString(16)}, computed 0x${sum.toString(16)})`;
  return { page, pageSize, pgid: head.readBigUInt64LE(at + 40), txid: head.readBigUInt64LE(at + 48), checksum };
}

/**
 * `head`: the first bytes of the database (at least BBOLT_HEAD_BYTES, or the whole file when
 * smaller); `dbSize`: the database's full length (without etcd's 32-byte trailer).
 */
export function checkBboltHeader(head: Buffer, dbSize: number): BboltCheck {
  if (dbSize < 2 * MIN_PAGE)
    return { ok: false, problem: `the database is ${dbSize} bytes, too small for bbolt's two meta pages` };
  const first = readMeta(head, 0, 0);
  if (typeof first === 'string') return { ok: false, problem: first };
  const second = readMeta(head, first.pageSize, 1);
  if (typeof second === 'string') return { ok: false, problem: second };
  if (second.pageSize !== first.pageSize)
    return { ok: false, problem: `meta pages disagree on the page size (${first.pageSize} and ${second.pageSize})` };
  const newest = second.txid > first.txid ? second : first;
  const needed = newest.pgid * BigInt(first.pageSize);
  if (BigInt(dbSize) < needed)
    return {
      ok: false,
      problem: `the database is truncated: ${dbSize} bytes but its meta page says ${newest.pgid} pages of ${first.pageSize} (${needed} bytes)`,
    };
  return { ok: true, pageSize: first.pageSize, txid: newest.txid, pages: newest.pgid };
}
