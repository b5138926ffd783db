import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { browserTest, screenshotPath } from '../helpers/browser.js';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { startTrainingAgent, type TrainingAgent } from '../helpers/training-agent.js';

/**
 * The inspector with a federated job running in `arcnet region`, in real headless
 * Chromium: the federated-round actor is live on its diagram and in the actor
 * list, its history shows the round's events, and time travel to a point inside
 * round 1 shows the counts (federated rounds included) and the state hash that
 * `arcnet replay --until-offset` prints for that point.
 */

const GEOZONE = 'CAISO';
const JOB = 'insp-job';

interface ReplayLine {
  stateHash: string;
  counts?: Record<string, Record<string, Record<string, number>>>;
}

/** The page's time-travel table as { geozone: { 'kind state': n } } (zeros left out, as replay leaves them out). */
async function travelCounts(page: Page): Promise<Record<string, Record<string, number>>> {
  const rows = page.locator('[data-testid=tt-counts] tr');
  const head = await rows.first().locator('th').allTextContents();
  const result: Record<string, Record<string, number>> = {};
  for (let i = 1; i < (await rows.count()); i++) {
    const cells = await rows.nth(i).locator('td').allTextContents();
    const counts: Record<string, number> = {};
    head.slice(1).forEach((title, j) => {
      const n = Number(cells[j + 1]);
      if (n > 0) counts[title] = n;
    });
    result[cells[0] ?? ''] = counts;
  }
  return result;
}

function flatten(counts: Record<string, Record<string, Record<string, number>>>): Record<string, Record<string, number>> {
  const result: Record<string, Record<string, number>> = {};
  for (const [geozone, kinds] of Object.entries(counts)) {
    const flat: Record<string, number> = {};
    for (const [kind, states] of Object.entries(kinds)) for (const [state, n] of Object.entries(states)) if (n > 0) flat[`${kind} ${state}`] = n;
    result[geozone] = flat;
  }
  return result;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

browserTest('the inspector shows a federated-round actor live (diagram, list, history) and in time travel, matching arcnet replay', async (t, browser) => {
  const { dir, cleanup } = tempDir('arcnet-inspector-training-');
  const data = join(dir, 'data');
  let region: LiveRegion | undefined;
  const fleet: TrainingAgent[] = [];
  try {
    region = await startLiveRegion(['--data', data, '--geozones', GEOZONE, '--sim-nodes', '0']);
    const origin = region.origin;
    // Round 2 is never answered while the test looks: the actor stays live in `training`.
    for (let i = 1; i <= 3; i++) fleet.push(await startTrainingAgent({ origin, nodeId: `insp-n${i}`, geozone: GEOZONE, answers: (_job, round) => round !== 2 }));
    await until('the nodes', async () => ((await (await fetch(`${origin}/v1/nodes?geozone=${GEOZONE}`)).json()) as { nodes: unknown[] }).nodes.length === 3 || undefined, 30_000);
    const posted = await fetch(`${origin}/v1/training`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        'job-id': JOB,
        geozone: GEOZONE,
        'model-id': 'digits-softmax',
        'dataset-uri': 'builtin:digits',
        rounds: 3,
        'min-participants': 3,
        participants: 3,
        'round-deadline-ms': 600_000,
        'checkpoint-uri': pathToFileURL(join(dir, 'ck')).href,
      }),
    });
    t.is(posted.status, 202, await posted.text());
    await until('round 2', async () => {
      const job = (await (await fetch(`${origin}/v1/training/${JOB}`)).json()) as { 'round-history': unknown[] };
      return job['round-history'].length === 2 || undefined;
    }, 60_000);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${origin}/inspector`);

    // Live: the diagram counts the actor in `training`.
    await page.click('[data-testid=machine-tab-federatedRound]');
    await page.waitForSelector('[data-testid="state-federatedRound-training"] .count:text-matches("^1 actor")');
    t.is(await page.locator('[data-testid="state-federatedRound-training"] .name').textContent(), 'training');

    // In the list and in detail: state highlighted, context of round 2, history of round 1's events.
    await page.selectOption('[data-testid=actor-kind]', 'federated-round');
    await page.waitForSelector('[data-testid=actor-total]:text-is("(1)")');
    t.is(await page.locator('[data-testid=actor-row]').count(), 1);
    t.regex((await page.locator('[data-testid=actor-row]').first().textContent()) ?? '', new RegExp(`training/${JOB}`));
    // Each cell of the row is readable: none spills under the next (the kind name is the longest there is).
    const cells = page.locator('[data-testid=actor-row]').first().locator('span');
    t.deepEqual(await cells.allTextContents(), [`training/${JOB}`, 'federated-round', 'training', GEOZONE]);
    for (let i = 0; i < 4; i++) {
      const fits = await cells.nth(i).evaluate((cell: { scrollWidth: number; clientWidth: number }) => cell.scrollWidth <= cell.clientWidth);
      t.true(fits, `cell ${i} of the actor row fits its column`);
    }
    await page.locator('[data-testid=actor-row]').first().click();
    await page.waitForSelector('[data-testid=history-row]');
    t.is(await page.textContent('[data-testid=actor-id]'), `training/${JOB}`);
    t.is(await page.textContent('[data-testid=actor-state-label]'), 'training');
    t.regex((await page.locator('[data-testid="state-federatedRound-training"]').getAttribute('class')) ?? '', /\bhighlight\b/);
    const context = JSON.parse((await page.textContent('[data-testid=actor-context]')) ?? '{}') as { jobId?: string; round?: number; participants?: string[] };
    t.is(context.jobId, JOB);
    t.is(context.round, 2);
    t.deepEqual(context.participants, ['insp-n1', 'insp-n2', 'insp-n3']);
    const history = await page.locator('[data-testid=history-row]').allTextContents();
    for (const event of ['configure', 'update.received', 'aggregated', 'checkpoint.published']) {
      t.true(history.some((row) => row.includes(event)), `history shows ${event}`);
    }
    await page.screenshot({ path: screenshotPath('federated-round-live'), fullPage: true });

    // Time travel to the first update of round 1: the actor is in `training` there, and the page agrees with arcnet replay.
    const firstUpdate = page.locator('[data-testid=history-row]:has-text("update.received")').first();
    const offset = Number(await firstUpdate.locator('td').first().textContent());
    t.true(Number.isInteger(offset), String(offset));
    await page.selectOption('[data-testid=tt-geozone]', GEOZONE);
    await page.fill('[data-testid=tt-offset]', String(offset));
    await page.press('[data-testid=tt-offset]', 'Enter');
    const replayed = arcnetSync('replay', '--journal', data, '--json', '--until-offset', String(offset), '--geozone', GEOZONE);
    t.is(replayed.status, 0, replayed.stderr);
    const line = JSON.parse(replayed.stdout) as ReplayLine;
    // Poll rather than wait for the exact text, so a wrong hash fails with what the page showed.
    let shown = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      shown = (await page.textContent('[data-testid=tt-hash]')) ?? '';
      if (shown === line.stateHash) break;
    }
    t.is(shown, line.stateHash, `time travel to offset ${offset}: the page's hash against arcnet replay's`);
    const counts = await travelCounts(page);
    t.deepEqual(counts, flatten(line.counts ?? {}));
    t.is(counts[GEOZONE]?.['federated-round training'], 1, JSON.stringify(counts));
    await page.screenshot({ path: screenshotPath('federated-round-time-travel'), fullPage: true });
    t.deepEqual(errors, []);
  } finally {
    await Promise.all(fleet.map((a) => a.close()));
    await region?.stop().catch(() => region?.child.kill('SIGKILL'));
    cleanup();
  }
});
