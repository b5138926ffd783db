import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { browserTest, screenshotPath } from '../helpers/browser.js';
import { tempDir } from '../helpers/fixtures.js';

/** Live counts on the page as the simulated fleet runs, through `arcnet region --port N --sim-nodes ...`. */
const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

browserTest('live counts on the page change as the simulated fleet runs in arcnet region', async (t, browser) => {
  const { dir, cleanup } = tempDir('arcnet-inspector-live-');
  const port = await freePort();
  const region = spawn(process.execPath, [cli, 'region', '--data', `${dir}/data`, '--geozones', 'CAISO,ERCOT', '--sim-nodes', '400', '--rate', '40', '--port', String(port), '--status-every', '1h'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    // The HTTP server comes up after recovery: retry until the page answers.
    for (let attempt = 0; ; attempt++) {
      try {
        await page.goto(`http://127.0.0.1:${port}/inspector`);
        break;
      } catch (error) {
        if (attempt > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await page.click('[data-testid=machine-tab-reservation]');
    const readCounts = () => page.locator('[data-testid=state-counts]').innerText();
    await page.waitForSelector('[data-testid=state-counts] td');
    const first = await readCounts();
    // Reservations are made and end continuously: the table moves without a reload.
    // Polled from here: the page's CSP (script-src 'self') rightly refuses evaluated predicate strings.
    let later = first;
    for (const started = Date.now(); later === first && Date.now() - started < 30_000; ) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      later = await readCounts();
    }
    t.not(later, first);
    await page.click('[data-testid=machine-tab-node]');
    await page.waitForSelector('[data-testid="state-node-online"] .count:not(:empty)');
    t.regex((await page.textContent('[data-testid="state-node-online"] .count')) ?? '', /\d+ actors?/);
    await page.screenshot({ path: screenshotPath('live'), fullPage: true });
  } finally {
    region.kill('SIGTERM');
    if (region.exitCode === null) await once(region, 'exit');
    cleanup();
  }
});
