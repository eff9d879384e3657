/**
 * Bytes held between stream chunks, taken off the front in exact amounts. Pieces are kept as they
 * came; `take` copies only when the amount spans pieces, `takePieces` never does.
 */
export class ByteQueue {
  private pieces: Buffer[] = [];
  private head = 0;
  length = 0;

  push(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pieces.push(piece);
    this.length += piece.length;
  }

  /** The first `n` bytes (n <= length), removed from the queue. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`take(${n}) with ${this.length} bytes queued`);
    this.length -= n;
    const first = this.pieces[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) this.drop();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const piece = this.pieces[0] as Buffer;
      const copied = piece.copy(out, filled, this.head, Math.min(piece.length, this.head + n - filled));
      filled += copied;
      this.head += copied;
      if (this.head === piece.length) this.drop();
    }
    return out;
  }

  /**
   * The first `n` bytes (n <= length) as the pieces they came in (subarrays, never copied),
   * removed from the queue: for a cipher, which takes its input in parts.
   */
  takePieces(n: number): Buffer[] {
    if (n > this.length) throw new RangeError(`takePieces(${n}) with ${this.length} bytes queued`);
    this.length -= n;
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const piece = this.pieces[0] as Buffer;
      const end = Math.min(piece.length, this.head + left);
      out.push(piece.subarray(this.head, end));
      left -= end - this.head;
      this.head = end;
      if (this.head === piece.length) this.drop();
    }
    return out;
  }

  private drop(): void {
    this.pieces.shift();
    this.head = 0;
  }
}
