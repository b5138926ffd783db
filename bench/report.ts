import type { Figure, PlotAxis, PlotFields, PlotSeries } from './measure.js';

/**
 * The benchmark report (`npm run bench -- --report DIR`): one self-contained
 * HTML page, every plot an inline SVG drawn here (no script, no stylesheet or
 * font from elsewhere, nothing fetched), so it opens from a file, offline, and
 * can be archived with its bench.jsonl.
 *
 * A figure is drawn when it carries the plot fields declared in measure.ts
 * (`x`, `y`, `series`); every figure, drawn or not, is a row of the table.
 * In each plot a series is one `<g class="series">` holding one polyline and
 * one `<circle class="point">` per point, so what the page shows can be
 * counted (the report test does, in Chromium).
 */

export interface ReportMeta {
  /** When the benches ran, as text (ISO 8601). */
  readonly generatedAt: string;
  /** The command line, the machine, Node's version: whatever says under which conditions. */
  readonly conditions: readonly string[];
}

/** Largest number of series or points drawn per plot: a runaway bench cannot make the page unreadable or huge. */
export const MAX_SERIES_PER_PLOT = 12;
export const MAX_POINTS_PER_SERIES = 500;

const WIDTH_PX = 640;
const HEIGHT_PX = 340;
const MARGIN = { left: 72, right: 20, top: 16, bottom: 48 } as const;
const PLOT_W = WIDTH_PX - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT_PX - MARGIN.top - MARGIN.bottom;
/** Colour-blind-safe (Okabe-Ito), then repeated with dashes. */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'] as const;

/**
 * The plot fields of a figure when they are well formed, else undefined (the
 * figure then is only a table row). Figures come from JSON lines any bench may
 * write, so each field is checked, not trusted.
 */
export function plotOf(f: Figure): PlotFields | undefined {
  const x = axisOf(f['x']);
  const y = axisOf(f['y']);
  const raw = f['series'];
  if (x === undefined || y === undefined || !Array.isArray(raw)) return undefined;
  const series: PlotSeries[] = [];
  for (const s of raw.slice(0, MAX_SERIES_PER_PLOT) as unknown[]) {
    if (typeof s !== 'object' || s === null) return undefined;
    const { name, points } = s as { name?: unknown; points?: unknown };
    if (typeof name !== 'string' || !Array.isArray(points)) return undefined;
    const kept: [number, number][] = [];
    for (const p of points.slice(0, MAX_POINTS_PER_SERIES) as unknown[]) {
      if (!Array.isArray(p) || p.length !== 2) return undefined;
      const [px, py] = p as unknown[];
      if (typeof px !== 'number' || typeof py !== 'number') return undefined;
      if (!Number.isFinite(px) || !Number.isFinite(py)) continue;
      if ((x.scale === 'log' && px <= 0) || (y.scale === 'log' && py <= 0)) continue;
      kept.push([px, py]);
    }
    kept.sort((a, b) => a[0] - b[0]);
    series.push({ name, points: kept });
  }
  return series.some((s) => s.points.length > 0) ? { x, y, series } : undefined;
}

function axisOf(value: unknown): PlotAxis | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { label, unit, scale } = value as { label?: unknown; unit?: unknown; scale?: unknown };
  if (typeof label !== 'string' || typeof unit !== 'string') return undefined;
  if (scale !== undefined && scale !== 'linear' && scale !== 'log') return undefined;
  return { label, unit, scale: scale ?? 'linear' };
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Short tick labels: 1.5k, 20M, 0.25; at most three significant digits. */
export function formatNumber(v: number): string {
  const abs = Math.abs(v);
  const trim = (n: number): string => String(Number(n.toPrecision(3)));
  if (abs >= 1e9) return `${trim(v / 1e9)}G`;
  if (abs >= 1e6) return `${trim(v / 1e6)}M`;
  if (abs >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

interface Scale {
  readonly toPx: (v: number) => number;
  readonly ticks: readonly number[];
}

/** A linear scale over [min, max] widened to round ticks (about five of them). */
function linearScale(min: number, max: number, lengthPx: number, flip: boolean): Scale {
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  const toPx = (v: number): number => ((v - lo) / (hi - lo)) * lengthPx;
  return { toPx: flip ? (v) => lengthPx - toPx(v) : toPx, ticks };
}

/** A log10 scale over whole decades; 2 and 5 ticks too when the data spans fewer than three. */
function logScale(min: number, max: number, lengthPx: number, flip: boolean): Scale {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const ticks: number[] = [];
  for (let d = lo; d <= hi; d++) {
    ticks.push(10 ** d);
    if (hi - lo < 3 && d < hi) ticks.push(2 * 10 ** d, 5 * 10 ** d);
  }
  ticks.sort((a, b) => a - b);
  const toPx = (v: number): number => ((Math.log10(v) - lo) / (hi - lo)) * lengthPx;
  return { toPx: flip ? (v) => lengthPx - toPx(v) : toPx, ticks };
}

function scaleFor(axis: PlotAxis, values: readonly number[], lengthPx: number, flip: boolean, fromZero: boolean): Scale {
  let min = Math.min(...values);
  const max = Math.max(...values);
  if (axis.scale === 'log') return logScale(min, max, lengthPx, flip);
  // Quantities (throughput, latency) start at zero so that the lines' heights compare honestly.
  if (fromZero && min > 0) min = 0;
  return linearScale(min, max, lengthPx, flip);
}

const px = (v: number): string => v.toFixed(1);

function axisTitle(axis: PlotAxis): string {
  return axis.unit === '' ? axis.label : `${axis.label} (${axis.unit})`;
}

/** One plot as an inline SVG element. */
export function plotSvg(title: string, plot: PlotFields): string {
  const xs = plot.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = plot.series.flatMap((s) => s.points.map((p) => p[1]));
  const sx = scaleFor(plot.x, xs, PLOT_W, false, false);
  const sy = scaleFor(plot.y, ys, PLOT_H, true, true);
  const parts: string[] = [];
  parts.push(
    `<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH_PX} ${HEIGHT_PX}" width="${WIDTH_PX}" height="${HEIGHT_PX}" role="img" aria-label="${escapeHtml(title)}">`,
    `<g class="frame" transform="translate(${MARGIN.left},${MARGIN.top})">`,
  );
  for (const t of sy.ticks) {
    const y = px(sy.toPx(t));
    parts.push(`<line class="grid" x1="0" x2="${PLOT_W}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    parts.push(`<text class="tick y" x="-6" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatNumber(t))}</text>`);
  }
  for (const t of sx.ticks) {
    const x = px(sx.toPx(t));
    parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="0" y2="${PLOT_H}" stroke="#f0f0f0"/>`);
    parts.push(`<text class="tick x" x="${x}" y="${PLOT_H + 16}" text-anchor="middle">${escapeHtml(formatNumber(t))}</text>`);
  }
  parts.push(`<line class="axis" x1="0" x2="${PLOT_W}" y1="${PLOT_H}" y2="${PLOT_H}" stroke="#333"/>`);
  parts.push(`<line class="axis" x1="0" x2="0" y1="0" y2="${PLOT_H}" stroke="#333"/>`);
  parts.push(`<text class="axis-title x" x="${PLOT_W / 2}" y="${PLOT_H + 38}" text-anchor="middle">${escapeHtml(axisTitle(plot.x))}</text>`);
  parts.push(`<text class="axis-title y" transform="translate(-56,${PLOT_H / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(axisTitle(plot.y))}</text>`);
  plot.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length] ?? '#000';
    const dash = i >= COLOURS.length ? ' stroke-dasharray="6 3"' : '';
    const coords = s.points.map(([x, y]) => [sx.toPx(x), sy.toPx(y)] as const);
    parts.push(`<g class="series" data-series="${escapeHtml(s.name)}" data-points="${s.points.length}">`);
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2"${dash} points="${coords.map(([x, y]) => `${px(x)},${px(y)}`).join(' ')}"/>`);
    s.points.forEach(([x, y], j) => {
      const [cx, cy] = coords[j] ?? [0, 0];
      const tip = `${s.name}: ${formatNumber(x)} ${plot.x.unit}, ${formatNumber(y)} ${plot.y.unit}`;
      parts.push(`<circle class="point" cx="${px(cx)}" cy="${px(cy)}" r="3.5" fill="${colour}" data-x="${x}" data-y="${y}"><title>${escapeHtml(tip)}</title></circle>`);
    });
    parts.push('</g>');
  });
  parts.push('</g></svg>');
  const legend = plot.series
    .map((s, i) => `<li><span class="swatch" style="background:${COLOURS[i % COLOURS.length] ?? '#000'}"></span>${escapeHtml(s.name)}</li>`)
    .join('');
  return `${parts.join('')}<ul class="legend">${legend}</ul>`;
}

function ratioCell(f: Figure): string {
  return Number.isFinite(f.ratio) ? String(f.ratio) : '';
}

function tableRow(f: Figure): string {
  const cells = [f.bench, f.metric, `${formatNumber(f.value)} ${f.unit}`, `${formatNumber(f.baseline.value)}: ${f.baseline.what}`, ratioCell(f), f.goal ?? ''];
  return `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.conditions { color: #555; font-size: 13px; }
figure.bench-plot { margin: 24px 0; }
figure.bench-plot figcaption { font-weight: 600; margin-bottom: 4px; }
svg.plot text { font-size: 11px; fill: #333; }
svg.plot .axis-title { font-size: 12px; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0 72px; display: flex; flex-wrap: wrap; gap: 14px; }
ul.legend .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
`;

/** The whole page: the plots, then every figure as a table row. */
export function renderReport(figures: readonly Figure[], meta: ReportMeta): string {
  const plots = figures
    .map((f) => ({ f, plot: plotOf(f) }))
    .filter((p): p is { f: Figure; plot: PlotFields } => p.plot !== undefined)
    .map(({ f, plot }) => {
      const title = `${f.bench}: ${f.metric}`;
      return `<figure class="bench-plot" data-bench="${escapeHtml(f.bench)}" data-metric="${escapeHtml(f.metric)}"><figcaption>${escapeHtml(title)}</figcaption>${plotSvg(title, plot)}</figure>`;
    });
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>ArcNet benchmark report, ${escapeHtml(meta.generatedAt)}</title>`,
    `<style>${STYLE}</style></head><body>`,
    '<h1>ArcNet benchmark report</h1>',
    `<p class="conditions">${[meta.generatedAt, ...meta.conditions].map(escapeHtml).join('<br>')}</p>`,
    '<p>Each figure is measured next to its raw baseline in the same run; on a shared machine the ratio is what counts. The JSON lines are in bench.jsonl beside this page.</p>',
    `<h2>Plots (${plots.length})</h2>`,
    plots.length === 0 ? '<p>No bench in this run measured at several points.</p>' : plots.join('\n'),
    `<h2>All figures (${figures.length})</h2>`,
    '<table><thead><tr><th>bench</th><th>metric</th><th>value</th><th>baseline</th><th>ratio</th><th>goal</th></tr></thead><tbody>',
    figures.map(tableRow).join('\n'),
    '</tbody></table>',
    '</body></html>',
    '',
  ].join('\n');
}
