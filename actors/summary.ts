import type { NodeContext, NodeStatus } from '../machines/node.js';
import type { RegionalSummary } from './region-io.js';

/** The seed's regional summary (Pattern 2, step 3), from the shard's node actors. */
export function summarize(
  geozoneId: string,
  atMs: number,
  nodes: Iterable<{ status: NodeStatus; context: NodeContext }>,
  openReservations: number,
): RegionalSummary {
  let totalNodes = 0;
  let activeNodes = 0;
  // Summed in whole millionths: integer addition is exact, so the journaled mean does not
  // depend on the order the nodes come in (a shard restored from a snapshot holds them in
  // another order than the live shard did, and float addition is not associative).
  // At most 1e6 per node, so the sum stays exact below 2^53 (9 billion nodes).
  let utilMillionths = 0;
  const energyBreakdown = { cogen: 0, grid: 0, battery: 0 };
  for (const { status, context } of nodes) {
    totalNodes++;
    if (status === 'offline') continue;
    activeNodes++;
    utilMillionths += Math.round(context.gpuUtilization * 1e6);
    energyBreakdown[context.energySource]++;
  }
  const avgGpuUtil = activeNodes === 0 ? 0 : Math.round(utilMillionths / activeNodes) / 1e6;
  return { geozoneId, atMs, totalNodes, activeNodes, avgGpuUtil, energyBreakdown, openReservations };
}
