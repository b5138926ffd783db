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
  let utilSum = 0;
  const energyBreakdown = { cogen: 0, grid: 0, battery: 0 };
  for (const { status, context } of nodes) {
    totalNodes++;
    if (status === 'offline') continue;
    activeNodes++;
    utilSum += context.gpuUtilization;
    energyBreakdown[context.energySource]++;
  }
  // Rounded so the summary (which is journaled) does not carry float noise from summation order.
  const avgGpuUtil = activeNodes === 0 ? 0 : Math.round((utilSum / activeNodes) * 1e6) / 1e6;
  return { geozoneId, atMs, totalNodes, activeNodes, avgGpuUtil, energyBreakdown, openReservations };
}
