import { z } from 'zod';
import { NODE_KIND } from '../../actors/node-actor.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { RESERVATION_KIND } from '../../actors/reservation-actor.js';
import { energySources } from '../../machines/node.js';
import { priorities, type Priority } from '../../machines/reservation.js';
import { SPAWN_EVENT, type JournalRecord } from '../../runtime/journal.js';
import { decodeGeohash } from '../../actors/geohash.js';
import {
  consoleTimestamp,
  hpcStatuses,
  type ConsoleMessage,
  type HpcMessage,
  type HpcStatus,
  type InferenceMessage,
  type SystemMessage,
} from './console-messages.js';

/** Kind name of HPC training-job actors (machines/hpc-job.ts); the live region does not run them yet. */
export const HPC_JOB_KIND = 'hpc-job';

/**
 * A fixed reference point per well-known geozone, used as an inference's
 * `source` when the request carries no geohash of its own: each is a city
 * inside the box the simulated fleet draws that geozone's nodes from
 * (simulations/fleet.ts), near the grid operator's control centre.
 */
export const geozoneReferenceGeohash: Readonly<Record<string, string>> = {
  CAISO: '9qcu49', // Folsom, CA
  ERCOT: '9v6tzm', // Taylor, TX
  PJM: 'dr4k5z', // Audubon, PA
  MISO: 'dp4g2n', // Carmel, IN
  NYISO: 'dred9f', // Rensselaer, NY
  'ISO-NE': 'drs256', // Holyoke, MA
  ISONE: 'drs256', // the simulated fleet's spelling of ISO-NE
  SPP: '9y69uc', // Oklahoma City, OK
};

/**
 * Default hard cap on cached open reservations: the seed's 10,000 requests/s
 * held for the 30 s reservation TTL is 300,000 open at once; a third more is
 * headroom. Past the cap the oldest entry is dropped (the lookup can still
 * answer for it while the reservation is alive).
 */
export const DEFAULT_MAX_OPEN_RESERVATIONS = 400_000;
/** Default hard cap on cached open HPC jobs (they are few and long-lived). */
export const DEFAULT_MAX_OPEN_HPC_JOBS = 10_000;

/** The current snapshot of an actor, as the region's shards hold it (`shard.snapshotOf`). */
export type ActorLookup = (geozone: string, actorId: string) => { readonly context: unknown; readonly value: unknown } | undefined;

export interface ConsoleFeedOptions {
  /** Answers for actors spawned before a restart, whose @spawn record this feed never saw. */
  readonly lookup?: ActorLookup;
  readonly maxOpenReservations?: number;
  readonly maxOpenHpcJobs?: number;
}

export interface ConsoleFeedStats {
  readonly openReservations: number;
  readonly openHpcJobs: number;
  /** Cache entries dropped at the hard cap while their actor was still open. */
  readonly evicted: number;
  /** Records that would have made a message but whose actor neither the cache nor the lookup knew. */
  readonly unmatched: number;
}

interface ReservationFacts {
  readonly requestId: string;
  readonly modelId: string;
  readonly priority: Priority;
  readonly source: [number, number];
  /** The node holding it (from route.reserved); null while it holds none. */
  nodeId: string | null;
  /** The console has been told it was dispatched (so a cancel must end it there too). */
  dispatched: boolean;
}

interface HpcFacts {
  readonly jobId: string;
  readonly sourceNodeId: string;
  readonly datasetSizeGb: number;
  bytesTransferred: number;
  progress: number;
}

// Journal events and looked-up contexts are read through loose schemas: the
// fields this feed needs, any others ignored, so a new field in a machine never
// breaks the console.
const reservationFactsSchema = z.object({
  requestId: z.string().min(1),
  modelId: z.string().min(1),
  priority: z.enum(priorities),
  requesterGeozone: z.string(),
  requesterGeohash: z.string().optional(),
  nodeId: z.string().nullable().optional(),
});
const hpcFactsSchema = z.object({
  jobId: z.string().min(1),
  datasetSizeGb: z.number().nonnegative(),
  sourceNodeId: z.string().optional(),
  bytesTransferred: z.number().int().nonnegative().optional(),
  progress: z.number().min(0).max(1).optional(),
});
const nodeReportSchema = z.object({
  geohash: z.string().min(1),
  energySource: z.enum(energySources),
  batteryLevel: z.number(),
  gpuUtilization: z.number(),
  modelsLoaded: z.array(z.string()),
});

/** Reservation states after which the actor is gone; the cache entry goes with it. */
const reservationEnded = new Set(['completed', 'failed', 'expired', 'released', 'rejected', 'forwarded']);
const hpcEnded = new Set(['completed', 'failed', 'cancelled']);
const hpcStatusSet: ReadonlySet<string> = new Set(hpcStatuses);

/**
 * Turns one shard's durable journal records into ArcNet Console messages.
 *
 * Record → message:
 * - node `@spawn` (its first report) and `telemetry` → `telemetry`.
 * - reservation `route.reserved` that reached dispatched (reserved and
 *   dispatched in one event), or `dispatch` (journals written before that
 *   merge) → inference `dispatched`, targetNodeId from the `route.reserved`.
 * - reservation `result` that ended it → inference `completed` or `failed`,
 *   with the node's `latencyMs`.
 * - reservation `expire` (state expired), `route.rejected` (rejected, or failed
 *   after a node loss), `node.lost` with no attempts left (failed), and
 *   `cancel` of a request the console saw dispatched (released) → inference
 *   `failed`: the console has no other terminal status for them.
 * - `@spawn`, a `route.reserved` that stays reserved, `route.forwarded`, `forward.accepted` and a
 *   `node.lost` that re-routes only feed the cache. `processing` is never sent:
 *   a node does not tell the region when it starts work.
 * - hpc-job records in pending, transferring, queued, running or completed →
 *   `hpc` with the job's progress and bytes; one that ends failed or cancelled
 *   → `system` (error / warn), since the seed's hpc statuses have neither.
 *
 * `fromEffects` turns the region's `system` effects into `system` messages.
 *
 * Memory: one small entry per open reservation and HPC job, made at @spawn
 * (or from the lookup) and deleted when the actor ends, with a hard cap each.
 */
export class ConsoleFeed {
  private readonly lookup: ActorLookup | undefined;
  private readonly reservations: BoundedMap<ReservationFacts>;
  private readonly hpcJobs: BoundedMap<HpcFacts>;
  private unmatched = 0;

  constructor(options: ConsoleFeedOptions = {}) {
    this.lookup = options.lookup;
    this.reservations = new BoundedMap(options.maxOpenReservations ?? DEFAULT_MAX_OPEN_RESERVATIONS);
    this.hpcJobs = new BoundedMap(options.maxOpenHpcJobs ?? DEFAULT_MAX_OPEN_HPC_JOBS);
  }

  stats(): ConsoleFeedStats {
    return {
      openReservations: this.reservations.size,
      openHpcJobs: this.hpcJobs.size,
      evicted: this.reservations.evicted + this.hpcJobs.evicted,
      unmatched: this.unmatched,
    };
  }

  /** Records of one shard (geozone), in journal order, already durable. */
  fromRecords(geozone: string, records: readonly JournalRecord[]): ConsoleMessage[] {
    const messages: ConsoleMessage[] = [];
    for (const record of records) {
      let message: ConsoleMessage | undefined;
      if (record.kind === NODE_KIND) message = this.fromNodeRecord(geozone, record);
      else if (record.kind === RESERVATION_KIND) message = this.fromReservationRecord(geozone, record);
      else if (record.kind === HPC_JOB_KIND) message = this.fromHpcRecord(geozone, record);
      if (message !== undefined) messages.push(message);
    }
    return messages;
  }

  /** The region's released effects of one shard: `system` effects become `system` messages. */
  fromEffects(geozone: string, effects: readonly RegionEffect[]): ConsoleMessage[] {
    const messages: ConsoleMessage[] = [];
    for (const effect of effects) {
      if (effect.type !== 'system') continue;
      messages.push({
        type: 'system',
        geozone,
        severity: effect.severity,
        message: effect.message,
        details: { ...effect.details },
        timestamp: consoleTimestamp(effect.atMs),
      });
    }
    return messages;
  }

  // ------------------------------------------------------------------ nodes

  private fromNodeRecord(geozone: string, record: JournalRecord): ConsoleMessage | undefined {
    const event = record.event;
    const raw = event.type === SPAWN_EVENT ? (event['input'] as { report?: unknown } | undefined)?.report : event.type === 'telemetry' ? event['report'] : undefined;
    if (raw === undefined) return undefined;
    const report = nodeReportSchema.safeParse(raw);
    if (!report.success) return undefined;
    const r = report.data;
    return {
      type: 'telemetry',
      geozone,
      node: {
        id: afterSlash(record.actorId),
        geohash: r.geohash,
        energySource: r.energySource,
        batteryLevel: r.batteryLevel,
        gpuUtilization: r.gpuUtilization,
        modelsLoaded: r.modelsLoaded,
        timestamp: consoleTimestamp(record.atMs),
      },
    };
  }

  // ------------------------------------------------------------------ reservations

  private fromReservationRecord(geozone: string, record: JournalRecord): InferenceMessage | undefined {
    const key = `${geozone} ${record.actorId}`;
    const event = record.event;
    const ended = reservationEnded.has(record.state);
    if (event.type === SPAWN_EVENT) {
      const facts = reservationFacts(event['input'], false);
      if (facts !== undefined && !ended) this.reservations.set(key, facts);
      return undefined;
    }
    const facts = this.reservations.get(key) ?? this.lookUpReservation(geozone, record.actorId, key, ended);
    if (ended) this.reservations.delete(key);
    const message = (status: 'dispatched' | 'completed' | 'failed', targetNodeId: string | null, latencyMs?: number): InferenceMessage | undefined => {
      if (facts === undefined) {
        this.unmatched++;
        return undefined;
      }
      return {
        type: 'inference',
        geozone,
        requestId: facts.requestId,
        source: facts.source,
        targetNodeId: targetNodeId ?? '',
        modelId: facts.modelId,
        priority: facts.priority,
        status,
        ...(latencyMs === undefined ? {} : { latencyMs }),
        timestamp: consoleTimestamp(record.atMs),
      };
    };
    switch (event.type) {
      case 'route.reserved':
        if (facts !== undefined) facts.nodeId = event['nodeId'] as string;
        // Reserved and dispatched in one event (journals before it have a separate dispatch).
        if (record.state !== 'dispatched') return undefined;
        if (facts !== undefined) facts.dispatched = true;
        return message('dispatched', facts?.nodeId ?? null);
      case 'dispatch':
        if (record.state !== 'dispatched') return undefined;
        if (facts !== undefined) facts.dispatched = true;
        return message('dispatched', facts?.nodeId ?? null);
      case 'result':
        if (record.state !== 'completed' && record.state !== 'failed') return undefined;
        return message(record.state, event['nodeId'] as string, event['latencyMs'] as number);
      case 'node.lost':
        if (record.state === 'failed') return message('failed', event['nodeId'] as string);
        // Back to routing: the next route.reserved names the new node.
        if (facts !== undefined) facts.nodeId = null;
        return undefined;
      case 'cancel':
        // A request the console never saw dispatched needs no terminal message.
        return record.state === 'released' && facts?.dispatched === true ? message('failed', facts.nodeId) : undefined;
      case 'expire':
      case 'route.rejected':
        return ended ? message('failed', facts?.nodeId ?? null) : undefined;
      default:
        return undefined;
    }
  }

  /** Facts of a reservation spawned before this feed started; cached only while it stays open. */
  private lookUpReservation(geozone: string, actorId: string, key: string, ended: boolean): ReservationFacts | undefined {
    const found = this.lookup?.(geozone, actorId);
    if (found === undefined) return undefined;
    // Dispatched before the restart: the console was told then.
    const facts = reservationFacts(found.context, found.value === 'dispatched');
    if (facts !== undefined && !ended) this.reservations.set(key, facts);
    return facts;
  }

  // ------------------------------------------------------------------ HPC jobs

  private fromHpcRecord(geozone: string, record: JournalRecord): HpcMessage | SystemMessage | undefined {
    const key = `${geozone} ${record.actorId}`;
    const event = record.event;
    let facts: HpcFacts | undefined;
    if (event.type === SPAWN_EVENT) {
      facts = hpcFacts(event['input']);
      if (facts !== undefined) this.hpcJobs.set(key, facts);
    } else {
      facts = this.hpcJobs.get(key) ?? this.lookUpHpcJob(geozone, record.actorId, key);
    }
    if (hpcEnded.has(record.state)) this.hpcJobs.delete(key);
    if (facts === undefined) {
      this.unmatched++;
      return undefined;
    }
    if (event.type === 'transfer.progress') {
      facts.bytesTransferred = event['bytesTransferred'] as number;
      facts.progress = event['progress'] as number;
    } else if (event.type === 'transfer.completed') {
      facts.progress = 1;
    }
    const timestamp = consoleTimestamp(record.atMs);
    if (hpcStatusSet.has(record.state)) {
      return {
        type: 'hpc',
        geozone,
        jobId: facts.jobId,
        sourceNodeId: facts.sourceNodeId,
        datasetSizeGb: facts.datasetSizeGb,
        status: record.state as HpcStatus,
        progress: facts.progress,
        bytesTransferred: facts.bytesTransferred,
        timestamp,
      };
    }
    if (record.state === 'failed' || record.state === 'cancelled') {
      const reason = typeof event['reason'] === 'string' ? event['reason'] : event.type;
      return {
        type: 'system',
        geozone,
        severity: record.state === 'failed' ? 'error' : 'warn',
        message: `HPC job ${facts.jobId} ${record.state}: ${reason}`,
        details: { jobId: facts.jobId, status: record.state, event: event.type, progress: facts.progress, bytesTransferred: facts.bytesTransferred },
        timestamp,
      };
    }
    return undefined;
  }

  private lookUpHpcJob(geozone: string, actorId: string, key: string): HpcFacts | undefined {
    const found = this.lookup?.(geozone, actorId);
    if (found === undefined) return undefined;
    const facts = hpcFacts(found.context);
    if (facts !== undefined) this.hpcJobs.set(key, facts);
    return facts;
  }
}

/** Where a request came from as [lng, lat]: its own geohash, else its geozone's reference point. */
export function requestSource(requesterGeozone: string, requesterGeohash?: string): [number, number] {
  if (requesterGeohash !== undefined) {
    try {
      return decodeGeohash(requesterGeohash.toLowerCase());
    } catch {
      // A malformed geohash is no reason to drop the event: fall through to the geozone.
    }
  }
  const reference = geozoneReferenceGeohash[requesterGeozone];
  if (reference !== undefined) return decodeGeohash(reference);
  // The console's `source` may not be null; [0, 0] (off the coast of Africa) marks
  // "location unknown" for a geozone with no reference point here.
  return [0, 0];
}

function reservationFacts(raw: unknown, dispatched: boolean): ReservationFacts | undefined {
  const parsed = reservationFactsSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  return {
    requestId: r.requestId,
    modelId: r.modelId,
    priority: r.priority,
    source: requestSource(r.requesterGeozone, r.requesterGeohash),
    nodeId: r.nodeId ?? null,
    dispatched,
  };
}

function hpcFacts(raw: unknown): HpcFacts | undefined {
  const parsed = hpcFactsSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const h = parsed.data;
  return {
    jobId: h.jobId,
    // The HPC job machine does not record which node holds the dataset yet.
    sourceNodeId: h.sourceNodeId ?? '',
    datasetSizeGb: h.datasetSizeGb,
    bytesTransferred: h.bytesTransferred ?? 0,
    progress: h.progress ?? 0,
  };
}

function afterSlash(actorId: string): string {
  const slash = actorId.indexOf('/');
  return slash < 0 ? actorId : actorId.slice(slash + 1);
}

/** A Map with a hard size cap: at the cap, the oldest entry makes room (Map keeps insertion order). */
class BoundedMap<V> {
  private readonly entries = new Map<string, V>();
  evicted = 0;

  constructor(private readonly cap: number) {
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`cache cap must be a positive integer, got ${cap}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: V): void {
    if (!this.entries.has(key) && this.entries.size >= this.cap) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) {
        this.entries.delete(oldest.value);
        this.evicted++;
      }
    }
    this.entries.set(key, value);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}
