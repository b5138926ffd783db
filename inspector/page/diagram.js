// Draws a laid-out statechart (boxes and polylines computed by the server with
// elkjs) as SVG, and updates the per-state counts in place: a live update
// touches only the count texts, never the layout.
const SVG = 'http://www.w3.org/2000/svg';

/** @import { MachineDiagram } from './api.js' */

/**
 * @param {string} name
 * @param {Record<string, string | number | undefined>} [attributes] Each set as String(value); undefined ones are left out.
 * @param {Element} [parent]
 */
function el(name, attributes = {}, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined) node.setAttribute(key, String(value));
  if (parent !== undefined) parent.appendChild(node);
  return node;
}

/**
 * @param {Element} parent
 * @param {number} x
 * @param {number} y
 * @param {string} content
 * @param {string} [className]
 */
function text(parent, x, y, content, className) {
  const node = el('text', { x, y, class: className }, parent);
  node.textContent = content;
  return node;
}

/**
 * Renders a diagram into `container`; returns handles for counts and highlighting.
 * @param {Element} container
 * @param {MachineDiagram} diagram
 */
export function drawDiagram(container, diagram) {
  container.replaceChildren();
  const svg = el('svg', { width: Math.ceil(diagram.width), height: Math.ceil(diagram.height), viewBox: `0 0 ${Math.ceil(diagram.width)} ${Math.ceil(diagram.height)}`, 'data-machine': diagram.machine, role: 'img' });
  const defs = el('defs', {}, svg);
  const marker = el('marker', { id: `arrow-${diagram.machine}`, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, defs);
  el('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#6b7a90' }, marker);

  /** @type {Map<string, SVGElement>} state path → its count text */
  const countTexts = new Map();
  /** @type {Map<string, SVGElement>} state path → its box */
  const stateGroups = new Map();
  const nodes = el('g', {}, svg);
  for (const node of diagram.nodes) {
    if (node.role === 'initial') {
      el('circle', { cx: node.x + node.width / 2, cy: node.y + node.height / 2, r: node.width / 2, class: 'initial' }, nodes);
      continue;
    }
    if (node.role === 'any') {
      const g = el('g', { class: 'any' }, nodes);
      el('rect', { x: node.x, y: node.y, width: node.width, height: node.height, rx: 6 }, g);
      text(g, node.x + 10, node.y + 18, 'any state', 'internal');
      continue;
    }
    const state = node.state;
    const g = el('g', { class: `state ${state.type}`, 'data-state': state.path, 'data-testid': `state-${diagram.machine}-${state.path}` }, nodes);
    el('rect', { x: node.x, y: node.y, width: node.width, height: node.height, rx: 8, class: 'outer' }, g);
    if (state.type === 'final') el('rect', { x: node.x + 3, y: node.y + 3, width: node.width - 6, height: node.height - 6, rx: 6 }, g);
    const title = el('title', {}, g);
    title.textContent = state.description ?? state.id;
    text(g, node.x + 12, node.y + 18, state.key, 'name');
    countTexts.set(state.path, text(g, node.x + 12, node.y + 34, '', 'count'));
    node.internal.forEach((line, i) => text(g, node.x + 12, node.y + 52 + i * 15, line, 'internal'));
    stateGroups.set(state.path, g);
  }
  const edges = el('g', {}, svg);
  for (const edge of diagram.edges) {
    const g = el('g', { class: 'edge' }, edges);
    el('polyline', { points: edge.points.map(([x, y]) => `${x},${y}`).join(' '), 'marker-end': `url(#arrow-${diagram.machine})` }, g);
    if (edge.label !== null) text(g, edge.label.x + 3, edge.label.y + edge.label.height - 4, edge.label.text);
  }
  container.appendChild(svg);

  return {
    machine: diagram.machine,
    /** @param {Record<string, number>} counts { state: n } (absent states show nothing). */
    setCounts(counts) {
      for (const [state, node] of countTexts) {
        const n = counts[state];
        const label = n === undefined ? '' : `${n.toLocaleString('en')} ${n === 1 ? 'actor' : 'actors'}`;
        if (node.textContent !== label) node.textContent = label;
      }
    },
    /** @param {string | null} statePath The state to mark, with the states that enclose it (null: none). */
    highlight(statePath) {
      for (const [state, g] of stateGroups) g.classList.toggle('highlight', state === statePath || (statePath ?? '').startsWith(`${state}.`));
    },
  };
}
