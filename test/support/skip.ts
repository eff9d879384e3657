import type { TestContext } from 'node:test';

/**
 * Skips a test whose prerequisite is missing on a developer's machine, but fails it in CI (`CI` set):
 * a skip there would hide a missing install step, and CI must run every test.
 */
export function skipOrFailInCi(t: TestContext, reason: string): void {
  if (process.env.CI) {
    throw new Error(`this test cannot run, and CI must run every test: ${reason}`);
  }
  t.skip(reason);
}
