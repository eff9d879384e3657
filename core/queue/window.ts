/**
 * Debounce-window arithmetic, pure and clock-free so that every process, whatever its start
 * time, names the same window for the same instant: windows are aligned on the Unix epoch.
 */

export interface DebounceWindow {
  /** Start, inclusive, in ms since the epoch. */
  start: number;
  /** End, exclusive, in ms since the epoch. */
  end: number;
  /** The window's name in job ids and job data: its start as a compact UTC time. */
  id: string;
}

/** The window holding instant `atMs` for windows of `lengthMs`. */
export function windowOf(atMs: number, lengthMs: number): DebounceWindow {
  if (!(lengthMs > 0)) throw new RangeError(`queue.debounceWindow must be above 0 ms (got ${lengthMs})`);
  const start = Math.floor(atMs / lengthMs) * lengthMs;
  return { start, end: start + lengthMs, id: windowId(start) };
}

/**
 * `20261124T032500Z`, with milliseconds only when the window does not start on a second.
 * No colons: BullMQ refuses custom job ids that contain one.
 */
export function windowId(startMs: number): string {
  const iso = new Date(startMs).toISOString().replace(/[-:]/g, '');
  return iso.endsWith('.000Z') ? iso.replace('.000Z', 'Z') : iso;
}

/**
 * The job of a window's `generation`. Generation 0 is the window's job; a later generation is a
 * follow-up for triggers that arrived after an earlier generation's snapshot had started.
 */
export function windowJobId(cluster: string, window: Pick<DebounceWindow, 'id'>, generation: number): string {
  const base = `${cluster}@${window.id}`;
  return generation === 0 ? base : `${base}+${generation}`;
}

/**
 * How long to delay a window's job from `nowMs`: until the window's end (trailing edge) plus
 * `settleMs`, the time a recorder may still hold the window's last triggers before flushing them.
 * Never negative: a window already over (late trigger, skewed clock) runs at once.
 */
export function windowJobDelay(window: Pick<DebounceWindow, 'end'>, nowMs: number, settleMs: number): number {
  return Math.max(0, window.end + settleMs - nowMs);
}

/** The id of a manual snapshot job, unique per call. */
export function manualJobId(cluster: string, nowMs: number, random: string): string {
  return `${cluster}@manual-${windowId(nowMs)}-${random}`;
}
