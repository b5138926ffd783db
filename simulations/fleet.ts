import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import type { EnergySource } from '../machines/node.js';
import type { Prng } from '../runtime/random.js';
import { encodeGeohash } from '../actors/geohash.js';

/**
 * A seeded model of a GPU fleet spread over geozones. Each simulated node sends
 * telemetry every 10 s (the seed's period), its utilisation follows the work it
 * was dispatched, battery nodes drain under load and recharge on grid power, and
 * it answers dispatches with a result after a model-dependent latency.
 *
 * Faults (on unless disabled): nodes go silent for a while (some past the 30 s
 * timeout), results that never come back (so the reservation expires), failed
 * results, and duplicate and out-of-order telemetry.
 */
export interface FaultRates {
  /** Chance per telemetry period that a node goes silent. */
  readonly silence: number;
  readonly silenceMinMs: number;
  readonly silenceMaxMs: number;
  /** Chance a dispatch never gets a result. */
  readonly lostResult: number;
  readonly failedResult: number;
  /** Chance a telemetry message is delivered twice. */
  readonly duplicateTelemetry: number;
  /** Chance a telemetry message is delayed past the next one (arrives stale). */
  readonly lateTelemetry: number;
}

export const defaultFaults: FaultRates = {
  silence: 0.002,
  silenceMinMs: 15_000,
  silenceMaxMs: 120_000,
  lostResult: 0.01,
  failedResult: 0.01,
  duplicateTelemetry: 0.01,
  lateTelemetry: 0.01,
};

export const noFaults: FaultRates = {
  silence: 0,
  silenceMinMs: 0,
  silenceMaxMs: 0,
  lostResult: 0,
  failedResult: 0,
  duplicateTelemetry: 0,
  lateTelemetry: 0,
};

export const TELEMETRY_PERIOD_MS = 10_000;
/** The fastest any node answers: the simulation's event window may not exceed it. */
export const MIN_RESULT_LATENCY_MS = 100;

/** Models with their share of traffic, how common they are on nodes, and typical latency. */
export const modelCatalogue = [
  { modelId: 'llama-3-70b', traffic: 0.3, onNodes: 0.5, latencyMs: 1200 },
  { modelId: 'llama-3-8b', traffic: 0.25, onNodes: 0.6, latencyMs: 300 },
  { modelId: 'mistral-7b', traffic: 0.15, onNodes: 0.4, latencyMs: 250 },
  { modelId: 'stable-diffusion-xl', traffic: 0.15, onNodes: 0.35, latencyMs: 2500 },
  { modelId: 'whisper-large-v3', traffic: 0.1, onNodes: 0.25, latencyMs: 800 },
  // Rare on nodes: requests for it get forwarded between geozones, and sometimes rejected.
  { modelId: 'mixtral-8x22b', traffic: 0.05, onNodes: 0.02, latencyMs: 3000 },
] as const;

/** Rough bounding boxes [latMin, latMax, lngMin, lngMax] of known grid regions. */
export const regionBoxes: Record<string, [number, number, number, number]> = {
  CAISO: [32.5, 41.5, -123.5, -115],
  ERCOT: [26, 35.5, -104, -94],
  PJM: [36.5, 42, -85, -74.5],
  MISO: [30, 48.5, -97, -84],
  NYISO: [40.5, 45, -79.5, -72],
  ISONE: [41, 47, -73.5, -67],
  SPP: [32, 45, -104, -94],
};

interface SimNode {
  readonly nodeId: string;
  readonly nodeName: string;
  readonly geozone: string;
  readonly geohash: string;
  readonly gpuCount: number;
  readonly modelsLoaded: string[];
  readonly baseUtil: number;
  /** Nodes with a battery switch to it when their grid/cogen supply is cut, and back. */
  readonly hasBattery: boolean;
  energySource: EnergySource;
  batteryLevel: number;
  active: number;
  silentUntilMs: number;
  /** The node's own clock offset (its reports are ordered by it, never trusted as "now"). */
  readonly clockSkewMs: number;
}

export interface FleetHooks {
  /** Schedule `fn` at simulated time `atMs`. */
  schedule(atMs: number, fn: () => void): void;
  /** Deliver an input to the region at the current simulated time. */
  submit(input: RegionInput): void;
}

export class SimFleet {
  readonly nodes: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  private readonly prng: Prng;
  private readonly faults: FaultRates;
  private readonly hooks: FleetHooks;
  private running = true;

  /** Whether a simulated node is silent at `atMs` (what it would send is lost). */
  isSilent(nodeId: string, atMs: number): boolean {
    const node = this.byId.get(nodeId);
    return node === undefined || atMs < node.silentUntilMs;
  }

  /** Silences a node from `atMs` until `untilMs` (a fault scheduled from outside, e.g. mid-round in training). */
  silence(nodeId: string, atMs: number, untilMs: number): void {
    const node = this.byId.get(nodeId);
    if (node !== undefined && untilMs > atMs) node.silentUntilMs = Math.max(node.silentUntilMs, untilMs);
  }

  constructor(prng: Prng, options: { nodes: number; geozones: readonly string[]; faults: FaultRates }, hooks: FleetHooks) {
    this.prng = prng;
    this.faults = options.faults;
    this.hooks = hooks;
    const geozones = [...options.geozones].sort();
    for (let i = 0; i < options.nodes; i++) {
      const geozone = geozones[i % geozones.length] as string;
      const node = this.makeNode(i, geozone);
      this.nodes.push(node);
      this.byId.set(node.nodeId, node);
    }
  }

  private makeNode(index: number, geozone: string): SimNode {
    const p = this.prng;
    const box = regionBoxes[geozone] ?? syntheticBox(geozone);
    const lat = p.between(box[0], box[1]);
    const lng = p.between(box[2], box[3]);
    const roll = p.next();
    const energySource: EnergySource = roll < 0.3 ? 'cogen' : roll < 0.8 ? 'grid' : 'battery';
    const modelsLoaded = modelCatalogue.filter((m) => p.chance(m.onNodes)).map((m) => m.modelId);
    if (modelsLoaded.length === 0) modelsLoaded.push(p.pick(modelCatalogue).modelId);
    const serial = String(index).padStart(5, '0');
    return {
      nodeId: `${geozone}-${serial}`,
      nodeName: `${geozone}-node-${serial}`,
      geozone,
      geohash: encodeGeohash(lat, lng, 6),
      gpuCount: p.chance(0.5) ? 8 : 4,
      modelsLoaded,
      baseUtil: p.between(0.05, 0.45),
      hasBattery: energySource === 'battery' || p.chance(0.3),
      energySource,
      batteryLevel: p.between(0.3, 1),
      active: 0,
      silentUntilMs: 0,
      clockSkewMs: Math.round(p.between(-2000, 2000)),
    };
  }

  /** Schedules every node's first telemetry within the first period. */
  start(atMs: number): void {
    for (const node of this.nodes) {
      const first = atMs + Math.floor(this.prng.next() * TELEMETRY_PERIOD_MS);
      this.hooks.schedule(first, () => this.tick(node, first));
    }
  }

  stop(): void {
    this.running = false;
  }

  private tick(node: SimNode, atMs: number): void {
    if (!this.running) return;
    const next = atMs + TELEMETRY_PERIOD_MS + Math.round(this.prng.between(-300, 300));
    this.hooks.schedule(next, () => this.tick(node, next));
    this.evolve(node);
    if (atMs < node.silentUntilMs) return;
    if (this.prng.chance(this.faults.silence)) {
      node.silentUntilMs = atMs + Math.round(this.prng.between(this.faults.silenceMinMs, this.faults.silenceMaxMs));
      return;
    }
    const input = this.telemetry(node, atMs);
    if (this.prng.chance(this.faults.lateTelemetry)) {
      // Arrives after the next report: the region must ignore it as stale.
      const late = atMs + TELEMETRY_PERIOD_MS + 2_000;
      this.hooks.schedule(late, () => this.hooks.submit(input));
      return;
    }
    this.hooks.submit(input);
    if (this.prng.chance(this.faults.duplicateTelemetry)) {
      const again = atMs + Math.round(this.prng.between(1, 2_000));
      this.hooks.schedule(again, () => this.hooks.submit(input));
    }
  }

  /** One telemetry period of physics: load-driven utilisation, battery drain and recharge. */
  private evolve(node: SimNode): void {
    const p = this.prng;
    if (node.energySource === 'battery') {
      node.batteryLevel = Math.max(0, node.batteryLevel - 0.004 - 0.01 * this.utilization(node));
      if (node.hasBattery && node.batteryLevel < 0.15 && p.chance(0.5)) node.energySource = 'grid';
    } else {
      if (node.hasBattery) node.batteryLevel = Math.min(1, node.batteryLevel + 0.02);
      if (node.hasBattery && p.chance(0.002)) node.energySource = 'battery'; // supply cut
    }
  }

  private utilization(node: SimNode): number {
    const load = node.active / (node.gpuCount * 2);
    const noise = this.prng.between(-0.03, 0.03);
    return round3(Math.min(1, Math.max(0, node.baseUtil + 0.6 * load + noise)));
  }

  private telemetry(node: SimNode, atMs: number): RegionInput {
    return {
      type: 'telemetry',
      nodeId: node.nodeId,
      report: {
        nodeName: node.nodeName,
        geohash: node.geohash,
        geozone: node.geozone,
        energySource: node.energySource,
        batteryLevel: round3(node.batteryLevel),
        gpuUtilization: this.utilization(node),
        gpuCount: node.gpuCount,
        modelsLoaded: [...node.modelsLoaded],
        reportedAtMs: atMs + node.clockSkewMs,
        draining: false,
      },
    };
  }

  /** A node received a dispatch (released by the region after it was journaled). */
  onEffect(effect: RegionEffect): void {
    if (effect.type === 'dispatch') this.onDispatch(effect);
  }

  onDispatch(effect: { readonly requestId: string; readonly nodeId: string; readonly modelId: string; readonly atMs: number }): void {
    const node = this.byId.get(effect.nodeId);
    if (node === undefined) return;
    node.active++;
    const model = modelCatalogue.find((m) => m.modelId === effect.modelId);
    const latencyMs = Math.max(MIN_RESULT_LATENCY_MS, Math.round((model?.latencyMs ?? 500) * this.prng.between(0.5, 1.8)));
    const lost = this.prng.chance(this.faults.lostResult);
    const failed = this.prng.chance(this.faults.failedResult);
    const at = effect.atMs + latencyMs;
    this.hooks.schedule(at, () => {
      node.active = Math.max(0, node.active - 1);
      // A silent node's result is lost with it.
      if (lost || at < node.silentUntilMs) return;
      this.hooks.submit({ type: 'result', requestId: effect.requestId, nodeId: node.nodeId, latencyMs, status: failed ? 'failed' : 'completed' });
    });
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A stable made-up box for a geozone we have no geography for. */
export function syntheticBox(geozone: string): [number, number, number, number] {
  let h = 0;
  for (const c of geozone) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const lat = 30 + (h % 15);
  const lng = -120 + ((h >>> 8) % 45);
  return [lat, lat + 3, lng, lng + 4];
}
