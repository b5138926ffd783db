import type { RegionInput } from '../actors/region-io.js';
import type { Priority } from '../machines/reservation.js';
import type { Prng } from '../runtime/random.js';
import type { FleetHooks } from './fleet.js';
import { modelCatalogue, regionBoxes, syntheticBox } from './fleet.js';
import { encodeGeohash } from '../actors/geohash.js';

/**
 * A seeded inference workload: Poisson arrivals at `ratePerSec` (simulated time),
 * models by their traffic share, a priority mix, requesters spread over the
 * geozones, and a few requests cancelled by their client.
 */
export interface WorkloadOptions {
  readonly ratePerSec: number;
  readonly geozones: readonly string[];
  /** Chance a request is cancelled shortly after it was sent. */
  readonly cancelRate: number;
  /** Prefix of generated request ids (default 'req-'). */
  readonly idPrefix?: string;
}

const priorityMix: [Priority, number][] = [
  ['critical', 0.1],
  ['normal', 0.7],
  ['background', 0.2],
];
const contextWindows = [2048, 4096, 8192, 32768, 128000];

export class SimWorkload {
  private readonly prng: Prng;
  private readonly options: WorkloadOptions;
  private readonly hooks: FleetHooks;
  private readonly geozones: string[];
  private sequence = 0;
  private running = true;

  constructor(prng: Prng, options: WorkloadOptions, hooks: FleetHooks) {
    this.prng = prng;
    this.options = options;
    this.hooks = hooks;
    this.geozones = [...options.geozones].sort();
  }

  get sent(): number {
    return this.sequence;
  }

  start(atMs: number): void {
    if (this.options.ratePerSec > 0) this.scheduleNext(atMs);
  }

  stop(): void {
    this.running = false;
  }

  private scheduleNext(fromMs: number): void {
    const gapMs = Math.max(1, Math.round(this.prng.exponential(1000 / this.options.ratePerSec)));
    const at = fromMs + gapMs;
    this.hooks.schedule(at, () => this.arrive(at));
  }

  private arrive(atMs: number): void {
    if (!this.running) return;
    this.scheduleNext(atMs);
    const requestId = `${this.options.idPrefix ?? 'req-'}${String(++this.sequence).padStart(8, '0')}`;
    const requesterGeozone = this.prng.pick(this.geozones);
    const box = regionBoxes[requesterGeozone] ?? syntheticBox(requesterGeozone);
    const input: RegionInput = {
      type: 'inference',
      request: {
        requestId,
        modelId: this.pickModel(),
        contextWindow: this.prng.pick(contextWindows),
        priority: this.pickPriority(),
        requesterGeozone,
        // Requesters sit somewhere in their geozone (the console draws requests from there).
        requesterGeohash: encodeGeohash(this.prng.between(box[0], box[1]), this.prng.between(box[2], box[3]), 5),
      },
      triedGeozones: [],
    };
    this.hooks.submit(input);
    if (this.prng.chance(this.options.cancelRate)) {
      const cancelAt = atMs + Math.round(this.prng.between(50, 5_000));
      this.hooks.schedule(cancelAt, () => this.hooks.submit({ type: 'cancel', requestId }));
    }
  }

  private pickModel(): string {
    let roll = this.prng.next();
    for (const model of modelCatalogue) {
      roll -= model.traffic;
      if (roll < 0) return model.modelId;
    }
    return modelCatalogue[0].modelId;
  }

  private pickPriority(): Priority {
    let roll = this.prng.next();
    for (const [priority, share] of priorityMix) {
      roll -= share;
      if (roll < 0) return priority;
    }
    return 'normal';
  }
}
