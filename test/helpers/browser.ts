import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * Real headless Chromium for browser tests: Debian's package, driven by
 * playwright-core (browser downloads do not work here). Where it is missing a
 * browser test is skipped with a notice, except under CI=true, where a missing
 * browser is a failure: CI installs it.
 */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

export function chromiumInstalled(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/** Declares a serial browser test, or its skip (with a notice) or failure when Chromium is missing. */
export function browserTest(title: string, run: (t: ExecutionContext, browser: Browser) => Promise<void>): void {
  if (!chromiumInstalled()) {
    if (process.env['CI'] === 'true') {
      test(title, (t) => t.fail(`Chromium is not installed at ${CHROMIUM_PATH} (apt-get install chromium)`));
      return;
    }
    process.stdout.write(`browser test skipped, no Chromium at ${CHROMIUM_PATH}: ${title}\n`);
    test.skip(title, () => undefined);
    return;
  }
  test.serial(title, async (t) => {
    const browser = await launchBrowser();
    try {
      await run(t, browser);
    } finally {
      await closeBrowser(browser);
    }
  });
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
}

export async function closeBrowser(browser: Browser): Promise<void> {
  await browser.close();
}

/** Where a test saves a screenshot (test-artifacts/inspector/NAME.png, created on demand). */
export function screenshotPath(name: string): string {
  const dir = join(process.cwd(), 'test-artifacts', 'inspector');
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.png`);
}
