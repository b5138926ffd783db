import { nodeCapacity, type EnergySource, type NodeContext, type NodeStatus } from '../machines/node.js';
import { SortedList } from '../runtime/sorted-list.js';

/**
 * The seed's routing rules (Pattern 1) as an index, so a decision costs a lookup
 * instead of a scan of every node.
 *
 * A node is a candidate for a model when it has the model loaded, is online, its
 * GPU utilisation is below 85 %, its battery is above 20 % when it runs on
 * battery, and it has free reservation capacity. Candidates are ranked by energy
 * source (cogen > grid > battery), then lower GPU utilisation, then node id, so
 * the choice is deterministic.
 *
 * For each model the index keeps only the *eligible* nodes, sorted by that rank:
 * the best candidate is the first entry not excluded. A node enters or leaves the
 * lists when telemetry, its status or its reservation count changes its
 * eligibility, and moves in them when its telemetry changes its rank (every
 * report, as utilisation moves); that costs binary searches and a splice of one
 * small chunk per model it serves (SortedList), whatever the size of the fleet.
 */
export const MAX_GPU_UTILIZATION = 0.85;
export const MIN_BATTERY_LEVEL = 0.2;

const energyRank: Record<EnergySource, number> = { cogen: 0, grid: 1, battery: 2 };

interface Ranked {
  readonly nodeId: string;
  readonly energyRank: number;
  readonly gpuUtilization: number;
}

interface Indexed extends Ranked {
  readonly models: readonly string[];
}

function compare(a: Ranked, b: Ranked): number {
  if (a.energyRank !== b.energyRank) return a.energyRank - b.energyRank;
  if (a.gpuUtilization !== b.gpuUtilization) return a.gpuUtilization - b.gpuUtilization;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/** Whether a node may take a new reservation for any of its models; the reason when not. */
export function ineligibility(status: NodeStatus, node: NodeContext): string | undefined {
  if (status !== 'online') return `status ${status}`;
  if (!(node.gpuUtilization < MAX_GPU_UTILIZATION)) return 'gpu utilisation >= 0.85';
  if (node.energySource === 'battery' && !(node.batteryLevel > MIN_BATTERY_LEVEL)) return 'battery <= 0.2';
  if (node.reservations.length >= nodeCapacity(node)) return 'at capacity';
  return undefined;
}

export interface RouteChoice {
  readonly nodeId: string;
  /** Eligible nodes for the model when the choice was made (excluded ones not counted). */
  readonly candidates: number;
  readonly energySource: EnergySource;
  readonly gpuUtilization: number;
}

const energyByRank: EnergySource[] = ['cogen', 'grid', 'battery'];

export class RoutingIndex {
  private readonly byModel = new Map<string, SortedList<Ranked>>();
  private readonly indexed = new Map<string, Indexed>();

  /** Brings one node's entries in line with its state (undefined: the node is gone). */
  update(nodeId: string, status: NodeStatus | undefined, node: NodeContext | undefined): void {
    const previous = this.indexed.get(nodeId);
    const eligible = status !== undefined && node !== undefined && ineligibility(status, node) === undefined;
    if (!eligible) {
      if (previous !== undefined) this.remove(previous);
      return;
    }
    const next: Indexed = {
      nodeId,
      energyRank: energyRank[node.energySource],
      gpuUtilization: node.gpuUtilization,
      models: node.modelsLoaded,
    };
    if (previous !== undefined) {
      if (
        previous.energyRank === next.energyRank &&
        previous.gpuUtilization === next.gpuUtilization &&
        sameModels(previous.models, next.models)
      ) {
        return;
      }
      this.remove(previous);
    }
    this.indexed.set(nodeId, next);
    for (const model of new Set(next.models)) {
      let list = this.byModel.get(model);
      if (list === undefined) {
        list = new SortedList<Ranked>(compare);
        this.byModel.set(model, list);
      }
      list.insert(next);
    }
  }

  /** The best eligible node for the model, skipping `excluded` node ids. */
  choose(modelId: string, excluded: readonly string[] = []): RouteChoice | undefined {
    const list = this.byModel.get(modelId);
    if (list === undefined || list.size === 0) return undefined;
    const chosen = excluded.length === 0 ? list.find(() => true) : list.find((entry) => !excluded.includes(entry.nodeId));
    if (chosen === undefined) return undefined;
    // Count every excluded node that is in the list, not only the ones ranked above the choice.
    const skipped = excluded.length === 0 ? 0 : excluded.filter((id) => this.indexed.get(id)?.models.includes(modelId) === true).length;
    return {
      nodeId: chosen.nodeId,
      candidates: list.size - skipped,
      energySource: energyByRank[chosen.energyRank] as EnergySource,
      gpuUtilization: chosen.gpuUtilization,
    };
  }

  /** Eligible nodes for a model (for summaries and tests). */
  candidates(modelId: string): string[] {
    return [...(this.byModel.get(modelId) ?? [])].map((entry) => entry.nodeId);
  }

  get eligibleNodes(): number {
    return this.indexed.size;
  }

  clear(): void {
    this.byModel.clear();
    this.indexed.clear();
  }

  private remove(entry: Indexed): void {
    this.indexed.delete(entry.nodeId);
    for (const model of new Set(entry.models)) {
      const list = this.byModel.get(model);
      if (list === undefined) continue;
      list.remove(entry, (candidate) => candidate.nodeId === entry.nodeId);
      if (list.size === 0) this.byModel.delete(model);
    }
  }
}

function sameModels(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
