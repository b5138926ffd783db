import type { Logger } from 'pino';
import type { Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import type { ReplayWorkerData } from '../inspector/replay-runner.js';
import type { WallClock } from '../runtime/clock.js';
import type { JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import type { Role } from './role.js';

export type RegionStore = JournalStore & SnapshotStore;

/** How a geozone came to be owned here: its recovery, for the final line and the logs. */
export interface Takeover {
  readonly geozone: string;
  readonly ms: number;
  readonly replayed: number;
  readonly fromSnapshotOffset: number;
}

/** What an ownership gets from the process that assembles it. */
export interface OwnershipHost {
  readonly region: Region;
  readonly clock: WallClock;
  readonly log: Logger;
  /** What the shards run: its input topics and decoders, and on Kafka its topics and partitioning. */
  readonly role: Role;
  /** The store with the process's observers on its appends (metrics, traces, the console feed). */
  instrument<S extends RegionStore>(store: S): S;
  /** An input arrived at this ownership's edge (traces open here). */
  ingress(input: RegionInput, transport: 'bus' | 'kafka'): void;
  /** A shard failed for good: the process must stop. */
  fatal(error: Error, geozone: string): void;
  /** Something the operator should see (status line, logs): a retry, a lost broker. */
  note(message: string, details: Readonly<Record<string, unknown>>): void;
  /** The federated path's input messages (FederatedTask v1, TrainingUpdate v1), raw; resolves once durable. */
  training?(kind: 'task' | 'update', raw: string): Promise<void>;
}

/**
 * Which geozones this process runs and where their journals are: the embedded
 * default (LMDB in a data folder, every geozone named at start, inputs on the
 * in-process bus) or Kafka (journals in Kafka, geozones assigned by a consumer
 * group, inputs and effects on the seed's topics). Everything else in a region
 * process (the HTTP API, console, inspector, metrics, agents) is the same above it.
 */
export interface Ownership {
  readonly mode: 'lmdb' | 'kafka';
  /** Recovers what is owned now (LMDB) or joins the group (Kafka; geozones then arrive as assigned). */
  start(): Promise<void>;
  /** Every geozone owned here has recovered and the edge is up. */
  ready(): boolean;
  /** Geozones owned now, each with whether it has recovered. */
  owned(): { geozone: string; ready: boolean }[];
  /** Journals and snapshots of the owned geozones (node history, the inspector). */
  readonly stores: RegionStore;
  /** Where a time-travel worker opens the journals, or why it cannot. */
  timeTravel(): ReplayWorkerData | { readonly unavailable: string };
  /** Released effects that leave the process (dispatches, summaries, system events, remote forwards). */
  send(effects: readonly RegionEffect[], geozone: string): void;
  /** An input as the seed's wire message on its input topic, as a node agent or client would send it. */
  publish(input: RegionInput): void;
  /** Input messages waiting to be processed. */
  backlog(): number;
  /** Recoveries and takeovers so far. */
  takeovers(): readonly Takeover[];
  /** The edge's counters (accepted, dead-lettered, produced, ...). */
  counters(): Readonly<Record<string, number>>;
  /** Stops taking input; everything processed becomes durable (with input offsets) and is snapshotted. */
  drain(): Promise<void>;
  /** Closes stores and connections (after drain). */
  close(): Promise<void>;
}
