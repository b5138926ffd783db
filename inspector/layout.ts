import elkBundled from 'elkjs/lib/elk.bundled.js';
import type { ELK as ElkApi, ElkNode as ElkInput } from 'elkjs/lib/elk-api.js';
import type { StatechartGraph, StateInfo, TransitionInfo } from './statechart.js';

/**
 * Lays a statechart out with elkjs (layered, left to right), on the server:
 * a machine's picture is the same for every viewer and changes only when the
 * process starts with a changed machine, so it is computed once and cached,
 * and the page receives boxes and polylines to draw (no layout engine to load,
 * no layout work in the browser before the first diagram).
 *
 * Drawn as: one box per state (final states marked), a dot for each compound
 * state's initial child, an "any state" box for transitions declared on the
 * machine itself, and one arrow per transition that changes state, labelled
 * `event [guard]`. Transitions that stay in their state (actions only) are
 * listed inside the state's box instead of looping arrows.
 */
export interface DiagramNode {
  readonly id: string;
  readonly role: 'state' | 'initial' | 'any';
  /** The state drawn (role 'state'); its journal path is what live counts are keyed by. */
  readonly state: StateInfo | null;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  /** Labels of the transitions that stay in this state. */
  readonly internal: readonly string[];
}

export interface DiagramEdge {
  readonly id: string;
  /** The transition drawn; null for the arrow from an initial dot. */
  readonly transition: string | null;
  readonly points: readonly (readonly [number, number])[];
  readonly label: { readonly text: string; readonly x: number; readonly y: number; readonly width: number; readonly height: number } | null;
}

export interface Diagram {
  readonly machine: string;
  readonly width: number;
  readonly height: number;
  readonly nodes: readonly DiagramNode[];
  readonly edges: readonly DiagramEdge[];
  readonly graph: StatechartGraph;
}

/** Text metrics of the page's diagram font (12px sans-serif), close enough for layout. */
const CHAR_PX = 7;
const LINE_PX = 15;
/** Header (state name) and the live-count line under it. */
const STATE_HEADER_PX = 40;
const INITIAL_DOT_PX = 12;

export function transitionLabel(t: Pick<TransitionInfo, 'event' | 'guard'>): string {
  return t.guard === null ? t.event : `${t.event} [${t.guard}]`;
}

interface ElkLabel {
  text: string;
  width: number;
  height: number;
  x?: number;
  y?: number;
}
interface ElkNode {
  id: string;
  width?: number;
  height?: number;
  x?: number;
  y?: number;
  children?: ElkNode[];
  edges?: ElkEdge[];
  labels?: ElkLabel[];
  layoutOptions?: Record<string, string>;
}
interface ElkEdge {
  id: string;
  sources: string[];
  targets: string[];
  labels?: ElkLabel[];
  container?: string;
  sections?: { startPoint: { x: number; y: number }; endPoint: { x: number; y: number }; bendPoints?: { x: number; y: number }[] }[];
}

/** elk.bundled.js is CommonJS: Node hands its module.exports (the constructor) to a default import. */
const ElkConstructor = elkBundled as unknown as new () => ElkApi;

const layoutOptions = {
  'elk.algorithm': 'layered',
  'elk.direction': 'RIGHT',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.edgeRouting': 'POLYLINE',
  'elk.layered.spacing.nodeNodeBetweenLayers': '70',
  'elk.spacing.nodeNode': '36',
  'elk.spacing.edgeLabel': '4',
  'elk.spacing.edgeEdge': '14',
  'elk.layered.mergeEdges': 'false',
  'elk.padding': '[top=24,left=16,bottom=16,right=16]',
};

export async function layoutStatechart(graph: StatechartGraph): Promise<Diagram> {
  const byId = new Map(graph.states.map((s) => [s.id, s]));
  const internal = new Map<string, string[]>();
  for (const t of graph.transitions) if (t.target === null) internal.set(t.source, [...(internal.get(t.source) ?? []), transitionLabel(t)]);

  const elkNodes = new Map<string, ElkNode>();
  const root: ElkNode = { id: graph.root, layoutOptions, children: [], edges: [] };
  elkNodes.set(graph.root, root);
  const edges: ElkEdge[] = [];
  const labelOf = (text: string): ElkLabel => ({ text, width: text.length * CHAR_PX + 6, height: LINE_PX });

  for (const state of graph.states) {
    if (state.id === graph.root) continue;
    const lines = internal.get(state.id) ?? [];
    const textWidth = Math.max(state.key.length * (CHAR_PX + 1), ...lines.map((l) => l.length * CHAR_PX), 60);
    const node: ElkNode = { id: state.id, width: textWidth + 28, height: STATE_HEADER_PX + lines.length * LINE_PX + 8 };
    if (state.type === 'compound' || state.type === 'parallel') {
      node.children = [];
      node.layoutOptions = { 'elk.padding': `[top=${STATE_HEADER_PX + lines.length * LINE_PX},left=12,bottom=12,right=12]` };
      delete node.width;
      delete node.height;
    }
    elkNodes.set(state.id, node);
  }
  for (const state of graph.states) {
    if (state.id === graph.root) continue;
    const parent = elkNodes.get(state.parent ?? graph.root) ?? root;
    (parent.children ??= []).push(elkNodes.get(state.id) as ElkNode);
  }
  for (const state of graph.states) {
    if (state.initial === null) continue;
    const container = elkNodes.get(state.id) ?? root;
    const dotId = `${state.id}:initial`;
    (container.children ??= []).push({ id: dotId, width: INITIAL_DOT_PX, height: INITIAL_DOT_PX });
    edges.push({ id: `${dotId}->`, sources: [dotId], targets: [state.initial] });
  }
  const rootTransitions = graph.transitions.filter((t) => t.source === graph.root && t.target !== null);
  const anyId = `${graph.root}:any`;
  if (rootTransitions.length > 0) (root.children ??= []).push({ id: anyId, width: 84, height: 28 });
  for (const t of graph.transitions) {
    if (t.target === null) continue;
    const source = t.source === graph.root ? anyId : t.source;
    edges.push({ id: t.id, sources: [source], targets: [t.target], labels: [labelOf(transitionLabel(t))] });
  }
  root.edges = edges;

  const laid = (await new ElkConstructor().layout(root as ElkInput)) as ElkNode;

  // elkjs gives node positions relative to their parent and edge points relative to the edge's container.
  const offsets = new Map<string, [number, number]>([[graph.root, [0, 0]]]);
  const nodes: DiagramNode[] = [];
  const walk = (node: ElkNode, ox: number, oy: number): void => {
    for (const child of node.children ?? []) {
      const x = ox + (child.x ?? 0);
      const y = oy + (child.y ?? 0);
      offsets.set(child.id, [x, y]);
      const state = byId.get(child.id) ?? null;
      const role = state !== null ? 'state' : child.id === anyId ? 'any' : 'initial';
      nodes.push({ id: child.id, role, state, x, y, width: child.width ?? 0, height: child.height ?? 0, internal: internal.get(child.id) ?? [] });
      walk(child, x, y);
    }
  };
  walk(laid, 0, 0);

  const drawn: DiagramEdge[] = [];
  const collectEdges = (node: ElkNode): void => {
    for (const edge of node.edges ?? []) {
      const [ox, oy] = offsets.get(edge.container ?? node.id) ?? [0, 0];
      const points: [number, number][] = [];
      for (const section of edge.sections ?? []) {
        points.push([ox + section.startPoint.x, oy + section.startPoint.y]);
        for (const bend of section.bendPoints ?? []) points.push([ox + bend.x, oy + bend.y]);
        points.push([ox + section.endPoint.x, oy + section.endPoint.y]);
      }
      const label = edge.labels?.[0];
      drawn.push({
        id: edge.id,
        transition: edge.id.endsWith(':initial->') ? null : edge.id,
        points,
        label: label === undefined ? null : { text: label.text, x: ox + (label.x ?? 0), y: oy + (label.y ?? 0), width: label.width, height: label.height },
      });
    }
    for (const child of node.children ?? []) collectEdges(child);
  };
  collectEdges(laid);
  return { machine: graph.machine, width: laid.width ?? 0, height: laid.height ?? 0, nodes, edges: drawn, graph };
}
