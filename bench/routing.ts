import { ineligibility, RoutingIndex } from '../actors/routing-index.js';
import type { NodeContext } from '../machines/node.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, percentile, type Figure } from './measure.js';

const energyRank = { cogen: 0, grid: 1, battery: 2 } as const;

function contexts(count: number): NodeContext[] {
  return fleetTelemetry(count, 'CAISO', 0).map((input) => {
    if (input.type !== 'telemetry') throw new Error('fixture');
    return {
      nodeId: input.nodeId,
      ...input.report,
      lastSeenAtMs: 0,
      silentAfterMs: 30_000,
      silenceTimeoutMs: 30_000,
      reservationsPerGpu: 2,
      reservations: [],
      drainRequested: false,
    };
  });
}

/** The same rules applied by scanning every node: what the index saves. */
function scanChoose(nodes: readonly NodeContext[], modelId: string): NodeContext | undefined {
  let best: NodeContext | undefined;
  for (const node of nodes) {
    if (!node.modelsLoaded.includes(modelId) || ineligibility('online', node) !== undefined) continue;
    if (
      best === undefined ||
      energyRank[node.energySource] < energyRank[best.energySource] ||
      (energyRank[node.energySource] === energyRank[best.energySource] &&
        (node.gpuUtilization < best.gpuUtilization || (node.gpuUtilization === best.gpuUtilization && node.nodeId < best.nodeId)))
    ) {
      best = node;
    }
  }
  return best;
}

/**
 * Runs `decisions` routing decisions with reservation churn (each decision
 * reserves a slot; the oldest reservations are released to keep the fleet half
 * full), timing each decision: choose + index update of the chosen node.
 */
function run(nodeCount: number, decisions: number, useIndex: boolean): { perSec: number; p50Us: number; p99Us: number } {
  const nodes = contexts(nodeCount);
  const byId = new Map(nodes.map((n) => [n.nodeId, n]));
  const index = new RoutingIndex();
  for (const node of nodes) index.update(node.nodeId, 'online', node);
  const capacity = nodes.reduce((sum, n) => sum + n.gpuCount * 2, 0);
  const open: NodeContext[] = [];
  const samples = new Float64Array(decisions);
  for (let i = 0; i < decisions; i++) {
    const model = benchModels[i % benchModels.length] as string;
    const t0 = monotonicNowMs();
    let chosen: NodeContext | undefined;
    if (useIndex) {
      const choice = index.choose(model);
      chosen = choice === undefined ? undefined : byId.get(choice.nodeId);
      if (chosen !== undefined) {
        chosen.reservations = [...chosen.reservations, `r${i}`];
        index.update(chosen.nodeId, 'online', chosen);
      }
    } else {
      chosen = scanChoose(nodes, model);
      if (chosen !== undefined) chosen.reservations = [...chosen.reservations, `r${i}`];
    }
    samples[i] = monotonicNowMs() - t0;
    if (chosen !== undefined) open.push(chosen);
    while (open.length > capacity / 2) {
      const node = open.shift() as NodeContext;
      node.reservations = node.reservations.slice(1);
      if (useIndex) index.update(node.nodeId, 'online', node);
    }
  }
  const list = Array.from(samples);
  const decidingMs = list.reduce((sum, ms) => sum + ms, 0);
  return { perSec: (decisions / decidingMs) * 1000, p50Us: percentile(list, 50) * 1000, p99Us: percentile(list, 99) * 1000 };
}

export function routingBench(): Figure[] {
  const figures: Figure[] = [];
  const byNodes: { nodes: number; indexed: number; scanned: number }[] = [];
  for (const nodeCount of [1_000, 10_000]) {
    run(nodeCount, 20_000, true); // warm up the JIT
    const indexed = run(nodeCount, 200_000, true);
    const scanned = run(nodeCount, nodeCount >= 10_000 ? 5_000 : 20_000, false);
    byNodes.push({ nodes: nodeCount, indexed: indexed.perSec, scanned: scanned.perSec });
    figures.push(
      figure({
        bench: 'routing',
        metric: `decisions_per_sec_${nodeCount}_nodes`,
        unit: 'decisions/s',
        value: indexed.perSec,
        baseline: { what: 'full scan of every node with the same rules', value: scanned.perSec },
        extra: { nodes: nodeCount },
      }),
      figure({
        bench: 'routing',
        metric: `p99_us_${nodeCount}_nodes`,
        unit: 'µs',
        value: indexed.p99Us,
        baseline: { what: 'full scan p99', value: scanned.p99Us },
        extra: { p50Us: Math.round(indexed.p50Us * 100) / 100, nodes: nodeCount },
        goal: nodeCount === 10_000 ? 'p99 <= 50 µs at 10,000 nodes' : undefined,
      }),
    );
  }
  // The same runs as one plot: how decisions/s scale with the fleet, index against full scan.
  const largest = byNodes[byNodes.length - 1];
  const smallest = byNodes[0];
  if (largest !== undefined && smallest !== undefined) {
    figures.push(
      figure({
        bench: 'routing',
        metric: 'decisions_per_sec_by_nodes',
        unit: 'decisions/s',
        value: largest.indexed,
        baseline: { what: `the index at ${smallest.nodes.toLocaleString('en')} nodes (flat cost per decision: ratio 1)`, value: smallest.indexed },
        plot: {
          x: { label: 'nodes', unit: '', scale: 'log' },
          y: { label: 'routing decisions', unit: 'decisions/s', scale: 'log' },
          series: [
            { name: 'index', points: byNodes.map((b) => [b.nodes, b.indexed]) },
            { name: 'full scan', points: byNodes.map((b) => [b.nodes, b.scanned]) },
          ],
        },
      }),
    );
  }
  return figures;
}
