/**
 * A streaming scan of raw JSON bytes that measures nesting depth and the number of list items,
 * chunk by chunk as the body arrives, so that a hostile body is refused before JSON.parse builds
 * it: parsing 1.5 million nested arrays or list items blocks the event loop for seconds, while
 * this scan costs one pass over bytes that have to be read anyway. It validates nothing else;
 * JSON.parse still does that on bodies the scan lets through.
 */

export interface JsonShapeLimits {
  /** Deepest nesting of objects and arrays accepted; the top-level value is depth 1. */
  maxDepth: number;
  /** Most elements accepted in any array directly inside the top-level object (an EventList's `items`). */
  maxItems: number;
}

export type ShapeProblem = { kind: 'depth'; limit: number } | { kind: 'items'; limit: number };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/**
 * Feed it the body's chunks in order; `push` answers the first limit the body breaks, or
 * undefined while it is within them. Malformed JSON is not its concern: brackets that do not
 * match only make the counts approximate, and JSON.parse rejects such a body afterwards.
 */
export class JsonShapeScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private rootIsObject = false;
  /** Whether the open depth-2 container is an array of the top-level object, and its commas so far. */
  private listIsArray = false;
  private listCommas = 0;

  constructor(private readonly limits: JsonShapeLimits) {}

  push(chunk: Uint8Array): ShapeProblem | undefined {
    const { maxDepth, maxItems } = this.limits;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.inString) {
        // Most of a Kubernetes body is string contents: find the closing quote with indexOf (memchr)
        // instead of a byte loop; it was the scan's whole cost, a quarter of an audit batch's CPU.
        if (this.escaped) {
          this.escaped = false;
          i++;
          continue;
        }
        const quote = chunk.indexOf(QUOTE, i);
        const end = quote === -1 ? n : quote;
        // Backslashes right before the quote (or the chunk's end): an odd run escapes what follows.
        let run = 0;
        while (end - run - 1 >= i && chunk[end - run - 1] === BACKSLASH) run++;
        if (quote === -1) {
          this.escaped = run % 2 === 1;
          return undefined;
        }
        if (run % 2 === 0) this.inString = false;
        i = quote + 1;
        continue;
      }
      const c = chunk[i] as number;
      i++;
      if (c === QUOTE) {
        this.inString = true;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        this.depth++;
        if (this.depth > maxDepth) return { kind: 'depth', limit: maxDepth };
        if (this.depth === 1) this.rootIsObject = c === OPEN_OBJECT;
        if (this.depth === 2) {
          this.listIsArray = this.rootIsObject && c === OPEN_ARRAY;
          this.listCommas = 0;
        }
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        if (this.depth > 0) this.depth--;
      } else if (c === COMMA) {
        // n commas separate n + 1 items.
        if (this.depth === 2 && this.listIsArray && ++this.listCommas >= maxItems)
          return { kind: 'items', limit: maxItems };
      }
    }
    return undefined;
  }
}

/** The whole-body form of the scan, for tests and callers that already hold the bytes. */
export function jsonShapeProblem(body: Uint8Array, limits: JsonShapeLimits): ShapeProblem | undefined {
  return new JsonShapeScanner(limits).push(body);
}
