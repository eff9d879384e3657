/**
 * Bounds the garbage a long snapshot leaves for V8, so that peak memory does not grow with the
 * snapshot's size (issue 11). A stream keeps allocating short-lived objects and chunk buffers; the
 * ones alive across two scavenges (chunks queued while a part uploads, an upload request's objects)
 * are promoted, and promoted garbage waits for a full collection that V8 starts only when the old
 * generation reaches its limit (far above a stream's heap) or external memory grows ~64 MiB past
 * what the last full collection left. A 2 GiB upload to OCI never reached either and its heap grew
 * for the whole run (27 -> 36 MiB used, RSS 119 -> 139 MiB, no full collection in 45 s).
 *
 * Only the multipart stores (OCI, S3) report to it, each part they uploaded: once V8 has run one
 * full collection during a stream, it sets its next limit just above the live heap and collects again every few
 * hundred ms on its own, whatever asked for the first (gc() or this). For OCI that cost stays small
 * (25 full collections, 0.7 s in a 2 GiB upload, and RSS 135 MiB where it reached 139-150); a zstd
 * stream to a file, which has no promoted garbage to speak of (0 full collections without this, RSS
 * within 10% of 256 MiB already), got 74-124 of them, +20-30% CPU, and no lower RSS.
 *
 * So the store reports its bytes here, and every `checkEveryBytes` the old generation in use is
 * compared with what the last full collection left: past `budgetBytes` of growth, V8
 * is asked for one (signalMemoryPressure; incremental, as V8 runs its own), at most once per
 * `minBytesBetween` of stream, which bounds its cost whatever the memory does.
 */
import { getHeapSpaceStatistics } from 'node:v8';

const MIB = 1024 * 1024;

/** When to ask V8 for a full collection. */
export interface GarbageBoundPolicy {
  /**
   * Growth of the old generation in use over what the last full collection left, bytes, past
   * which the next check asks for one.
   * @defaultValue 4 MiB
   */
  budgetBytes: number;
  /**
   * Stream bytes between two looks at memory.
   * @defaultValue 8 MiB
   */
  checkEveryBytes: number;
  /**
   * Stream bytes at least between two collections, whatever the growth: the cap on their cost,
   * and what makes the bound flat: a snapshot of any size leaves at most this much stream's garbage
   * for V8, as a 64 MiB one does.
   * @defaultValue 64 MiB
   */
  minBytesBetween: number;
}

export const DEFAULT_GARBAGE_BOUND: GarbageBoundPolicy = {
  budgetBytes: 4 * MIB,
  checkEveryBytes: 8 * MIB,
  minBytesBetween: 64 * MIB,
};

/** Whether to collect now: the pure decision, from memory in use now and after the last collection. */
export function collectionDue(
  policy: Pick<GarbageBoundPolicy, 'budgetBytes' | 'minBytesBetween'>,
  state: { inUse: number; afterLast: number; bytesSinceLast: number },
): boolean {
  return state.bytesSinceLast >= policy.minBytesBetween && state.inUse - state.afterLast > policy.budgetBytes;
}

/**
 * The old generation in use, bytes: where promoted garbage accumulates until a full collection,
 * array buffers' objects included (each holds its chunk outside the heap, so this grows far less
 * than the memory it holds; hence the small budget). Not heap plus array buffers: chunks in flight,
 * which the next scavenge frees, moved that by 20 MiB in a zstd stream to a file that had no
 * promoted garbage at all, and every such swing asked for a collection.
 */
export function memoryInUse(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name === 'old_space' || space.space_name === 'large_object_space') used += space.space_used_size;
  }
  return used;
}

const PRESSURE_BYTES = 64 * MIB;

/**
 * Asks V8 for its ordinary full collection, the one it starts itself when external memory grows
 * 64 MiB past what the last one left: an array buffer that size, dropped at once, crosses that
 * mark. It is never written, so its pages are never touched (calloc maps them zeroed; RSS does not
 * move) and the next scavenge frees it. Not `gc()` (through `--expose-gc`): V8 treats that one as
 * forced, sets its next old-generation limit just above the live heap, and at 2 GiB the stream's
 * heap then got a full collection every ~150 ms for the rest of the run (hundreds, twice the CPU).
 */
export function signalMemoryPressure(): void {
  void new ArrayBuffer(PRESSURE_BYTES);
}

/** One upload's bound; `observe` is called with each step's bytes (a part, a chunk). */
export class GarbageBound {
  private sinceCheck = 0;
  private sinceLast = 0;
  private afterLast: number;
  /** Full collections this bound asked for. */
  collections = 0;

  constructor(
    private readonly policy: GarbageBoundPolicy = DEFAULT_GARBAGE_BOUND,
    private readonly inUse: () => number = memoryInUse,
    private readonly collect: () => void = signalMemoryPressure,
  ) {
    this.afterLast = inUse();
  }

  observe(bytes: number): void {
    this.sinceCheck += bytes;
    this.sinceLast += bytes;
    if (this.sinceCheck < this.policy.checkEveryBytes) return;
    this.sinceCheck = 0;
    const inUse = this.inUse();
    // Memory below the last baseline (a part buffer not yet allocated then is now, or freed) moves it.
    if (inUse < this.afterLast) this.afterLast = inUse;
    if (!collectionDue(this.policy, { inUse, afterLast: this.afterLast, bytesSinceLast: this.sinceLast })) return;
    this.collect();
    this.collections++;
    this.sinceLast = 0;
    // V8 collects incrementally from here; the readings that follow lower the baseline as it frees.
    this.afterLast = inUse;
  }
}
