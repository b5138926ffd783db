import type { AnyMachineSnapshot } from 'xstate';
import { ActorHost } from '../runtime/actor-host.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { Journal, JournalRecord } from '../runtime/journal.js';
import { SPAWN_EVENT } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { NODE_KIND, nodeActorId, nodeKind } from './node-actor.js';

/**
 * A node's history answered from its shard's journal: the node's document as of
 * a journal offset or a logical time, and the node's changes over a range. The
 * journal holds every event applied to the node, so its state at any point is
 * the nearest snapshot at or before that point plus the node's own events after
 * it, replayed through the same machine (nodes change only through their own
 * events). Each replayed step is checked against the state the journal recorded.
 *
 * Scans are bounded (`maxScan` records per query) and cooperative (`pause` is
 * awaited every `pauseEvery` records) so that a history query on a live region
 * never holds its shards up for long.
 */
export interface HistoryScanOptions {
  /** Most journal records one query may read; beyond it the answer says where to continue. */
  readonly maxScan: number;
  /** Called every `pauseEvery` records; the live region yields to its event loop there. */
  readonly pause: () => Promise<void>;
  readonly pauseEvery: number;
}

export const defaultHistoryScan: HistoryScanOptions = { maxScan: 2_000_000, pause: () => Promise.resolve(), pauseEvery: 10_000 };

export interface NodeAsOf {
  /** The last journal offset at or before the target (the point the document reflects). */
  readonly offset: number;
  readonly atMs: number;
  /** The node's machine snapshot then; undefined when the node did not exist yet. */
  readonly snapshot: AnyMachineSnapshot | undefined;
}

export interface NodeChange {
  readonly offset: number;
  readonly atMs: number;
  readonly event: string;
  /** The node's status after the event. */
  readonly status: string;
  /** What the event carried (telemetry report, reservation id, ...), without its type. */
  readonly details: Readonly<Record<string, unknown>>;
}

export interface NodeChanges {
  readonly changes: readonly NodeChange[];
  /** Where to continue (the next offset not yet looked at), or null when the range is done. */
  readonly next: number | null;
  readonly scanned: number;
}

/** The last offset whose record's logical time is <= atMs, or -1 when the journal starts later (binary search). */
export function offsetAtTime(journal: Journal, atMs: number): number {
  let lo = 0;
  let hi = journal.nextOffset() - 1;
  let found = -1;
  // Logical time never goes back within a shard's journal, so the records are sorted by atMs.
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const record = first(journal.read(mid));
    if (record === undefined) break;
    if (record.atMs <= atMs) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** The node as of a journal offset (inclusive). */
export async function nodeAsOf(
  journal: Journal,
  snapshots: SnapshotStore,
  shardId: string,
  nodeId: string,
  targetOffset: number,
  scan: HistoryScanOptions = defaultHistoryScan,
): Promise<NodeAsOf> {
  const last = Math.min(targetOffset, journal.nextOffset() - 1);
  if (last < 0) return { offset: -1, atMs: 0, snapshot: undefined };
  const actorId = nodeActorId(nodeId);
  const host = new ActorHost([nodeKind]);
  const base = snapshots.latest(shardId, last);
  const persisted = base?.actors.find((a) => a.id === actorId);
  if (persisted !== undefined) host.restore(persisted);
  let atMs = base?.atMs ?? 0;
  let scanned = 0;
  for (const record of journal.read((base?.offset ?? -1) + 1)) {
    if (record.offset > last) break;
    atMs = record.atMs;
    if (++scanned > scan.maxScan) {
      throw new ArcError(ErrorCodes.VALIDATION, `rebuilding node ${nodeId} at offset ${last} needs more than ${scan.maxScan} journal records; ask for a later point`);
    }
    if (scanned % scan.pauseEvery === 0) await scan.pause();
    if (record.actorId === actorId) apply(host, record);
  }
  return { offset: last, atMs, snapshot: host.snapshot(actorId) };
}

/** The node's journaled events with offsets in [fromOffset, toOffset], at most `limit` of them. */
export async function nodeChanges(
  journal: Journal,
  nodeId: string,
  fromOffset: number,
  toOffset: number,
  limit: number,
  scan: HistoryScanOptions = defaultHistoryScan,
): Promise<NodeChanges> {
  const actorId = nodeActorId(nodeId);
  const last = Math.min(toOffset, journal.nextOffset() - 1);
  const changes: NodeChange[] = [];
  let scanned = 0;
  for (const record of journal.read(Math.max(0, fromOffset))) {
    if (record.offset > last) break;
    if (scanned >= scan.maxScan || changes.length >= limit) return { changes, next: record.offset, scanned };
    scanned++;
    if (scanned % scan.pauseEvery === 0) await scan.pause();
    if (record.actorId !== actorId) continue;
    const { type, ...details } = record.event;
    changes.push({ offset: record.offset, atMs: record.atMs, event: type, status: record.state, details });
  }
  return { changes, next: null, scanned };
}

function apply(host: ActorHost, record: JournalRecord): void {
  let snapshot: AnyMachineSnapshot;
  if (record.event.type === SPAWN_EVENT) {
    // A node removed and spawned again starts over from its new input.
    host.remove(record.actorId);
    snapshot = host.spawn(NODE_KIND, record.actorId, record.event['input']);
  } else {
    if (!host.has(record.actorId)) {
      throw new ArcError(ErrorCodes.REPLAY_DIVERGED, `journal offset ${record.offset}: event for ${record.actorId} before it exists`);
    }
    snapshot = host.send(record.actorId, record.event);
  }
  if (String(snapshot.value) !== record.state) {
    throw new ArcError(ErrorCodes.REPLAY_DIVERGED, `journal offset ${record.offset}: ${record.actorId} replayed to '${String(snapshot.value)}', journal says '${record.state}'`);
  }
}

function first<T>(items: Iterable<T>): T | undefined {
  for (const item of items) return item;
  return undefined;
}
