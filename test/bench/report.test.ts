import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { figure, type Figure } from '../../bench/measure.js';
import { plotOf, renderReport } from '../../bench/report.js';
import { browserTest } from '../helpers/browser.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * The benchmark report page: rendered from a small synthetic set of figures
 * and read back in real Chromium, so what is checked is what a person sees
 * (the plots' SVG, their series and points, where the points are drawn).
 */
const throughput = figure({
  bench: 'demo',
  metric: 'throughput_vs_offered_load',
  unit: 'requests/s',
  value: 900,
  baseline: { what: 'a bare route', value: 4_000 },
  plot: {
    x: { label: 'offered load', unit: 'requests/s', scale: 'log' },
    y: { label: 'answered', unit: 'requests/s' },
    series: [
      { name: 'offered', points: [[100, 100], [1_000, 1_000], [10_000, 10_000]] },
      { name: 'bare', points: [[100, 100], [1_000, 1_000], [10_000, 4_000]] },
      { name: 'region <script>', points: [[100, 100], [1_000, 900], [10_000, 900]] },
    ],
  },
});
const scaling = figure({
  bench: 'demo',
  metric: 'events_per_sec_by_nodes',
  unit: 'events/s',
  value: 16_000,
  baseline: { what: '1,000 nodes', value: 20_000 },
  plot: {
    x: { label: 'nodes', unit: '' },
    y: { label: 'events', unit: 'events/s' },
    // Out of x order on purpose: the report draws a line left to right.
    series: [{ name: 'one worker', points: [[4_000, 18_000], [1_000, 20_000], [2_000, 19_000], [3_000, 18_500]] }],
  },
});
const plain = figure({ bench: 'demo', metric: 'memory_per_actor', unit: 'bytes', value: 4_600, baseline: { what: 'bare actor', value: 4_000 } });
/** Axes but a series that is not a list of [x, y] pairs: a table row, no plot. */
const malformed: Figure = { ...plain, metric: 'broken_plot', x: { label: 'a', unit: '' }, y: { label: 'b', unit: '' }, series: [{ name: 's', points: [[1, 'two']] }] };
const figures = [throughput, plain, scaling, malformed];

test('plot fields are checked: malformed ones give no plot, log axes drop points <= 0, points are put in x order', (t) => {
  t.is(plotOf(plain), undefined);
  t.is(plotOf(malformed), undefined);
  const logged = plotOf({ ...plain, x: { label: 'x', unit: '', scale: 'log' }, y: { label: 'y', unit: '' }, series: [{ name: 's', points: [[0, 1], [10, 2], [1, 3]] }] });
  t.deepEqual(logged?.series[0]?.points, [
    [1, 3],
    [10, 2],
  ]);
  t.is(plotOf({ ...plain, x: { label: 'x', unit: '', scale: 'cubic' }, y: { label: 'y', unit: '' }, series: [] }), undefined);
});

browserTest('the report page shows one SVG plot per plotted figure, a group per series and a point per value, placed by value', async (t, browser) => {
  const { dir, cleanup } = tempDir('arcnet-report-');
  try {
    const file = join(dir, 'index.html');
    writeFileSync(file, renderReport(figures, { generatedAt: '2026-12-03T12:00:00.000Z', conditions: ['test'] }));
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    const url = pathToFileURL(file).href;
    await page.goto(url);
    // Self-contained: the page asks for nothing but itself.
    t.deepEqual(requested, [url]);

    const plots = await page.evaluate(`(() => [...document.querySelectorAll('figure.bench-plot')].map((figure) => {
      const svg = figure.querySelector('svg');
      const box = svg.getBoundingClientRect();
      return {
        metric: figure.dataset.metric,
        svgs: figure.querySelectorAll('svg').length,
        legend: [...figure.querySelectorAll('.legend li')].map((li) => li.textContent),
        series: [...svg.querySelectorAll('g.series')].map((g) => ({
          name: g.dataset.series,
          lineVertices: g.querySelector('polyline').points.numberOfItems,
          points: [...g.querySelectorAll('circle.point')].map((c) => {
            const r = c.getBoundingClientRect();
            return { x: Number(c.dataset.x), y: Number(c.dataset.y), cx: r.x + r.width / 2 - box.x, cy: r.y + r.height / 2 - box.y, visible: r.width > 0 };
          }),
        })),
        width: box.width,
        height: box.height,
      };
    }))()`);
    type Drawn = { metric: string; svgs: number; legend: string[]; width: number; height: number; series: { name: string; lineVertices: number; points: { x: number; y: number; cx: number; cy: number; visible: boolean }[] }[] };
    const drawn = plots as Drawn[];
    t.deepEqual(
      drawn.map((p) => p.metric),
      ['throughput_vs_offered_load', 'events_per_sec_by_nodes'],
    );
    const [offered, scaled] = drawn;
    if (offered === undefined || scaled === undefined) return t.fail('two plots expected');
    t.is(offered.svgs, 1);
    t.deepEqual(
      offered.series.map((s) => [s.name, s.points.length, s.lineVertices]),
      [
        ['offered', 3, 3],
        ['bare', 3, 3],
        ['region <script>', 3, 3],
      ],
    );
    t.deepEqual(offered.legend, ['offered', 'bare', 'region <script>']);
    t.deepEqual(
      scaled.series.map((s) => [s.name, s.points.length]),
      [['one worker', 4]],
    );
    for (const plot of drawn) {
      for (const s of plot.series) {
        for (const p of s.points) {
          t.true(p.visible && p.cx > 0 && p.cx < plot.width && p.cy > 0 && p.cy < plot.height, `${s.name} (${p.x}, ${p.y}) inside its plot`);
        }
      }
    }
    // Log x: 100, 1,000, 10,000 are equally spaced; linear y: higher values higher on the page.
    const diagonal = offered.series[0]?.points ?? [];
    const [a, b, c] = diagonal;
    if (a === undefined || b === undefined || c === undefined) return t.fail('three points expected');
    t.true(Math.abs(b.cx - a.cx - (c.cx - b.cx)) < 1, 'decades equally spaced on a log axis');
    t.true(a.cy > b.cy && b.cy > c.cy, 'larger y drawn higher');
    // On the linear y axis, 1,000 sits at a tenth of 10,000's height above the zero line.
    const zeroCy = a.cy + (a.cy - c.cy) * (100 / (10_000 - 100));
    t.true(Math.abs((zeroCy - b.cy) / (zeroCy - c.cy) - 0.1) < 0.01, 'y is linear from zero');
    // Points put in x order: 1,000 nodes leftmost.
    const workers = scaled.series[0]?.points ?? [];
    t.deepEqual(
      workers.map((p) => p.x),
      [1_000, 2_000, 3_000, 4_000],
    );
    t.true(workers.every((p, i) => i === 0 || p.cx > (workers[i - 1]?.cx ?? Infinity)), 'left to right');

    // Every figure is a table row, plotted or not; names are text, never markup.
    const rows = await page.evaluate(`[...document.querySelectorAll('table tbody tr')].map((tr) => tr.children[1].textContent)`);
    t.deepEqual(rows, ['throughput_vs_offered_load', 'memory_per_actor', 'events_per_sec_by_nodes', 'broken_plot']);
    t.is(await page.evaluate('document.querySelectorAll("script").length'), 0);
  } finally {
    cleanup();
  }
});

test('npm run bench -- --report DIR writes bench.jsonl and index.html for the benches that ran', (t) => {
  const { dir, cleanup } = tempDir('arcnet-report-run-');
  try {
    const runner = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
    // A bench name that matches none: the runner measures nothing, and the report says so.
    const run = spawnSync(process.execPath, ['--expose-gc', runner, '--json', '--only=none', '--report', dir], { encoding: 'utf8', timeout: 120_000 });
    t.is(run.status, 0, run.stderr);
    t.is(readFileSync(join(dir, 'bench.jsonl'), 'utf8'), '');
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    t.regex(html, /All figures \(0\)/);
    t.regex(html, /--only=none --report/);
    const missing = spawnSync(process.execPath, ['--expose-gc', runner, '--only=none', '--report'], { encoding: 'utf8', timeout: 120_000 });
    t.is(missing.status, 2);
    t.regex(missing.stderr, /--report needs a directory/);
  } finally {
    cleanup();
  }
});
