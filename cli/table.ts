/** Plain-text tables for the CLI: columns padded to their widest cell, the last column left ragged. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows.reduce<number[]>((w, r) => r.map((cell, col) => Math.max(w[col] ?? 0, cell.length)), []);
  return rows
    .map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col] ?? 0))).join('  '))
    .join('\n');
}
