import type { EnergySource, NodeContext, NodeStatus } from '../machines/node.js';
import { MIN_BATTERY_LEVEL } from './routing-index.js';

/**
 * Who trains in a federated round: the nodes of the geozone that are online
 * (not draining, not offline), above 20 % battery when on battery, and under
 * the GPU-utilisation threshold; ranked cogen > grid > battery, then lower GPU
 * utilisation, then node id, so the choice is the same live and in replay.
 */

export interface RankedParticipant {
  readonly nodeId: string;
  readonly energySource: EnergySource;
  readonly gpuUtilization: number;
  readonly batteryLevel: number;
}

const energyRank: Record<EnergySource, number> = { cogen: 0, grid: 1, battery: 2 };

/** Why a node may not train now; undefined when it may. */
export function trainingIneligibility(status: NodeStatus, node: NodeContext, maxGpuUtilization: number): string | undefined {
  if (status !== 'online') return `status ${status}`;
  if (!(node.gpuUtilization < maxGpuUtilization)) return `gpu utilisation >= ${maxGpuUtilization}`;
  if (node.energySource === 'battery' && !(node.batteryLevel > MIN_BATTERY_LEVEL)) return `battery <= ${MIN_BATTERY_LEVEL}`;
  return undefined;
}

export function compareParticipants(a: RankedParticipant, b: RankedParticipant): number {
  const byEnergy = energyRank[a.energySource] - energyRank[b.energySource];
  if (byEnergy !== 0) return byEnergy;
  if (a.gpuUtilization !== b.gpuUtilization) return a.gpuUtilization - b.gpuUtilization;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/**
 * The best `wanted` eligible nodes in rank order, with how many were eligible
 * and a reason for the journal. Iteration order of `nodes` does not matter.
 */
export function chooseParticipants(
  nodes: Iterable<{ status: NodeStatus; context: NodeContext }>,
  wanted: number,
  maxGpuUtilization: number,
): { chosen: RankedParticipant[]; eligible: number; reason: string } {
  const eligible: RankedParticipant[] = [];
  for (const { status, context } of nodes) {
    if (trainingIneligibility(status, context, maxGpuUtilization) !== undefined) continue;
    eligible.push({ nodeId: context.nodeId, energySource: context.energySource, gpuUtilization: context.gpuUtilization, batteryLevel: context.batteryLevel });
  }
  eligible.sort(compareParticipants);
  const chosen = eligible.slice(0, wanted);
  const bySource = chosen.reduce<Record<string, number>>((acc, p) => ({ ...acc, [p.energySource]: (acc[p.energySource] ?? 0) + 1 }), {});
  const mix = Object.entries(bySource)
    .map(([source, n]) => `${n} ${source}`)
    .join(', ');
  const reason = `best ${chosen.length} of ${eligible.length} eligible (online, gpu < ${maxGpuUtilization}, battery > ${MIN_BATTERY_LEVEL} on battery) by cogen > grid > battery, gpu, id${mix === '' ? '' : `: ${mix}`}`;
  return { chosen, eligible: eligible.length, reason };
}
