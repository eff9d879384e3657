/**
 * Which stream of a pipeline failed first. When one stream errors, `stream.pipeline` destroys the
 * others with the same error; the first `error` event is where the failure began, and only it
 * may name the stage in the message an operator reads.
 */
import type { Stream } from 'node:stream';

export interface FirstFailure<Stage extends string> {
  /** Registers `stream` as belonging to `stage`; returns it, for use inline. */
  readonly tag: <S extends Stream>(stream: S, stage: Stage) => S;
  /** The first failure seen, if any. */
  readonly origin: { stage: Stage; err: unknown } | undefined;
}

export function firstFailure<Stage extends string>(): FirstFailure<Stage> {
  let origin: { stage: Stage; err: unknown } | undefined;
  return {
    // Registered before the pipeline's own listener, so this runs first on the failing stream.
    tag: (stream, stage) =>
      stream.on('error', (err) => {
        origin ??= { stage, err };
      }),
    get origin() {
      return origin;
    },
  };
}
