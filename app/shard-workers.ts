import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { internalInput } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { CanonicalHasher } from '../runtime/canonical.js';
import { ArcError, ErrorCodes, type ErrorCode } from '../runtime/errors.js';
import type { FromWorker, ShardWorkerData, TimedInput, ToWorker } from './shard-worker-protocol.js';

/**
 * A region's geozones spread over worker threads: one event loop per worker,
 * a geozone never split. The main thread keeps the edge (validation, HTTP,
 * console, agents) and this router; each worker runs whole shards against the
 * same LMDB data folder (app/shard-worker.ts).
 *
 * Why the journal and the state hash do not depend on the worker count: a
 * shard's records depend only on the inputs it takes and their logical times,
 * and every shard still takes its inputs in arrival order from one queue. The
 * region's state hash is already SHA-256 over the per-shard hashes in shard
 * order (Supervisor.stateHash); `stateHash()` here combines the workers' shard
 * hashes the same way, so 1, 2 or N workers print the same hash.
 *
 * Routing happens here, by payload, without the shards' state: the requester's
 * or target geozone for requests, the reporting geozone for telemetry, and for
 * inputs about an existing reservation, node or training job (results, cancels,
 * drains, updates) the geozone that was last seen holding it, learned from the
 * effects and inputs that pass through. Forwards between geozones of different
 * workers come back here as effects and go on to the target's worker as inputs.
 */
export interface ShardWorkersOptions {
  readonly dataDir: string;
  /** Every geozone of the region, all owned by this process. */
  readonly geozones: readonly string[];
  /** Worker threads (at most one per geozone; more than the geozones are not started). */
  readonly workers: number;
  /** Skip fsync on commit (scratch runs only). */
  readonly noSync?: boolean;
  /** Let each worker advance its shards to its clock this often (live deadlines); none by default. */
  readonly liveTimerEveryMs?: number;
  /** Effects that leave the region, per geozone, in that geozone's order, after their records are durable. */
  readonly onEffects: (effects: readonly RegionEffect[], geozone: string) => void;
  /** A shard failed or an input was refused in a worker. */
  readonly onFailure?: (error: ArcError, geozone: string) => void;
}

export interface ShardWorkers {
  /** Which worker runs each geozone. */
  readonly assignment: ReadonlyMap<string, number>;
  readonly recovered: readonly { geozone: string; replayed: number; fromSnapshotOffset: number }[];
  /** Routes an input to its geozone's worker; `atMs` fixes its logical time (the worker's clock otherwise). */
  submit(input: RegionInput, atMs?: number): void;
  /** Fires every deadline up to `atMs` in every shard. */
  advanceTo(atMs: number): void;
  /** Every shard durable and its effects released, forwards between workers included. */
  whenIdle(): Promise<void>;
  stateHashes(): Promise<Record<string, string>>;
  /** The region's state hash, the same as a single-threaded Supervisor.stateHash() of the same shards. */
  stateHash(): Promise<string>;
  /** Each worker's event-loop utilisation (0..1) since `since` (its previous reading when given): where the time goes. */
  loopUtilization(since?: readonly EventLoopUtilization[]): EventLoopUtilization[];
  /** Each worker thread's own CPU ms so far (undefined where the OS does not say, see thread-cpu.ts). */
  threadCpuMs(): Promise<(number | undefined)[]>;
  /** Drains, snapshots and closes every worker; resolves with each geozone's last durable offset. */
  stop(): Promise<Record<string, number>>;
}

/** Inputs carried by one message to a worker: a burst larger than this is split (bounds one structured clone). */
const MAX_INPUTS_PER_MESSAGE = 4_096;
/** Entries kept per routing table (reservation, node, job → geozone); the oldest go first. */
const MAX_ROUTES = 1_000_000;

class BoundedRoutes {
  private readonly map = new Map<string, string>();
  set(key: string, geozone: string): void {
    if (this.map.get(key) === geozone) return;
    this.map.delete(key);
    this.map.set(key, geozone);
    if (this.map.size > MAX_ROUTES) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

interface WorkerSlot {
  readonly worker: Worker;
  readonly geozones: string[];
  /** Settles when the thread has exited (watched from the start: it may exit before anyone waits). */
  readonly exited: Promise<void>;
  pending: TimedInput[];
}

export async function startShardWorkers(options: ShardWorkersOptions): Promise<ShardWorkers> {
  const geozones = [...new Set(options.geozones)].sort();
  if (geozones.length === 0) throw new ArcError(ErrorCodes.USAGE, 'a region needs at least one geozone');
  if (!Number.isInteger(options.workers) || options.workers < 1) throw new ArcError(ErrorCodes.USAGE, `--workers must be a whole number of at least 1 (got ${options.workers})`);
  const count = Math.min(options.workers, geozones.length);
  const assignment = new Map<string, number>(geozones.map((geozone, i) => [geozone, i % count]));
  const first = geozones[0] as string;
  const reservations = new BoundedRoutes();
  const nodes = new BoundedRoutes();
  const jobs = new BoundedRoutes();
  const replies = new Map<number, (value: unknown) => void>();
  let nextId = 0;
  let enqueued = 0;
  let flushScheduled = false;
  let stopping = false;

  const slots: WorkerSlot[] = [];
  const readies: Promise<FromWorker & { type: 'ready' }>[] = [];
  for (let index = 0; index < count; index++) {
    const owned = geozones.filter((g) => assignment.get(g) === index);
    const workerData: ShardWorkerData = { dataDir: options.dataDir, geozones: owned, federation: geozones, noSync: options.noSync === true, liveTimerEveryMs: options.liveTimerEveryMs };
    const worker = new Worker(new URL('./shard-worker.js', import.meta.url), { workerData });
    const exited = new Promise<void>((resolve) =>
      worker.once('exit', (code) => {
        // Its geozones stop taking input: the process must stop (as after a failed journal), then recover them.
        if (!stopping) for (const geozone of owned) options.onFailure?.(new ArcError(ErrorCodes.INVARIANT, `the worker running ${owned.join(', ')} exited (code ${code}): stop the process and start it again to recover them`), geozone);
        resolve();
      }),
    );
    const slot: WorkerSlot = { worker, geozones: owned, exited, pending: [] };
    slots.push(slot);
    readies.push(
      new Promise((resolve, reject) => {
        worker.on('error', (error) => {
          reject(error);
          for (const geozone of owned) options.onFailure?.(new ArcError(ErrorCodes.INVARIANT, `the worker running ${owned.join(', ')} failed: ${error.message}`), geozone);
        });
        worker.on('message', (message: FromWorker) => {
          if (message.type === 'ready') resolve(message);
          else onMessage(message);
        });
      }),
    );
  }
  const recovered = (await Promise.all(readies)).flatMap((ready) => ready.recovered);

  function onMessage(message: Exclude<FromWorker, { type: 'ready' }>): void {
    switch (message.type) {
      case 'effects':
        return onEffects(message.effects, message.geozone);
      case 'reply': {
        const resolve = replies.get(message.id);
        replies.delete(message.id);
        resolve?.(message.value);
        return;
      }
      case 'failed':
        options.onFailure?.(new ArcError((message.code as ErrorCode | undefined) ?? ErrorCodes.INVARIANT, message.message), message.geozone);
        return;
    }
  }

  function onEffects(effects: readonly RegionEffect[], geozone: string): void {
    let external: RegionEffect[] | undefined;
    for (const effect of effects) {
      if (effect.type === 'dispatch') reservations.set(effect.requestId, geozone);
      const internal = internalInput(effect);
      if (internal !== undefined && assignment.has(internal.shardId)) {
        enqueue(internal.shardId, internal.input, undefined);
        continue;
      }
      (external ??= []).push(effect);
    }
    if (external !== undefined) options.onEffects(external, geozone);
  }

  /** The geozone an input belongs to: the single-threaded Region.shardOf, with the holders it learned from traffic. */
  function shardOf(input: RegionInput): string {
    const known = (geozone: string | undefined): string => (geozone !== undefined && assignment.has(geozone) ? geozone : first);
    switch (input.type) {
      case 'telemetry':
        nodes.set(input.nodeId, input.report.geozone);
        return input.report.geozone;
      case 'inference':
        return input.targetGeozone ?? known(input.request.requesterGeozone);
      case 'result': {
        const holder = reservations.get(input.requestId) ?? nodes.get(input.nodeId);
        reservations.delete(input.requestId);
        return known(holder);
      }
      case 'cancel':
        return known(reservations.get(input.requestId));
      case 'drain':
      case 'resume':
        return known(nodes.get(input.nodeId));
      case 'forward.ack':
        return input.geozone;
      case 'training.job':
        jobs.set(input.job.jobId, input.job.geozone);
        return input.job.geozone;
      case 'training.update':
        return known(jobs.get(input.update.jobId));
      case 'training.aggregated':
      case 'training.checkpointed':
      case 'training.failed-step':
        return input.geozone;
      default:
        return first;
    }
  }

  function enqueue(geozone: string, input: RegionInput, atMs: number | undefined): void {
    const index = assignment.get(geozone);
    if (index === undefined) throw new ArcError(ErrorCodes.UNKNOWN_SHARD, `this region has no geozone '${geozone}' (geozones: ${geozones.join(', ')})`);
    (slots[index] as WorkerSlot).pending.push([input, atMs]);
    enqueued++;
    if (!flushScheduled) {
      flushScheduled = true;
      // One message per worker per burst of submits: the crossing is paid per batch.
      queueMicrotask(flush);
    }
  }

  function flush(): void {
    flushScheduled = false;
    for (const slot of slots) {
      for (let from = 0; from < slot.pending.length; from += MAX_INPUTS_PER_MESSAGE) {
        send(slot, { type: 'inputs', inputs: slot.pending.slice(from, from + MAX_INPUTS_PER_MESSAGE) });
      }
      slot.pending = [];
    }
  }

  function send(slot: WorkerSlot, message: ToWorker): void {
    slot.worker.postMessage(message);
  }

  function ask(slot: WorkerSlot, type: 'idle' | 'hashes' | 'cpu' | 'stop'): Promise<unknown> {
    const id = nextId++;
    return new Promise((resolve) => {
      replies.set(id, resolve);
      send(slot, { type, id });
    });
  }

  async function whenIdle(): Promise<void> {
    for (;;) {
      flush();
      const before = enqueued;
      await Promise.all(slots.map((slot) => ask(slot, 'idle')));
      // A forward that crossed to another worker meanwhile means another round.
      if (enqueued === before) return;
    }
  }

  async function stateHashes(): Promise<Record<string, string>> {
    const parts = (await Promise.all(slots.map((slot) => ask(slot, 'hashes')))) as Record<string, string>[];
    return Object.assign({}, ...parts) as Record<string, string>;
  }

  return {
    assignment,
    recovered,
    submit: (input, atMs) => enqueue(shardOf(input), input, atMs),
    advanceTo: (atMs) => {
      flush();
      for (const slot of slots) send(slot, { type: 'advance', atMs });
    },
    whenIdle,
    stateHashes,
    threadCpuMs: async () => ((await Promise.all(slots.map((slot) => ask(slot, 'cpu')))) as (number | null)[]).map((ms) => ms ?? undefined),
    loopUtilization: (since) => slots.map((slot, i) => slot.worker.performance.eventLoopUtilization(since?.[i])),
    stateHash: async () => {
      const hashes = await stateHashes();
      const hasher = new CanonicalHasher();
      for (const geozone of geozones) {
        const hash = hashes[geozone];
        if (hash !== undefined) hasher.add({ shard: geozone, hash });
      }
      return hasher.hex();
    },
    stop: async () => {
      await whenIdle();
      stopping = true;
      const parts = (await Promise.all(slots.map((slot) => ask(slot, 'stop')))) as Record<string, number>[];
      await Promise.all(slots.map((slot) => slot.exited));
      return Object.assign({}, ...parts) as Record<string, number>;
    },
  };
}
