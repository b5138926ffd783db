import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { inspectedMachines } from '../../inspector/machines.js';
import { statechartOf } from '../../inspector/statechart.js';
import { browserTest, screenshotPath } from '../helpers/browser.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * The inspector page end to end: `arcnet inspect --journal DIR --api-keys FILE`
 * as a child process over a journal written by `arcnet sim`, driven in real
 * headless Chromium.
 */
const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function arcnet(...args: string[]): string {
  const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`arcnet ${args[0]} exited ${run.status}: ${run.stderr}`);
  return run.stdout;
}

interface ReplayLine {
  stateHash: string;
  until?: { offsets: Record<string, number> };
  counts?: Record<string, Record<string, Record<string, number>>>;
}

async function startInspector(journal: string, keysFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [cli, 'inspect', '--journal', journal, '--port', '0', '--api-keys', keysFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [first] = (await once(lines, 'line')) as string[];
  return { child, url: (JSON.parse(first ?? '{}') as { inspector: string }).inspector };
}

/** The page's time-travel table as { geozone: { 'kind state': n } } (zeros left out, as replay leaves them out). */
async function travelCounts(page: Page): Promise<Record<string, Record<string, number>>> {
  return page.evaluate<Record<string, Record<string, number>>>(`(() => {
    const rows = [...document.querySelectorAll('[data-testid=tt-counts] tr')];
    const head = [...(rows[0]?.querySelectorAll('th') ?? [])].map((th) => th.textContent ?? '');
    const result = {};
    for (const row of rows.slice(1)) {
      const cells = [...row.querySelectorAll('td')].map((td) => td.textContent ?? '');
      const counts = {};
      head.slice(1).forEach((title, i) => {
        const n = Number(cells[i + 1]);
        if (n > 0) counts[title] = n;
      });
      result[cells[0] ?? ''] = counts;
    }
    return result;
  })()`);
}

function flatten(counts: Record<string, Record<string, Record<string, number>>>): Record<string, Record<string, number>> {
  const result: Record<string, Record<string, number>> = {};
  for (const [geozone, kinds] of Object.entries(counts)) {
    result[geozone] = {};
    for (const [kind, states] of Object.entries(kinds)) for (const [state, n] of Object.entries(states)) if (n > 0) result[geozone][`${kind} ${state}`] = n;
  }
  return result;
}

browserTest('the inspector page: refused without a key, then diagrams, an actor with its history, and time travel matching arcnet replay', async (t, browser) => {
  const { dir, cleanup } = tempDir('arcnet-inspector-page-');
  let child: ChildProcess | undefined;
  try {
    const journal = `${dir}/j`;
    arcnet('sim', '--seed', '5', '--nodes', '80', '--geozones', 'CAISO,ERCOT', '--duration', '2m', '--rate', '20', '--journal', journal, '--json', '--progress', 'off');
    const { key } = JSON.parse(arcnet('keys', 'create', '--role', 'viewer', '--geozones', '*', '--file', `${dir}/keys.json`, '--json')) as { key: string };
    const started = await startInspector(journal, `${dir}/keys.json`);
    child = started.child;

    // Without a key: the form, and no data at all.
    const anonymous = await browser.newPage();
    await anonymous.goto(started.url);
    await anonymous.waitForSelector('[data-testid=key-form]', { state: 'visible' });
    t.false(await anonymous.isVisible('#app'));
    t.is(await anonymous.locator('[data-testid=actor-row]').count(), 0);
    // A wrong key: a plain refusal, still no data.
    await anonymous.fill('[data-testid=key-input]', 'arc_thisIsNotAKeyThatExistsAnywhere00000000000');
    await anonymous.click('[data-testid=key-form] button[type=submit]');
    await anonymous.waitForSelector('[data-testid=refused]', { state: 'visible' });
    t.regex((await anonymous.textContent('[data-testid=refused]')) ?? '', /refused \(ARC_ERR_UNAUTHENTICATED\)/);
    t.false(await anonymous.isVisible('#app'));
    t.is(await anonymous.evaluate('sessionStorage.length'), 0, 'a refused key is not kept');
    await anonymous.screenshot({ path: screenshotPath('refused'), fullPage: true });
    await anonymous.close();

    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${started.url}#key=${encodeURIComponent(key)}`);
    await page.waitForSelector('[data-testid=machine-tabs] button');
    t.false(page.url().includes(key), 'the key leaves the address bar');
    t.is(await page.evaluate("sessionStorage.getItem('arcnet.inspector.key')"), key);

    // Every machine's diagram shows every one of its states.
    for (const { machine } of inspectedMachines) {
      await page.click(`[data-testid=machine-tab-${machine.id}]`);
      for (const state of statechartOf(machine).states.filter((s) => s.parent !== null)) {
        const box = page.locator(`[data-testid="state-${machine.id}-${state.path}"]`);
        t.is(await box.count(), 1, `${machine.id}: ${state.path}`);
        t.is(await box.locator('.name').textContent(), state.key);
      }
      await page.screenshot({ path: screenshotPath(`diagram-${machine.id}`) });
    }
    // Counts on the node diagram add up to the node rows of the list.
    await page.click('[data-testid=machine-tab-node]');
    await page.waitForFunction("(document.querySelector('[data-testid=\"state-node-online\"] .count')?.textContent ?? '') !== ''");

    // Clicking an actor shows its state on its diagram, its context and its journal history.
    await page.selectOption('[data-testid=actor-kind]', 'node');
    await page.waitForSelector('[data-testid=actor-total]:text-is("(80)")');
    await page.locator('[data-testid=actor-row]').first().click();
    await page.waitForSelector('[data-testid=history-row]');
    const actorId = (await page.textContent('[data-testid=actor-id]')) ?? '';
    t.regex(actorId, /^node\//);
    const actorState = (await page.textContent('[data-testid=actor-state-label]')) ?? '';
    t.regex((await page.locator(`[data-testid="state-node-${actorState}"]`).getAttribute('class')) ?? '', /\bhighlight\b/, 'the actor\'s state is highlighted on its diagram');
    const history = await page.locator('[data-testid=history-row]').allTextContents();
    t.true(history.length > 3);
    const offsets = history.map((row) => Number(/^\d+/.exec(row)?.[0]));
    t.deepEqual(offsets, [...offsets].sort((a, b) => a - b), 'oldest first');
    t.true(history.some((row) => row.includes('telemetry')));
    t.regex((await page.textContent('[data-testid=actor-context]')) ?? '', new RegExp(`"nodeId": "${actorId.slice('node/'.length)}"`));
    await page.screenshot({ path: screenshotPath('actor'), fullPage: true });

    // A reservation's history carries its routing decision: candidates and reason.
    await page.selectOption('[data-testid=actor-kind]', 'reservation');
    await page.waitForSelector('[data-testid=actor-row]:has-text("reservation/")');
    await page.locator('[data-testid=actor-row]').first().click();
    await page.waitForSelector('[data-testid=history-row]:has-text("route.")');
    t.regex((await page.locator('[data-testid=history-row]').allTextContents()).find((row) => row.includes('route.')) ?? '', /\d+ candidates · /);

    // Time travel: at the end of the journal the page shows arcnet replay's hash; moving the slider back shows the hash and counts replay prints for that offset.
    const full = JSON.parse(arcnet('replay', '--journal', journal, '--json')) as ReplayLine;
    await page.waitForSelector(`[data-testid=tt-hash]:text-is("${full.stateHash}")`);
    await page.selectOption('[data-testid=tt-geozone]', 'CAISO');
    const last = Number(await page.getAttribute('[data-testid=tt-slider]', 'max'));
    const back = Math.floor(last / 3);
    const before = await travelCounts(page);
    await page.locator('[data-testid=tt-slider]').fill(String(back));
    const replayed = JSON.parse(arcnet('replay', '--journal', journal, '--json', '--until-offset', String(back), '--geozone', 'CAISO')) as ReplayLine;
    await page.waitForSelector(`[data-testid=tt-hash]:text-is("${replayed.stateHash}")`);
    const after = await travelCounts(page);
    t.deepEqual(after, flatten(replayed.counts ?? {}));
    t.notDeepEqual(after, before, 'the counts moved with the slider');
    t.regex((await page.textContent('[data-testid=tt-point]')) ?? '', new RegExp(`CAISO@${back}\\b`));
    await page.screenshot({ path: screenshotPath('time-travel'), fullPage: true });

    // One event back and forward again.
    await page.click('[data-testid=tt-back]');
    const oneBack = JSON.parse(arcnet('replay', '--journal', journal, '--json', '--until-offset', String(back - 1), '--geozone', 'CAISO')) as ReplayLine;
    await page.waitForSelector(`[data-testid=tt-hash]:text-is("${oneBack.stateHash}")`);
    await page.click('[data-testid=tt-forward]');
    await page.waitForSelector(`[data-testid=tt-hash]:text-is("${replayed.stateHash}")`);
    t.deepEqual(errors, []);
  } finally {
    child?.kill('SIGTERM');
    if (child !== undefined && child.exitCode === null) await once(child, 'exit');
    cleanup();
  }
});
