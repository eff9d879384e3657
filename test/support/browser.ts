/**
 * Headless Debian Chromium driven by playwright-core, for tests that look at a page as a person
 * would. playwright-core never downloads a browser: it runs /usr/bin/chromium (or
 * CHROMIUM_PATH), which `scripts/bootstrap.sh --browser` installs. When that browser is missing or
 * cannot start, `launchBrowser` says why instead of throwing, so the caller can skip.
 *
 * Every context made here aborts requests to anything but loopback (the dashboard's HTML asks for
 * web fonts on the internet): tests talk only to servers they started.
 */
import { access, constants } from 'node:fs/promises';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Playwright adds a fresh `--user-data-dir` in the temp dir for each launch (and removes it on
 * close); it refuses one passed in `args`.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  browser: Browser;
  /** A new context that can reach loopback only; `blocked` collects the URLs it refused. */
  newContext(options?: BrowserContextOptions): Promise<{ context: BrowserContext; blocked: string[] }>;
  close(): Promise<void>;
}

export type LaunchResult = { ok: true; browser: TestBrowser } | { ok: false; reason: string };

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);

export function isLoopbackUrl(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  // Pages may load their own inline resources; nothing else leaves the page.
  if (url.protocol === 'data:' || url.protocol === 'blob:' || url.protocol === 'about:') return true;
  return LOOPBACK_HOSTS.has(url.hostname) || /^127(\.\d{1,3}){3}$/.test(url.hostname);
}

export async function launchBrowser(timeoutMs = 30_000): Promise<LaunchResult> {
  try {
    await access(CHROMIUM_PATH, constants.X_OK);
  } catch {
    return {
      ok: false,
      reason: `no Chromium at ${CHROMIUM_PATH}: run \`bash scripts/bootstrap.sh --browser\` (Debian package chromium) or set CHROMIUM_PATH`,
    };
  }
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS], timeout: timeoutMs });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      reason: `Chromium at ${CHROMIUM_PATH} did not start: ${message.split('\n').slice(0, 3).join(' ')}`,
    };
  }
  return {
    ok: true,
    browser: {
      browser,
      async newContext(options = {}) {
        const context = await browser.newContext(options);
        const blocked: string[] = [];
        await context.route('**/*', async (route) => {
          const url = route.request().url();
          if (isLoopbackUrl(url)) return route.continue();
          blocked.push(url);
          return route.abort('blockedbyclient');
        });
        return { context, blocked };
      },
      close: () => browser.close(),
    },
  };
}
