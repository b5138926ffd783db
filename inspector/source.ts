import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AnyMachineSnapshot } from 'xstate';
import { NODE_KIND } from '../actors/node-actor.js';
import { replayBehaviours } from '../actors/central/central-journal.js';
import { createRegion, type Region } from '../actors/region.js';
import type { NodeContext } from '../machines/node.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { stateString } from '../runtime/actor-kind.js';
import { ManualClock, realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { SHARD_ACTOR_ID, type Journal, type JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { countActors, type KindStateCounts } from './counts.js';
import { GeozoneStats } from './live-counts.js';
import { recordAt, type PointState, type TimePoint } from './point-in-time.js';
import { ReplayRunner, type ReplayWorkerData } from './replay-runner.js';

/**
 * What the inspector shows, from a running region (live) or from a data folder
 * (journal: the region recovered read-only, nothing running). Every answer is
 * limited to the geozones in the caller's scope.
 */
export type Scope = (geozone: string) => boolean;

export const MAX_PAGE_ROWS = 500;
export const MAX_HISTORY_ENTRIES = 500;
/** Journal records one history query reads at most (it says where to continue). */
export const HISTORY_WINDOW_RECORDS = 50_000;

export interface ActorQuery {
  /** Substring of the actor id. */
  readonly q?: string | undefined;
  readonly kind?: string | undefined;
  readonly state?: string | undefined;
  readonly geozone?: string | undefined;
  readonly offset: number;
  readonly limit: number;
}

export interface ActorRow {
  readonly id: string;
  readonly kind: string;
  readonly state: string;
  readonly geozone: string;
}

export interface ActorPage {
  /** Matching actors in all (the list's length). */
  readonly total: number;
  readonly offset: number;
  readonly rows: readonly ActorRow[];
}

export interface ActorDetail extends ActorRow {
  readonly status: string;
  readonly context: unknown;
}

export interface HistoryEntry {
  readonly offset: number;
  readonly atMs: number;
  readonly event: string;
  /** The state the actor reached. */
  readonly state: string;
  /** What the event carried, without its type. */
  readonly details: Readonly<Record<string, unknown>>;
  /** Routing decisions (route.*): how many nodes were candidates and why it went as it did. */
  readonly candidates?: number;
  readonly reason?: string;
}

export interface ActorHistory {
  readonly id: string;
  readonly geozone: string;
  /** Oldest first. */
  readonly entries: readonly HistoryEntry[];
  /** Pass as `before` for older entries; null when the journal's start was reached. */
  readonly earlier: number | null;
}

export interface GeozoneCounts {
  readonly geozone: string;
  /** The shard's logical time. */
  readonly atMs: number;
  readonly lastOffset: number;
  readonly counts: KindStateCounts;
  /** Journal-derived counters since the inspector started watching (rates are their deltas). */
  readonly totals: { readonly routed: number; readonly rejected: number; readonly expired: number };
}

export interface JournalRange {
  readonly geozone: string;
  readonly firstAtMs: number | null;
  readonly lastAtMs: number | null;
  /** -1 for an empty journal. */
  readonly lastOffset: number;
}

/** One node on the map: [geohash, status, energy source]. */
export type NodeDot = readonly [string, string, string];

export interface InspectorSource {
  readonly mode: 'live' | 'journal';
  /** Whether time travel can answer (it needs the region's LMDB store). */
  readonly timeTravelAvailable: boolean;
  geozones(scope: Scope): string[];
  counts(scope: Scope): GeozoneCounts[];
  actors(query: ActorQuery, scope: Scope): ActorPage;
  actor(actorId: string, scope: Scope): ActorDetail | undefined;
  history(actorId: string, query: { before?: number | undefined; limit: number }, scope: Scope): Promise<ActorHistory | undefined>;
  nodeMap(scope: Scope): { geozone: string; nodes: NodeDot[] }[];
  journalRange(scope: Scope): JournalRange[];
  /** The region as of a point (replayed in a worker); shards out of scope are left out, and so is the whole-region hash. */
  timeTravel(point: TimePoint, scope: Scope): Promise<ScopedPointState>;
  close(): Promise<void>;
}

export interface ScopedPointState extends Omit<PointState, 'stateHash'> {
  /** The whole region's hash, only for a caller that sees every geozone. */
  readonly stateHash: string | null;
}

export interface LiveSourceOptions {
  /** The store's data key when it is encrypted (the replay worker opens the folder itself). */
  readonly dataKey?: Buffer | undefined;
  /** Per-geozone counters already folded for this region (shared with its LiveActorCounts). */
  readonly stats?: GeozoneStats | undefined;
}

/**
 * The inspector over a running region. `timeTravel` says where a replay worker
 * opens the journals (an LMDB folder), or why it cannot (time travel then answers 501).
 */
export function liveInspectorSource(
  region: Region,
  store: JournalStore & SnapshotStore,
  timeTravel: ReplayWorkerData | { readonly unavailable: string },
  options: Pick<LiveSourceOptions, 'stats'> = {},
): InspectorSource {
  return new RegionSource('live', region, store, timeTravel, () => Promise.resolve(), options.stats);
}

/** The inspector over a data folder: recovers the region read-only (nothing runs, nothing is written). */
export function journalInspectorSource(dir: string, options: LiveSourceOptions = {}): InspectorSource {
  if (!LmdbStore.exists(dir)) throw new ArcError(ErrorCodes.NO_JOURNAL, `no journal at '${dir}': pass the folder a sim or region run wrote (--journal DIR)`);
  const store = new LmdbStore(dir, { readOnly: true, ...(options.dataKey === undefined ? {} : { encryptionKey: options.dataKey }) });
  try {
    const geozones = store.shardIds();
    if (geozones.length === 0) throw new ArcError(ErrorCodes.NO_JOURNAL, `'${dir}' holds no journal`);
    const region = createRegion({ geozones, store, behaviour: replayBehaviours(store, geozones), clock: new ManualClock(0), scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
    region.supervisor.recover(true, { skipEphemeral: true });
    const timeTravel: ReplayWorkerData | { unavailable: string } =
      store.encrypted && options.dataKey === undefined
        ? { unavailable: 'time travel needs the data key of this encrypted store' }
        : { path: store.path, ...(options.dataKey === undefined ? {} : { dataKeyHex: options.dataKey.toString('hex') }) };
    return new RegionSource('journal', region, store, timeTravel, () => store.close());
  } catch (error) {
    void store.close();
    throw error;
  }
}

class RegionSource implements InspectorSource {
  readonly timeTravelAvailable: boolean;
  private readonly stats: GeozoneStats;
  private readonly runner: ReplayRunner | undefined;
  private readonly unavailable: ArcError | undefined;
  /** The sorted actor rows of the last list query: reused while the journal is unchanged, and for up to a second on a live region. */
  private rowsCache: { key: string; rows: ActorRow[] } | undefined;

  constructor(
    readonly mode: 'live' | 'journal',
    private readonly region: Region,
    private readonly store: JournalStore & SnapshotStore,
    timeTravel: ReplayWorkerData | { readonly unavailable: string },
    private readonly closeStore: () => Promise<void>,
    stats?: GeozoneStats,
  ) {
    this.stats = stats ?? new GeozoneStats(region);
    if ('unavailable' in timeTravel) {
      this.unavailable = new ArcError(/data key/.test(timeTravel.unavailable) ? ErrorCodes.DATA_KEY : ErrorCodes.NO_JOURNAL, timeTravel.unavailable);
    } else {
      this.runner = new ReplayRunner(timeTravel);
    }
    this.timeTravelAvailable = this.runner !== undefined;
  }

  private shards(scope: Scope, geozone?: string) {
    return this.region.supervisor.all().filter((shard) => scope(shard.shardId) && (geozone === undefined || shard.shardId === geozone));
  }

  geozones(scope: Scope): string[] {
    return this.shards(scope).map((shard) => shard.shardId);
  }

  counts(scope: Scope): GeozoneCounts[] {
    return this.shards(scope).map((shard) => {
      const stats = this.stats.of(shard.shardId);
      return {
        geozone: shard.shardId,
        atMs: shard.nowMs,
        lastOffset: shard.lastDurableOffset,
        counts: countActors(shard.actors()),
        totals: { routed: stats.routed, rejected: stats.rejected, expired: stats.expired },
      };
    });
  }

  actors(query: ActorQuery, scope: Scope): ActorPage {
    const shards = this.shards(scope, query.geozone);
    // A live region moves on every append: its list is rebuilt at most once a second, not per scroll.
    // The shards in the key are the caller's scope: rows of one scope are never served to another.
    const version = shards.map((s) => (this.mode === 'live' ? s.shardId : `${s.shardId}@${s.lastOffset}`)).join(',') + (this.mode === 'live' ? `@t${Math.floor(Date.now() / 1000)}` : '');
    const key = JSON.stringify([version, query.q ?? '', query.kind ?? '', query.state ?? '']);
    let rows = this.rowsCache?.key === key ? this.rowsCache.rows : undefined;
    if (rows === undefined) {
      rows = [];
      const needle = query.q?.toLowerCase();
      for (const shard of shards) {
        for (const [id, kind, snapshot] of shard.actors()) {
          if (query.kind !== undefined && kind.name !== query.kind) continue;
          if (needle !== undefined && !id.toLowerCase().includes(needle)) continue;
          const state = stateString(snapshot.value);
          if (query.state !== undefined && state !== query.state) continue;
          rows.push({ id, kind: kind.name, state, geozone: shard.shardId });
        }
      }
      // Plain code-unit order (stable across runs and locales), then geozone for an id held by two shards.
      rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.geozone < b.geozone ? -1 : a.geozone > b.geozone ? 1 : 0));
      this.rowsCache = { key, rows };
    }
    const limit = Math.min(Math.max(1, query.limit), MAX_PAGE_ROWS);
    return { total: rows.length, offset: query.offset, rows: rows.slice(query.offset, query.offset + limit) };
  }

  private find(actorId: string, scope: Scope): { geozone: string; kind: string; snapshot: AnyMachineSnapshot } | undefined {
    for (const shard of this.shards(scope)) {
      const snapshot = shard.snapshotOf(actorId);
      if (snapshot === undefined) continue;
      for (const [id, kind] of shard.actors()) if (id === actorId) return { geozone: shard.shardId, kind: kind.name, snapshot };
    }
    return undefined;
  }

  actor(actorId: string, scope: Scope): ActorDetail | undefined {
    const found = this.find(actorId, scope);
    if (found === undefined) return undefined;
    const { geozone, kind, snapshot } = found;
    return { id: actorId, kind, geozone, state: stateString(snapshot.value), status: snapshot.status, context: snapshot.context };
  }

  async history(actorId: string, query: { before?: number | undefined; limit: number }, scope: Scope): Promise<ActorHistory | undefined> {
    if (actorId === SHARD_ACTOR_ID) return undefined;
    const found = this.find(actorId, scope);
    if (found === undefined) return undefined;
    const shard = this.region.supervisor.shard(found.geozone);
    const journal = this.store.journal(found.geozone);
    const end = Math.min(query.before ?? Number.MAX_SAFE_INTEGER, shard.lastDurableOffset + 1);
    const start = Math.max(firstReadable(journal), end - HISTORY_WINDOW_RECORDS);
    const limit = Math.min(Math.max(1, query.limit), MAX_HISTORY_ENTRIES);
    const entries: HistoryEntry[] = [];
    let scanned = 0;
    for (const record of journal.read(start)) {
      if (record.offset >= end) break;
      // A history query on a live region yields now and then, so the shards never wait long for it.
      if (++scanned % 10_000 === 0 && this.mode === 'live') await nextTurn();
      if (record.actorId !== actorId) continue;
      const { type, ...details } = record.event;
      const routing = type.startsWith('route.') ? { candidates: Number(details['candidates']), reason: String(details['reason']) } : {};
      entries.push({ offset: record.offset, atMs: record.atMs, event: type, state: record.state, details, ...routing });
    }
    const kept = entries.slice(-limit);
    const first = kept[0];
    const earlier = kept.length < entries.length && first !== undefined ? first.offset : start > 0 ? start : null;
    return { id: actorId, geozone: found.geozone, entries: kept, earlier };
  }

  nodeMap(scope: Scope): { geozone: string; nodes: NodeDot[] }[] {
    return this.shards(scope).map((shard) => {
      const nodes: NodeDot[] = [];
      for (const [, kind, snapshot] of shard.actors()) {
        if (kind.name !== NODE_KIND) continue;
        const context = snapshot.context as NodeContext;
        nodes.push([context.geohash, stateString(snapshot.value), context.energySource]);
      }
      return { geozone: shard.shardId, nodes };
    });
  }

  journalRange(scope: Scope): JournalRange[] {
    return this.shards(scope).map((shard) => {
      const lastOffset = shard.lastDurableOffset;
      const journal = this.store.journal(shard.shardId);
      const first = lastOffset < 0 ? undefined : recordAt(journal, firstReadable(journal));
      return { geozone: shard.shardId, firstAtMs: first?.atMs ?? null, lastAtMs: lastOffset < 0 ? null : shard.nowMs, lastOffset };
    });
  }

  async timeTravel(point: TimePoint, scope: Scope): Promise<ScopedPointState> {
    if (this.runner === undefined) throw this.unavailable as ArcError;
    // Out of scope answers like unknown: the key learns nothing about other geozones.
    if ('geozone' in point && (!scope(point.geozone) || !this.region.supervisor.shardIds.includes(point.geozone))) {
      throw new ArcError(ErrorCodes.NOT_FOUND, `no journal for geozone '${point.geozone}'`);
    }
    const ends = Object.fromEntries(this.region.supervisor.all().map((shard) => [shard.shardId, shard.lastDurableOffset + 1]));
    const state = await this.runner.stateAt(point, ends);
    const all = state.shards.every((s) => scope(s.geozone));
    const offsets = Object.fromEntries(Object.entries(state.point.offsets).filter(([geozone]) => scope(geozone)));
    return {
      ...state,
      point: { ...state.point, offsets },
      stateHash: all ? state.stateHash : null,
      shards: state.shards.filter((s) => scope(s.geozone)),
      fromSnapshot: Object.fromEntries(Object.entries(state.fromSnapshot).filter(([geozone]) => scope(geozone))),
      // How much was replayed says how busy other geozones were: only a key that sees them all gets it.
      replayedRecords: all ? state.replayedRecords : 0,
    };
  }

  async close(): Promise<void> {
    await this.runner?.close();
    await this.closeStore();
  }
}

/** The first offset a journal can still serve (a Kafka journal keeps memory from its latest snapshot on). */
function firstReadable(journal: Journal): number {
  const bounded = journal as Journal & { firstReadableOffset?: () => number };
  return typeof bounded.firstReadableOffset === 'function' ? bounded.firstReadableOffset() : 0;
}
