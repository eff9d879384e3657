/**
 * An error a fake server turns into an HTTP answer in its service's own error format (S3 XML,
 * OCI JSON): thrown from deep in a handler, caught once where the response is written.
 */
export class Answer extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
