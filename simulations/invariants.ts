import type { JournalRecord } from '../runtime/journal.js';
import { HpcJobModel, type HpcViolationRule, type JobTally } from './hpc-invariants.js';
import { TrainingModel, type BlobLookup, type TrainingViolationRule } from './training-invariants.js';

/**
 * The simulation harness's invariant checker. It reads shard journals and rebuilds
 * its own minimal model of nodes and reservations, deliberately without importing
 * the machines, actors or the shard: a bug in the runtime's logic must not be able
 * to hide itself by also being in the checker. The only shared thing is the
 * record type. The vocabulary it understands (actor kinds, states, event types) is
 * written out below and is the whole contract.
 *
 * Cost: O(1) work per record; memory holds the nodes, the reservations still live
 * in each shard, deadlines inside one TTL window, and one counter per request id.
 * Checks that need "did time move on before X happened?" keep a short pending list
 * that is settled when the shard's time next advances (or at the end).
 */

export interface CheckerConfig {
  /** How long a reservation may be held before it must expire. */
  reservationTtlMs: number;
  /** How long a node may stay silent before it must go offline. */
  silenceTimeoutMs: number;
  /** Stored training weights by SHA-256: given, each aggregate is recomputed as FedAvg of its counted updates. */
  blobs?: BlobLookup | undefined;
}

export const DEFAULT_CHECKER_CONFIG: Readonly<CheckerConfig> = { reservationTtlMs: 30_000, silenceTimeoutMs: 30_000 };

export type ViolationRule =
  | 'node-over-capacity'
  | 'dispatch-to-unavailable-node'
  | 'terminal-outcomes-not-one'
  | 'expiry-not-exact'
  | 'expiry-missed'
  | 'timeout-not-exact'
  | 'timeout-missed'
  | 'reservation-open-after-timeout'
  | 'request-stuck-unrouted'
  | TrainingViolationRule
  | HpcViolationRule;

export interface Violation {
  rule: ViolationRule;
  shard: string;
  /**
   * The record the violation points at: the offending record, the record that
   * proved a deadline was missed, or (open-after-timeout, stuck) the record that
   * left the reservation in the bad state. -1 when no record is known.
   */
  offset: number;
  atMs: number;
  detail: string;
}

export interface InvariantReport {
  violations: number;
  byRule: Partial<Record<ViolationRule, number>>;
  /** The first violations found, at most MAX_REPORTED_VIOLATIONS. */
  first: Violation[];
  /** New requests (reservation spawns with no tried geozones). */
  requests: number;
  /** Requests still legitimately open at the end of the journals. */
  inFlight: number;
  /** Terminal outcomes by state, across all shards. */
  outcomes: Record<string, number>;
  /** The orchestrator's training jobs (when a shard holds its journal). */
  jobs?: JobTally;
}

export const MAX_REPORTED_VIOLATIONS = 20;

const NODE_KIND = 'node';
const RESERVATION_KIND = 'reservation';
const NODE_PREFIX = 'node/';
const RESERVATION_PREFIX = 'reservation/';
const SPAWN = '@spawn';

const TERMINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'released', 'rejected']);
const OPEN_STATES: ReadonlySet<string> = new Set(['reserved', 'dispatched']);
const UP_STATES: ReadonlySet<string> = new Set(['online', 'draining']);

/** Where something happened, for reporting. */
interface Loc {
  shard: string;
  offset: number;
  atMs: number;
}

interface NodeModel {
  nodeId: string;
  state: string;
  lastTelemetryAtMs: number;
  reservationsPerGpu: number;
  capacity: number;
  /** Reservations open (reserved/dispatched) on this node. */
  open: Set<ReservationModel>;
}

interface ReservationModel {
  requestId: string;
  state: string;
  nodeId: string | null;
  reservedAtMs: number;
  /** Incremented on every route.reserved, so a deadline entry can tell it is stale. */
  attempt: number;
  /** Incremented on every state change, so a stuck entry can tell it is stale. */
  seq: number;
  expiryReported: boolean;
  last: Loc;
}

interface ExpiryEntry {
  deadlineMs: number;
  res: ReservationModel;
  attempt: number;
}

interface LostEntry {
  res: ReservationModel;
  attempt: number;
  nodeId: string;
  cause: Loc;
}

interface StuckEntry {
  res: ReservationModel;
  seq: number;
  cause: Loc;
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function asNumber(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function asString(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function locOf(shard: string, record: JournalRecord): Loc {
  return { shard, offset: record.offset, atMs: record.atMs };
}

/** Cross-shard state: violation counts, per-request outcome counters, the report's totals. */
class Tally {
  violations = 0;
  readonly byRule: Partial<Record<ViolationRule, number>> = {};
  readonly first: Violation[] = [];
  requests = 0;
  readonly outcomes: Record<string, number> = {};
  /** requestId → terminal outcomes seen in any shard. Every request id seen is a key. */
  readonly outcomeCounts = new Map<string, number>();
  /** Requests open and not overdue at the end of some shard. */
  readonly inFlight = new Map<string, Loc>();
  /** Where a request's copy last stopped without an outcome (forwarded, left requested or overdue). */
  readonly unfinished = new Map<string, Loc>();

  report(rule: ViolationRule, loc: Loc, detail: string): void {
    this.violations += 1;
    this.byRule[rule] = (this.byRule[rule] ?? 0) + 1;
    if (this.first.length < MAX_REPORTED_VIOLATIONS) this.first.push({ rule, ...loc, detail });
  }

  seen(requestId: string): void {
    if (!this.outcomeCounts.has(requestId)) this.outcomeCounts.set(requestId, 0);
  }

  outcome(requestId: string, state: string, loc: Loc): void {
    const count = (this.outcomeCounts.get(requestId) ?? 0) + 1;
    this.outcomeCounts.set(requestId, count);
    this.outcomes[state] = (this.outcomes[state] ?? 0) + 1;
    // More than one is wrong whatever else happens: report it once, where it happened.
    if (count === 2) this.report('terminal-outcomes-not-one', loc, `request ${requestId} reached a second terminal outcome (${state})`);
  }

  /** The cross-shard rule, once every shard has ended. */
  settleOutcomes(): void {
    for (const [requestId, count] of this.outcomeCounts) {
      const flight = this.inFlight.get(requestId);
      if (flight !== undefined) {
        if (count === 1) this.report('terminal-outcomes-not-one', flight, `request ${requestId} is in flight but already has an outcome`);
      } else if (count === 0) {
        const loc = this.unfinished.get(requestId) ?? { shard: '', offset: -1, atMs: -1 };
        this.report('terminal-outcomes-not-one', loc, `request ${requestId} ended with no terminal outcome in any shard`);
      }
    }
  }
}

/** One shard's model, fed its records in offset order. */
class ShardModel {
  private readonly nodes = new Map<string, NodeModel>();
  private readonly reservations = new Map<string, ReservationModel>();
  /** Reservation deadlines in the order they were set: deadlines only grow, so a FIFO suffices. */
  private expiryQueue: ExpiryEntry[] = [];
  private expiryHead = 0;
  /** Deadlines passed before the current time; settled when time advances again or at the end. */
  private overdue: ExpiryEntry[] = [];
  private pendingLost: LostEntry[] = [];
  private pendingStuck: StuckEntry[] = [];
  private nowMs = Number.NEGATIVE_INFINITY;
  private lastRecord: Loc | null = null;
  private ended = false;
  private readonly training: TrainingModel;
  readonly hpc: HpcJobModel;
  private lastJobRecord: JournalRecord | undefined;

  constructor(
    private readonly shard: string,
    private readonly config: CheckerConfig,
    private readonly tally: Tally,
  ) {
    this.training = new TrainingModel((rule, record, detail) => this.tally.report(rule, locOf(this.shard, record), detail), config.blobs);
    this.hpc = new HpcJobModel((rule, record, detail) => this.tally.report(rule, locOf(this.shard, record), detail));
  }

  apply(record: JournalRecord): void {
    if (this.ended) throw new Error(`invariant checker: shard ${this.shard} was already ended`);
    const loc = locOf(this.shard, record);
    if (record.atMs > this.nowMs) this.advance(loc);
    this.lastRecord = loc;
    if (record.kind === NODE_KIND) this.applyNode(record, loc);
    else if (record.kind === RESERVATION_KIND) this.applyReservation(record, loc);
    else if (record.event.type.startsWith('training.')) this.training.apply(record);
    else if (HpcJobModel.reads(record)) {
      this.hpc.apply(record);
      this.lastJobRecord = record;
    }
    // Other '@shard' notes and other kinds only move time forward.
  }

  /** End-of-journal checks; records what is still in flight for the cross-shard rule. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.hpc.end(this.lastJobRecord);
    const last = this.lastRecord;
    if (last === null) return;
    this.settlePending(last);
    for (const node of this.nodes.values()) {
      if (UP_STATES.has(node.state) && node.lastTelemetryAtMs + this.config.silenceTimeoutMs < last.atMs) {
        this.timeoutMissed(node, last);
      }
    }
    for (const res of this.reservations.values()) {
      const open = OPEN_STATES.has(res.state);
      if (open && res.reservedAtMs + this.config.reservationTtlMs >= last.atMs) this.tally.inFlight.set(res.requestId, res.last);
      else this.tally.unfinished.set(res.requestId, res.last);
    }
  }

  // ---- time ---------------------------------------------------------------

  private advance(loc: Loc): void {
    this.settlePending(loc);
    const queue = this.expiryQueue;
    for (;;) {
      const entry = queue[this.expiryHead];
      if (entry === undefined || entry.deadlineMs >= loc.atMs) break;
      if (this.isOpenAttempt(entry.res, entry.attempt)) this.overdue.push(entry);
      this.expiryHead += 1;
    }
    if (this.expiryHead > 4096 && this.expiryHead * 2 > queue.length) {
      this.expiryQueue = queue.slice(this.expiryHead);
      this.expiryHead = 0;
    }
    this.nowMs = loc.atMs;
  }

  /** Settles what had to happen "at the same atMs" once a later record (or the end) shows it did not. */
  private settlePending(now: Loc): void {
    for (const entry of this.overdue) {
      if (this.isOpenAttempt(entry.res, entry.attempt)) this.expiryMissed(entry.res, now);
    }
    this.overdue = [];
    for (const entry of this.pendingLost) {
      const { res, nodeId } = entry;
      if (!this.isOpenAttempt(res, entry.attempt) || res.nodeId !== nodeId) continue;
      this.tally.report(
        'reservation-open-after-timeout',
        entry.cause,
        `reservation ${res.requestId} still ${res.state} on node ${nodeId} after it went offline (seen at offset ${now.offset})`,
      );
      // The node dropped it: stop counting it against the node's capacity.
      this.nodes.get(nodeId)?.open.delete(res);
    }
    this.pendingLost = [];
    for (const entry of this.pendingStuck) {
      if (entry.res.seq !== entry.seq || entry.res.state !== 'requested') continue;
      this.tally.report(
        'request-stuck-unrouted',
        entry.cause,
        `reservation ${entry.res.requestId} left requested at ${entry.cause.atMs} (still requested at offset ${now.offset})`,
      );
    }
    this.pendingStuck = [];
  }

  private isOpenAttempt(res: ReservationModel, attempt: number): boolean {
    return res.attempt === attempt && OPEN_STATES.has(res.state) && !res.expiryReported;
  }

  private expiryMissed(res: ReservationModel, loc: Loc): void {
    res.expiryReported = true;
    const deadline = res.reservedAtMs + this.config.reservationTtlMs;
    this.tally.report('expiry-missed', loc, `reservation ${res.requestId} still ${res.state} after its expiry at ${deadline}`);
  }

  private timeoutMissed(node: NodeModel, loc: Loc): void {
    const deadline = node.lastTelemetryAtMs + this.config.silenceTimeoutMs;
    this.tally.report('timeout-missed', loc, `node ${node.nodeId} still ${node.state} after its silence deadline ${deadline}`);
  }

  // ---- nodes --------------------------------------------------------------

  private applyNode(record: JournalRecord, loc: Loc): void {
    const nodeId = record.actorId.startsWith(NODE_PREFIX) ? record.actorId.slice(NODE_PREFIX.length) : record.actorId;
    const event = record.event;
    if (event.type === SPAWN) {
      this.spawnNode(nodeId, record);
      return;
    }
    const node = this.nodes.get(nodeId);
    if (node === undefined) return;
    if (event.type === 'telemetry') {
      if (UP_STATES.has(node.state) && node.lastTelemetryAtMs + this.config.silenceTimeoutMs < record.atMs) this.timeoutMissed(node, loc);
      node.lastTelemetryAtMs = record.atMs;
      const gpuCount = asNumber(asObject(event.report).gpuCount, node.capacity / node.reservationsPerGpu);
      node.capacity = gpuCount * node.reservationsPerGpu;
    } else if (event.type === 'timeout' && record.state === 'offline' && node.state !== 'offline') {
      this.nodeWentOffline(node, loc);
    }
    node.state = record.state;
  }

  private spawnNode(nodeId: string, record: JournalRecord): void {
    const input = asObject(record.event.input);
    const reservationsPerGpu = asNumber(input.reservationsPerGpu, 1);
    const capacity = asNumber(asObject(input.report).gpuCount, 0) * reservationsPerGpu;
    const existing = this.nodes.get(nodeId);
    if (existing !== undefined) {
      Object.assign(existing, { state: record.state, lastTelemetryAtMs: record.atMs, reservationsPerGpu, capacity });
      return;
    }
    this.nodes.set(nodeId, { nodeId, state: record.state, lastTelemetryAtMs: record.atMs, reservationsPerGpu, capacity, open: new Set() });
  }

  private nodeWentOffline(node: NodeModel, loc: Loc): void {
    const due = node.lastTelemetryAtMs + this.config.silenceTimeoutMs;
    if (loc.atMs !== due) {
      this.tally.report('timeout-not-exact', loc, `node ${node.nodeId} went offline at ${loc.atMs}, due at ${due}`);
    }
    // Every reservation it held must be moved off it before time moves on.
    for (const res of node.open) this.pendingLost.push({ res, attempt: res.attempt, nodeId: node.nodeId, cause: loc });
  }

  // ---- reservations -------------------------------------------------------

  private applyReservation(record: JournalRecord, loc: Loc): void {
    const requestId = record.actorId.startsWith(RESERVATION_PREFIX) ? record.actorId.slice(RESERVATION_PREFIX.length) : record.actorId;
    const event = record.event;
    if (event.type === SPAWN) {
      this.spawnReservation(requestId, record, loc);
      return;
    }
    const res = this.reservations.get(requestId);
    if (res === undefined) return;
    const prev = res.state;
    const next = record.state;
    // Anything but its own expiry touching it after the deadline shows the expiry was missed.
    if (event.type !== 'expire' && OPEN_STATES.has(prev) && !res.expiryReported && record.atMs > res.reservedAtMs + this.config.reservationTtlMs) {
      this.expiryMissed(res, loc);
    }
    // route.reserved reaches 'reserved', or 'dispatched' when it dispatches in the same event.
    if (event.type === 'route.reserved' && OPEN_STATES.has(next)) this.openOn(res, asString(event.nodeId), loc);
    else if (event.type === 'dispatch' && next === 'dispatched') this.requireOnline(res.nodeId ?? '', res.requestId, 'dispatched to', loc);
    else if (event.type === 'expire' && next === 'expired') this.checkExpiry(res, loc);
    if (next !== prev) this.transition(res, prev, next, loc);
    res.last = loc;
  }

  private spawnReservation(requestId: string, record: JournalRecord, loc: Loc): void {
    const tried = asObject(record.event.input).triedGeozones;
    if (Array.isArray(tried) && tried.length === 0) this.tally.requests += 1;
    const old = this.reservations.get(requestId);
    if (old !== undefined) this.closeOnNode(old);
    const res: ReservationModel = {
      requestId,
      state: record.state,
      nodeId: null,
      reservedAtMs: 0,
      attempt: 0,
      seq: 0,
      expiryReported: false,
      last: loc,
    };
    this.reservations.set(requestId, res);
    this.tally.seen(requestId);
    if (res.state === 'requested') this.pendingStuck.push({ res, seq: res.seq, cause: loc });
  }

  private openOn(res: ReservationModel, nodeId: string, loc: Loc): void {
    res.nodeId = nodeId;
    res.reservedAtMs = loc.atMs;
    res.attempt += 1;
    res.expiryReported = false;
    this.expiryQueue.push({ deadlineMs: loc.atMs + this.config.reservationTtlMs, res, attempt: res.attempt });
    const node = this.requireOnline(nodeId, res.requestId, 'reserved on', loc);
    if (node === undefined) return;
    node.open.add(res);
    if (node.open.size > node.capacity) {
      this.tally.report('node-over-capacity', loc, `node ${nodeId} holds ${node.open.size} reservations, capacity ${node.capacity}`);
    }
  }

  /** Reports unless the node exists here and is online; returns the node if it exists. */
  private requireOnline(nodeId: string, requestId: string, verb: string, loc: Loc): NodeModel | undefined {
    const node = this.nodes.get(nodeId);
    if (node?.state !== 'online') {
      const state = node === undefined ? 'unknown in this shard' : node.state;
      this.tally.report('dispatch-to-unavailable-node', loc, `reservation ${requestId} ${verb} node ${nodeId}, which is ${state}`);
    }
    return node;
  }

  private checkExpiry(res: ReservationModel, loc: Loc): void {
    const due = res.reservedAtMs + this.config.reservationTtlMs;
    if (loc.atMs !== due) this.tally.report('expiry-not-exact', loc, `reservation ${res.requestId} expired at ${loc.atMs}, due at ${due}`);
  }

  private transition(res: ReservationModel, prev: string, next: string, loc: Loc): void {
    res.state = next;
    res.seq += 1;
    if (OPEN_STATES.has(prev) && !OPEN_STATES.has(next)) this.closeOnNode(res);
    if (next === 'requested') {
      this.pendingStuck.push({ res, seq: res.seq, cause: loc });
    } else if (TERMINAL_STATES.has(next)) {
      this.tally.outcome(res.requestId, next, loc);
      this.reservations.delete(res.requestId);
    } else if (next === 'forwarded' || next === 'forwarding') {
      // Handed to another shard (forwarding: awaiting its acknowledgement): the outcome belongs there.
      this.tally.unfinished.set(res.requestId, loc);
      this.reservations.delete(res.requestId);
    }
  }

  private closeOnNode(res: ReservationModel): void {
    if (res.nodeId !== null) this.nodes.get(res.nodeId)?.open.delete(res);
    res.nodeId = null;
  }
}

export class InvariantChecker {
  private readonly config: CheckerConfig;
  private readonly tally = new Tally();
  private readonly shards = new Map<string, ShardModel>();
  private result: InvariantReport | null = null;

  constructor(config: Partial<CheckerConfig> = {}) {
    this.config = { ...DEFAULT_CHECKER_CONFIG, ...config };
  }

  /**
   * Feed one shard's records in offset order; shards may be fed one after the other.
   * Calling it again for the same shard continues that shard's journal.
   */
  checkShard(shardId: string, records: Iterable<JournalRecord>): void {
    if (this.result !== null) throw new Error('invariant checker: checkShard() after finish()');
    let shard = this.shards.get(shardId);
    if (shard === undefined) {
      shard = new ShardModel(shardId, this.config, this.tally);
      this.shards.set(shardId, shard);
    }
    for (const record of records) shard.apply(record);
  }

  /** Cross-shard checks (terminal outcomes) and end-of-journal checks; returns the report. */
  finish(): InvariantReport {
    if (this.result !== null) return this.result;
    for (const shard of this.shards.values()) shard.end();
    this.tally.settleOutcomes();
    const { violations, byRule, first, requests, inFlight, outcomes } = this.tally;
    const tallies = [...this.shards.values()].map((shard) => shard.hpc.tally()).filter((t) => t.classified.hpc + t.classified.federated > 0);
    this.result = { violations, byRule: { ...byRule }, first: [...first], requests, inFlight: inFlight.size, outcomes: { ...outcomes }, ...(tallies[0] === undefined ? {} : { jobs: tallies[0] }) };
    return this.result;
  }
}
