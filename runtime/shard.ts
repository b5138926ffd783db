import type { AnyMachineSnapshot } from 'xstate';
import { ActorHost, persistHeld, type HeldSnapshot } from './actor-host.js';
import { stateString, type ActorKind } from './actor-kind.js';
import { CanonicalHasher } from './canonical.js';
import type { Scheduler } from './clock.js';
import { ArcError, ErrorCodes, invariant, type ErrorCode } from './errors.js';
import { SHARD_ACTOR_ID, SPAWN_EVENT, type Journal, type JournalEvent, type JournalRecord } from './journal.js';
import { PendingLives } from './pending-lives.js';
import type { ShardSnapshot, SnapshotStore } from './snapshot-store.js';
import { mapInSlices, Slicer, sortInSlices } from './sliced-work.js';
import { TimerWheel } from './timers.js';

/** The order persistAll gives (Array.sort's default: UTF-16 code units), so both captures agree. */
const byActorId = (a: HeldSnapshot, b: HeldSnapshot): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * What a behaviour may do while deciding one input. Every state change goes
 * through `spawn`/`send`/`note`, which apply it to the actor and journal it in the
 * same step; `emit` queues an effect that leaves only after those records are durable.
 */
export interface ShardContext<E> {
  readonly shardId: string;
  readonly nowMs: number;
  snapshot(actorId: string): AnyMachineSnapshot | undefined;
  spawn(kind: string, actorId: string, input: unknown): AnyMachineSnapshot;
  /** Applies an event; journals it only if it changed the actor. Returns the snapshot after it. */
  send(actorId: string, event: JournalEvent): AnyMachineSnapshot;
  /** A shard-level record (belongs to no actor), applied through the behaviour's applyNote. */
  note(event: JournalEvent): void;
  emit(effect: E): void;
}

/** The domain logic a shard runs. runtime/ knows nothing of what the inputs mean. */
export interface ShardBehaviour<I, E> {
  readonly kinds: readonly ActorKind[];
  /** Decides one input: reads actors, sends them events, emits effects. */
  handle(input: I, ctx: ShardContext<E>): void;
  /** An actor's deadline came due; the behaviour sends it the event that means so. */
  onDeadline(actorId: string, kind: string, atMs: number, ctx: ShardContext<E>): void;
  /** Logical-time period of onTick (e.g. regional summaries); none when undefined. */
  readonly tickEveryMs?: number;
  onTick?(ctx: ShardContext<E>): void;
  /**
   * Called after every applied record, live, in replay and on restore (snapshot
   * undefined when the actor was removed), so indexes derived from actors stay
   * exact however the state was reached. Fast recovery (skipEphemeral) calls it
   * once per actor alive at the end, with its final snapshot, after the whole
   * tail (ends still come in journal order, possibly for actors it was never
   * told of): so what it derives must depend on each actor's latest snapshot and
   * the order of ends only, never on intermediate states or the order of changes.
   */
  onActorChanged(actorId: string, kind: string, snapshot: AnyMachineSnapshot | undefined, atMs: number): void;
  /** After recovery: effects owed from before the restart (e.g. unacknowledged hand-offs) may be emitted again. */
  onRecovered?(ctx: ShardContext<E>): void;
  /** Applies a shard-level record (live and in replay). */
  applyNote(record: JournalRecord): void;
  /**
   * A step begins: an input, a deadline or a tick is about to be decided. Until
   * endStep the step may still be undone, so state the behaviour keeps outside
   * actors, and cannot derive again from them, must be changed in a way it can drop.
   */
  beginStep?(): void;
  /**
   * The step ends. `kept` false: it was undone. The runtime has already put every
   * actor the step touched back as it was, telling onActorChanged (snapshot
   * undefined for one the step spawned, which is not an end), and dropped the
   * step's records and effects; the behaviour drops its own changes since beginStep.
   */
  endStep?(kept: boolean): void;
  /** Behaviour state outside actors, for snapshots and the state hash (JSON-safe, canonical). */
  saveState(): unknown;
  /**
   * Optional, for periodic snapshots: takes what saveState() would return now,
   * cheaply (flat copies, no per-entry objects), and returns a function that
   * builds exactly that value later, a slice at a time, while input goes on.
   * For behaviours whose state is large (a region remembers up to 1,000,000
   * ended request ids: saveState's copy held the loop for ~0.3 s).
   */
  captureState?(): (slicer: Slicer) => Promise<unknown>;
  loadState(state: unknown): void;
}

const finalStatesCache = new WeakMap<ActorKind, ReadonlySet<string>>();

/**
 * Records of actors spawned in a recovered tail held back until their lives end
 * (PendingLives): per life, and in all. Reservations have a handful of records;
 * the bound in all is the requests in flight when the journal ends, about 50 MB
 * of decoded records at most.
 */
const MAX_PENDING_RECORDS_PER_LIFE = 64;
const MAX_PENDING_RECORDS = 100_000;

/** Names of a kind's top-level final states (reaching one ends the actor). */
function topLevelFinalStates(kind: ActorKind): ReadonlySet<string> {
  let set = finalStatesCache.get(kind);
  if (set === undefined) {
    const states = kind.machine.root.states as Record<string, { type: string }>;
    set = new Set(Object.keys(states).filter((name) => states[name]?.type === 'final'));
    finalStatesCache.set(kind, set);
  }
  return set;
}

/**
 * Observes every kept record, in order, with the snapshot it produced (stats,
 * metrics, checkers). A step's records reach observers together once the step is
 * kept, never those of a refused one; so an observer reads the state a record
 * speaks of from the records, not from the live actors, which may have moved on
 * within the same step. In fast recovery (skipEphemeral) a record whose actor
 * was not run at that point comes with no snapshot.
 */
export type RecordObserver = (record: JournalRecord, snapshot: AnyMachineSnapshot | undefined) => void;

export interface ShardLimits {
  /** Records per journal append; a full batch is written at once instead of waiting for the turn to end. */
  readonly maxBatchRecords: number;
  /** Records not yet durable plus effects not yet released; beyond it, input is refused (ARC_ERR_OVERLOADED). */
  readonly maxInFlight: number;
  /** A snapshot is taken after at most this many records since the last one. */
  readonly snapshotEveryRecords: number;
  /**
   * ...and sooner in a small shard: after max(snapshotMinRecords, snapshotRecordsPerActor x actors)
   * records when that is fewer. A snapshot costs about its actors, a recovery about the records after
   * it: ten records per actor keeps snapshots to a small share of the work while the tail a restart
   * replays stays near a second's worth (a 10,000-node region: every 100,000 records).
   */
  readonly snapshotMinRecords: number;
  readonly snapshotRecordsPerActor: number;
}

export const defaultShardLimits: ShardLimits = {
  maxBatchRecords: 8192,
  maxInFlight: 250_000,
  snapshotEveryRecords: 1_000_000,
  snapshotMinRecords: 100_000,
  snapshotRecordsPerActor: 10,
};

export interface ShardOptions<I, E> {
  readonly shardId: string;
  readonly behaviour: ShardBehaviour<I, E>;
  readonly journal: Journal;
  readonly snapshots?: SnapshotStore | undefined;
  readonly scheduler: Scheduler;
  readonly limits?: Partial<ShardLimits>;
  /** Receives effects in order, only once the records that caused them are durable. */
  readonly onEffects: (effects: readonly E[], shardId: string) => void;
  /** Called once if the shard fails (e.g. a journal write error); it accepts nothing more after. */
  readonly onFailure?: (error: Error, shardId: string) => void;
}

/** What an actor was before the current step first touched it, so the step can be undone. */
interface Touched {
  readonly actorId: string;
  readonly kind: string;
  /** Undefined: the step spawned it. */
  readonly before: AnyMachineSnapshot | undefined;
  readonly deadlineMs: number | undefined;
}

/** Where the shard stood when a step began: undoing the step truncates back to here. */
interface StepMark {
  readonly pendingLength: number;
  readonly outboxLength: number;
  readonly nextOffset: number;
  readonly recordsSinceSnapshot: number;
}

interface Queued<E> {
  /** The effect may leave once the journal is durable up to this offset. */
  readonly afterOffset: number;
  readonly effect: E;
}

/**
 * One geozone's single-threaded, deterministic event loop: takes one input at a
 * time, lets the behaviour decide, journals the resulting events and only then
 * releases the effects (write-ahead). Journal writes are grouped: everything
 * decided in one I/O turn goes to the journal in one append (group commit), so
 * durability costs one flush per turn, not one per input.
 */
export class Shard<I, E> {
  readonly shardId: string;
  private readonly behaviour: ShardBehaviour<I, E>;
  private readonly journal: Journal;
  private readonly snapshots: SnapshotStore | undefined;
  private readonly scheduler: Scheduler;
  private readonly limits: ShardLimits;
  private readonly onEffects: ShardOptions<I, E>['onEffects'];
  private readonly onFailure: ShardOptions<I, E>['onFailure'];
  private readonly host: ActorHost;
  private readonly timers = new TimerWheel();
  private readonly observers: RecordObserver[] = [];

  private timeMs = 0;
  private nextTickAtMs: number | undefined;
  private nextOffset = 0;
  private durableOffset = -1;
  private pending: JournalRecord[] = [];
  private outbox: Queued<E>[] = [];
  private outboxHead = 0;
  private flushScheduled = false;
  private appending = false;
  private writeChain: Promise<void> = Promise.resolve();
  private snapshotFailures = 0;
  private recordsSinceSnapshot = 0;
  private snapshotInProgress = false;
  private failure: Error | undefined;
  private readonly ctx: ShardContext<E>;
  /**
   * The step being decided (an input, a deadline, a tick) is all or nothing: the
   * actors it touches are logged here, and observers hear of its records only
   * once it is kept, so a behaviour that throws halfway leaves no trace.
   */
  private inStep = false;
  private readonly touched: Touched[] = [];
  /** The snapshot each record of the step produced (its records are the tail of `pending`). */
  private readonly stepSnapshots: (AnyMachineSnapshot | undefined)[] = [];

  constructor(options: ShardOptions<I, E>) {
    this.shardId = options.shardId;
    this.behaviour = options.behaviour;
    this.journal = options.journal;
    this.snapshots = options.snapshots;
    this.scheduler = options.scheduler;
    this.limits = { ...defaultShardLimits, ...options.limits };
    this.onEffects = options.onEffects;
    this.onFailure = options.onFailure;
    this.host = new ActorHost(options.behaviour.kinds);
    this.ctx = this.makeContext();
  }

  get nowMs(): number {
    return this.timeMs;
  }

  get actorCount(): number {
    return this.host.size;
  }

  /** Offset of the last record appended in memory (durable or not); -1 when empty. */
  get lastOffset(): number {
    return this.nextOffset - 1;
  }

  get lastDurableOffset(): number {
    return this.durableOffset;
  }

  get inFlight(): number {
    return this.pending.length + (this.outbox.length - this.outboxHead);
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  observe(observer: RecordObserver): void {
    this.observers.push(observer);
  }

  snapshotOf(actorId: string): AnyMachineSnapshot | undefined {
    return this.host.snapshot(actorId);
  }

  actors(): IterableIterator<[string, ActorKind, AnyMachineSnapshot]> {
    return this.host.entries();
  }

  /** The earliest logical time at which something is due (a deadline or a tick). */
  nextDueMs(): number | undefined {
    const deadline = this.timers.peek()?.atMs;
    const tick = this.nextTickAtMs;
    if (deadline === undefined) return tick;
    if (tick === undefined) return deadline;
    return Math.min(deadline, tick);
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Rebuilds state: the latest snapshot (unless `useSnapshot` is false) and then
   * every journal record after it, checking each record's recorded state.
   *
   * With `skipEphemeral` (what a restart does), recovery takes two shortcuts that
   * leave the same state:
   * - actors born and ended within the replayed tail (most reservations) are not
   *   re-run through their machine: the journal already says how they ended, and
   *   the state after recovery does not contain them. Their records still advance
   *   offsets and time and reach observers, and their end reaches the behaviour.
   *   Only the per-record state check is skipped for them.
   * - the behaviour and the timer wheel hear of each actor that is alive after
   *   recovery once, with its final snapshot, instead of after every record
   *   (ends still reach the behaviour in journal order). Observers get no
   *   snapshot for records that were not run, or not run at that point.
   * `arcnet replay` runs without it, record by record, and checks all.
   */
  recover(useSnapshot = true, options: { skipEphemeral?: boolean } = {}): { fromSnapshotOffset: number; replayed: number; skipped: number } {
    invariant(this.host.size === 0 && this.nextOffset === 0, 'recover() runs once, on a fresh shard');
    const fast = options.skipEphemeral === true;
    /** Actors alive and changed, told to the behaviour and timer wheel once at the end (fast recovery) → the time of their last change. */
    const changed = fast ? new Map<string, number>() : undefined;
    let fromOffset = 0;
    const snapshot = useSnapshot ? this.snapshots?.latest(this.shardId) : undefined;
    if (snapshot !== undefined) {
      this.restoreSnapshot(snapshot, changed);
      fromOffset = snapshot.offset + 1;
    }
    const { replayed, skipped } = changed === undefined ? this.replayTail(fromOffset) : this.recoverTail(fromOffset, changed);
    if (changed !== undefined) this.announce(changed);
    const expectedNext = this.journal.nextOffset();
    invariant(this.nextOffset === expectedNext, 'journal offsets are not contiguous', {
      shard: this.shardId,
      replayedTo: this.nextOffset,
      journalNext: expectedNext,
    });
    this.durableOffset = this.nextOffset - 1;
    this.recordsSinceSnapshot = replayed;
    this.armTick();
    const onRecovered = this.behaviour.onRecovered?.bind(this.behaviour);
    if (onRecovered !== undefined) this.step(() => onRecovered(this.ctx));
    this.release(this.durableOffset);
    return { fromSnapshotOffset: snapshot?.offset ?? -1, replayed, skipped };
  }

  /** Every record of the tail, run and checked one by one. */
  private replayTail(fromOffset: number): { replayed: number; skipped: number } {
    let replayed = 0;
    for (const record of this.journal.read(fromOffset)) {
      replayed++;
      this.replayRecord(record);
    }
    return { replayed, skipped: 0 };
  }

  /**
   * The tail in one streaming pass. Records of an actor spawned in the tail are
   * held (PendingLives) until its life ends (they are dropped unrun) or the tail
   * does (they are run then): independent actors, so only each actor's own order
   * matters. Every other record is run and checked in journal order.
   */
  private recoverTail(fromOffset: number, changed: Map<string, number>): { replayed: number; skipped: number } {
    const pending = new PendingLives(MAX_PENDING_RECORDS_PER_LIFE, MAX_PENDING_RECORDS);
    let replayed = 0;
    let skipped = 0;
    for (const record of this.journal.read(fromOffset)) {
      replayed++;
      this.advancePast(record);
      if (record.actorId === SHARD_ACTOR_ID) {
        this.behaviour.applyNote(record);
        this.notify(record, undefined);
        continue;
      }
      if (!pending.has(record.actorId) && !(record.event.type === SPAWN_EVENT && !this.host.has(record.actorId))) {
        this.notify(record, this.runRecorded(record, changed));
        continue;
      }
      this.notify(record, undefined);
      if (topLevelFinalStates(this.host.kind(record.kind)).has(record.state)) {
        // The life ends here: nothing of it stays, but the behaviour hears of the end in journal order.
        skipped += pending.end(record.actorId) + 1;
        this.behaviour.onActorChanged(record.actorId, record.kind, undefined, this.timeMs);
        continue;
      }
      for (const released of pending.hold(record) ?? []) this.runRecorded(released, changed);
    }
    for (const released of pending.drain()) this.runRecorded(released, changed);
    return { replayed, skipped };
  }

  /** Checks a record's offset is the next one and moves offsets and time past it. */
  private advancePast(record: JournalRecord): void {
    if (record.offset !== this.nextOffset) {
      throw new ArcError(ErrorCodes.REPLAY_DIVERGED, `journal of '${this.shardId}' skips from ${this.nextOffset} to ${record.offset}`);
    }
    if (record.atMs > this.timeMs) this.timeMs = record.atMs;
    this.nextOffset++;
  }

  /**
   * Runs one actor record through its machine and checks the state it reaches
   * (fast recovery): an end reaches the behaviour now, any other change is
   * noted in `changed` and announced once at the end.
   */
  private runRecorded(record: JournalRecord, changed: Map<string, number>): AnyMachineSnapshot {
    const snapshot = this.runChecked(record);
    if (snapshot.status !== 'active') {
      changed.delete(record.actorId);
      this.host.remove(record.actorId);
      this.timers.set(record.actorId, undefined);
      this.behaviour.onActorChanged(record.actorId, record.kind, undefined, this.timeMs);
    } else {
      changed.set(record.actorId, record.atMs);
    }
    return snapshot;
  }

  /** Tells the behaviour and the timer wheel of each actor changed during fast recovery, once, with its final snapshot. */
  private announce(changed: Map<string, number>): void {
    for (const [actorId, atMs] of changed) {
      const snapshot = this.host.snapshot(actorId) as AnyMachineSnapshot;
      const kind = this.host.kindOf(actorId) as ActorKind;
      this.timers.set(actorId, kind.deadlineOf(snapshot));
      this.behaviour.onActorChanged(actorId, kind.name, snapshot, atMs);
    }
  }

  /** Spawns or sends what the record says and checks the state reached against the recorded one. */
  private runChecked(record: JournalRecord): AnyMachineSnapshot {
    const snapshot =
      record.event.type === SPAWN_EVENT
        ? this.host.spawn(record.kind, record.actorId, record.event['input'])
        : this.host.send(record.actorId, record.event);
    const reached = stateString(snapshot.value);
    if (reached !== record.state) {
      throw new ArcError(ErrorCodes.REPLAY_DIVERGED, `replay of '${this.shardId}' offset ${record.offset} reached '${reached}', journal says '${record.state}'`, {
        actorId: record.actorId,
        event: record.event.type,
      });
    }
    return snapshot;
  }

  /** Applies one record read from a journal, as replay and recovery do. */
  replayRecord(record: JournalRecord): void {
    this.advancePast(record);
    if (record.actorId === SHARD_ACTOR_ID) {
      this.behaviour.applyNote(record);
      this.notify(record, undefined);
      return;
    }
    const snapshot = this.runChecked(record);
    this.afterChange(record.actorId, record.kind, snapshot);
    this.notify(record, snapshot);
  }

  /** Restores the snapshot's actors; with `changed` (fast recovery) the behaviour and timers hear of them once recovery ends. */
  private restoreSnapshot(snapshot: ShardSnapshot, changed: Map<string, number> | undefined): void {
    // Actors come back in the snapshot's canonical id order, not the live shard's order of
    // arrival. So no iteration order over actors, or over what a behaviour derives from them,
    // may reach a record or an effect: each such place orders explicitly (the timer wheel by
    // deadline then id, the region's summaries and forward re-sends in ways of their own), which
    // costs nothing per input. Keeping the arrival order in snapshots instead would make them
    // depend on history, and would still not cover sets whose members leave and come back.
    for (const persisted of snapshot.actors) {
      const restored = this.host.restore(persisted);
      if (changed !== undefined && restored.status === 'active') changed.set(persisted.id, snapshot.atMs);
      else this.afterChange(persisted.id, persisted.kind, restored);
    }
    this.behaviour.loadState(snapshot.behaviourState);
    this.timeMs = snapshot.atMs;
    this.nextOffset = snapshot.offset + 1;
  }

  // ---------------------------------------------------------------- live processing

  /**
   * Processes one input at logical time `atMs` (clamped so time never goes back):
   * first every deadline and tick due by then, in order, then the input itself.
   * The input is decided whole or not at all: if the behaviour throws while
   * deciding it, everything it did is undone and the input is refused with
   * ARC_ERR_INPUT_REFUSED; the shard goes on taking input.
   */
  process(input: I, atMs: number): void {
    this.assertAccepting();
    this.advanceTo(atMs);
    this.throwIfFailed();
    try {
      this.step(() => this.behaviour.handle(input, this.ctx));
    } catch (error) {
      if (this.failure !== undefined) throw this.failure;
      const cause = error instanceof Error ? error.message : String(error);
      throw new ArcError(
        ErrorCodes.INPUT_REFUSED,
        `shard '${this.shardId}' failed deciding an input and refused it; nothing of it was applied or journaled and the shard goes on. This is a bug: report it with the input. Cause: ${cause}`,
        error instanceof ArcError ? { causeCode: error.code } : undefined,
        { cause: error },
      );
    }
    this.afterStep();
  }

  /**
   * Fires everything due at or before `atMs`: deadlines by (deadline, actor id), then the tick.
   * A deadline or tick whose decision throws is undone, and the shard fails: it can
   * be neither refused nor skipped (the actor would stay past its deadline).
   */
  advanceTo(atMs: number): void {
    // Deadlines fire even when input is refused for overload: time must go on.
    if (this.failure !== undefined) return;
    try {
      this.fireDue(atMs);
    } catch (error) {
      this.fail(ErrorCodes.INVARIANT, 'a deadline or tick could not be decided (it was undone)', error);
      return;
    }
    this.setTime(atMs);
    this.afterStep();
  }

  private fireDue(atMs: number): void {
    for (;;) {
      const deadline = this.timers.peek();
      const tick = this.nextTickAtMs;
      const deadlineDue = deadline !== undefined && deadline.atMs <= atMs;
      const tickDue = tick !== undefined && tick <= atMs;
      if (!deadlineDue && !tickDue) break;
      if (deadlineDue && (!tickDue || deadline.atMs <= tick)) {
        this.timers.popDue(deadline.atMs);
        this.setTime(deadline.atMs);
        const kind = this.host.kindOf(deadline.actorId);
        if (kind !== undefined) this.step(() => this.behaviour.onDeadline(deadline.actorId, kind.name, deadline.atMs, this.ctx));
      } else if (tick !== undefined) {
        // After a gap (a fresh shard, an outage) skip to the last period boundary
        // before the next thing due: one summary, not one per missed period.
        const every = this.behaviour.tickEveryMs as number;
        const horizon = deadline !== undefined && deadline.atMs < atMs ? deadline.atMs : atMs;
        const latest = tick + Math.floor((horizon - tick) / every) * every;
        this.setTime(latest);
        const onTick = this.behaviour.onTick?.bind(this.behaviour);
        if (onTick !== undefined) this.step(() => onTick(this.ctx));
        this.armTick();
      }
    }
  }

  /**
   * Runs one step of decisions as a unit. Kept: observers hear of its records.
   * Thrown: every actor it touched is put back (with its deadline), its records
   * and effects are dropped, the behaviour drops its own changes, and the error
   * goes on to the caller. Costs the live path one log entry per actor touched.
   */
  private step(decide: () => void): void {
    invariant(!this.inStep, `shard '${this.shardId}' was given work while deciding a step`);
    const mark: StepMark = {
      pendingLength: this.pending.length,
      outboxLength: this.outbox.length,
      nextOffset: this.nextOffset,
      recordsSinceSnapshot: this.recordsSinceSnapshot,
    };
    this.inStep = true;
    try {
      this.behaviour.beginStep?.();
      decide();
      this.behaviour.endStep?.(true);
    } catch (error) {
      this.inStep = false;
      this.undo(mark);
      throw error;
    }
    this.inStep = false;
    this.touched.length = 0;
    const snapshots = this.stepSnapshots;
    if (snapshots.length === 0) return;
    if (this.observers.length > 0) {
      for (let i = 0; i < snapshots.length; i++) this.notify(this.pending[mark.pendingLength + i] as JournalRecord, snapshots[i]);
    }
    snapshots.length = 0;
  }

  private undo(mark: StepMark): void {
    try {
      // Each actor back to what it was when the step first touched it, in the reverse of that order.
      const first = new Map<string, Touched>();
      for (const touched of this.touched) if (!first.has(touched.actorId)) first.set(touched.actorId, touched);
      for (const touched of [...first.values()].reverse()) {
        const restored = this.host.revert(touched.actorId, touched.kind, touched.before);
        this.timers.set(touched.actorId, touched.deadlineMs);
        this.behaviour.onActorChanged(touched.actorId, touched.kind, restored, this.timeMs);
      }
      this.pending.length = mark.pendingLength;
      this.outbox.length = mark.outboxLength;
      this.nextOffset = mark.nextOffset;
      this.recordsSinceSnapshot = mark.recordsSinceSnapshot;
      this.behaviour.endStep?.(false);
    } catch (error) {
      // The state is no longer the one the journal describes: stop before anything else is written.
      this.fail(ErrorCodes.INVARIANT, 'a failed step could not be undone', error);
    } finally {
      this.touched.length = 0;
      this.stepSnapshots.length = 0;
    }
  }

  private setTime(atMs: number): void {
    if (atMs > this.timeMs) this.timeMs = atMs;
  }

  private armTick(): void {
    const every = this.behaviour.tickEveryMs;
    if (every === undefined) return;
    // Ticks fall on whole multiples of the period, so live, simulated and recovered
    // shards tick at the same logical times; a long outage collapses to one tick.
    this.nextTickAtMs = (Math.floor(this.timeMs / every) + 1) * every;
  }

  private assertAccepting(): void {
    if (this.failure !== undefined) {
      throw new ArcError(ErrorCodes.SHARD_STOPPED, `shard '${this.shardId}' has failed and accepts no input: ${this.failure.message}`);
    }
    if (this.inFlight >= this.limits.maxInFlight) {
      throw new ArcError(ErrorCodes.OVERLOADED, `shard '${this.shardId}' has ${this.inFlight} records/effects in flight (limit ${this.limits.maxInFlight}); retry later`);
    }
  }

  private makeContext(): ShardContext<E> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the context is a view onto this shard
    const shard = this;
    return {
      shardId: this.shardId,
      get nowMs() {
        return shard.timeMs;
      },
      snapshot: (actorId) => this.host.snapshot(actorId),
      spawn: (kind, actorId, input) => {
        if (this.inStep && !this.host.has(actorId)) this.touched.push({ actorId, kind, before: undefined, deadlineMs: this.timers.get(actorId) });
        const snapshot = this.host.spawn(kind, actorId, input);
        this.record(actorId, kind, { type: SPAWN_EVENT, input }, snapshot);
        return snapshot;
      },
      send: (actorId, event) => {
        const before = this.host.snapshot(actorId);
        if (before === undefined) throw new ArcError(ErrorCodes.INVARIANT, `send to missing actor '${actorId}'`);
        const kind = (this.host.kindOf(actorId) as ActorKind).name;
        if (this.inStep) this.touched.push({ actorId, kind, before, deadlineMs: this.timers.get(actorId) });
        const after = this.host.send(actorId, event);
        if (after !== before) this.record(actorId, kind, event, after);
        return after;
      },
      note: (event) => {
        const record = this.append(SHARD_ACTOR_ID, SHARD_ACTOR_ID, event, '');
        this.behaviour.applyNote(record);
        this.observed(record, undefined);
      },
      emit: (effect) => {
        this.outbox.push({ afterOffset: this.nextOffset - 1, effect });
      },
    };
  }

  private record(actorId: string, kind: string, event: JournalEvent, snapshot: AnyMachineSnapshot): void {
    const record = this.append(actorId, kind, event, stateString(snapshot.value));
    this.afterChange(actorId, kind, snapshot);
    this.observed(record, snapshot);
  }

  /** Observers hear of a step's records once the step is kept. */
  private observed(record: JournalRecord, snapshot: AnyMachineSnapshot | undefined): void {
    if (this.inStep) this.stepSnapshots.push(snapshot);
    else this.notify(record, snapshot);
  }

  private append(actorId: string, kind: string, event: JournalEvent, state: string): JournalRecord {
    const record: JournalRecord = { offset: this.nextOffset++, atMs: this.timeMs, actorId, kind, event, state };
    this.pending.push(record);
    this.recordsSinceSnapshot++;
    return record;
  }

  private afterChange(actorId: string, kind: string, snapshot: AnyMachineSnapshot): void {
    if (snapshot.status !== 'active') {
      // A final state ends the actor: it leaves memory (its history stays in the journal).
      this.host.remove(actorId);
      this.timers.set(actorId, undefined);
      this.behaviour.onActorChanged(actorId, kind, undefined, this.timeMs);
      return;
    }
    this.timers.set(actorId, this.host.kind(kind).deadlineOf(snapshot));
    this.behaviour.onActorChanged(actorId, kind, snapshot, this.timeMs);
  }

  private notify(record: JournalRecord, snapshot: AnyMachineSnapshot | undefined): void {
    for (const observer of this.observers) observer(record, snapshot);
  }

  // ---------------------------------------------------------------- write-ahead

  private afterStep(): void {
    if (this.pending.length >= this.limits.maxBatchRecords) {
      this.flush();
    } else if (this.pending.length > 0) {
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.scheduler.soon(() => this.flush());
      }
    } else {
      this.release(this.durableOffset);
    }
  }

  /**
   * Starts appending what is pending, unless an append is already in flight:
   * then the records wait and go together in the next one as soon as it lands
   * (one append in flight keeps the journal gap-free and its order exact, and
   * an append that fails can never be overtaken by a later one).
   */
  flush(): void {
    this.flushScheduled = false;
    if (this.appending || this.pending.length === 0 || this.failure !== undefined) return;
    const batch = this.pending.length <= this.limits.maxBatchRecords ? this.pending : this.pending.slice(0, this.limits.maxBatchRecords);
    this.pending = batch === this.pending ? [] : this.pending.slice(batch.length);
    const lastOffset = (batch[batch.length - 1] as JournalRecord).offset;
    this.appending = true;
    let appended: Promise<void>;
    try {
      appended = this.journal.append(batch);
    } catch (error) {
      appended = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    this.writeChain = appended.then(
      () => {
        this.appending = false;
        if (this.failure !== undefined) return;
        this.durableOffset = lastOffset;
        this.release(lastOffset);
        this.maybeSnapshot();
        if (this.pending.length > 0) this.flush();
      },
      (error: unknown) => {
        this.appending = false;
        this.fail(ErrorCodes.JOURNAL_WRITE, 'journal append failed', error);
      },
    );
  }

  /** Resolves once everything processed so far is durable and its effects released. */
  async whenIdle(): Promise<void> {
    for (;;) {
      this.throwIfFailed();
      this.flush();
      await this.writeChain;
      this.throwIfFailed();
      if (!this.appending && this.pending.length === 0) {
        this.release(this.durableOffset);
        return;
      }
    }
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private release(uptoOffset: number): void {
    if (this.failure !== undefined) return;
    let released: E[] | undefined;
    while (this.outboxHead < this.outbox.length) {
      const queued = this.outbox[this.outboxHead] as Queued<E>;
      if (queued.afterOffset > uptoOffset) break;
      (released ??= []).push(queued.effect);
      this.outboxHead++;
    }
    if (this.outboxHead > 4096 && this.outboxHead * 2 > this.outbox.length) {
      this.outbox = this.outbox.slice(this.outboxHead);
      this.outboxHead = 0;
    }
    if (released === undefined) return;
    try {
      this.onEffects(released, this.shardId);
    } catch (error) {
      // Whoever takes the effects could not (a full disk under an acknowledgement log, say):
      // stop rather than go on acknowledging nothing.
      this.fail(ErrorCodes.EFFECT_DELIVERY, 'effects could not be delivered', error);
    }
  }

  private fail(code: ErrorCode, what: string, error: unknown): void {
    if (this.failure !== undefined) return;
    const cause = error instanceof Error ? error.message : String(error);
    this.failure = new ArcError(code, `${what} in shard '${this.shardId}'; it stops and withholds its remaining effects: ${cause}`);
    this.onFailure?.(this.failure, this.shardId);
  }

  // ---------------------------------------------------------------- snapshots and hashing

  private maybeSnapshot(): void {
    if (this.snapshots === undefined || this.snapshotInProgress) return;
    const { snapshotEveryRecords, snapshotMinRecords, snapshotRecordsPerActor } = this.limits;
    const due = Math.min(snapshotEveryRecords, Math.max(snapshotMinRecords, snapshotRecordsPerActor * this.host.size));
    if (this.recordsSinceSnapshot < due) return;
    // Periodic snapshots skip the state hash: hashing every actor would stall the loop.
    // A failed snapshot costs only recovery time (the journal is the truth), so it is counted, not fatal.
    this.snapshotNow(false).catch(() => {
      this.snapshotFailures++;
    });
  }

  /** Periodic snapshots that could not be stored (recovery then replays a longer tail). */
  get failedSnapshots(): number {
    return this.snapshotFailures;
  }

  /**
   * Takes the state as it is now and stores it once the journal is durable up
   * to it. With the state hash (explicit snapshots: shutdown, handover) it is
   * captured at once; without (the periodic ones) only references to the
   * actors' snapshots are taken now and the rest is done in slices, so input
   * is never held up for long (see captureInSlices).
   */
  async snapshotNow(withHash = true): Promise<ShardSnapshot | undefined> {
    if (this.snapshots === undefined) return undefined;
    this.snapshotInProgress = true;
    try {
      const snapshot = withHash ? this.capture(true) : await this.captureInSlices();
      this.recordsSinceSnapshot = 0;
      await this.whenDurable(snapshot.offset);
      await this.snapshots.save(snapshot);
      return snapshot;
    } finally {
      this.snapshotInProgress = false;
    }
  }

  capture(withHash = true): ShardSnapshot {
    const actors = this.host.persistAll();
    const behaviourState = this.behaviour.saveState();
    const snapshot: ShardSnapshot = { shardId: this.shardId, offset: this.nextOffset - 1, atMs: this.timeMs, actors, behaviourState };
    return withHash ? { ...snapshot, stateHash: this.stateHash() } : snapshot;
  }

  /**
   * What capture(false) returns at this moment, without holding the loop for
   * it: the offset, time, behaviour state and a reference to every actor's
   * snapshot are taken now (one pass over the actors, no copying of their
   * state); sorting by id and persisting each actor follow in slices while
   * input goes on. Correct because snapshots are immutable (ActorHost).
   */
  async captureInSlices(slicer: Slicer = new Slicer()): Promise<ShardSnapshot> {
    const shardId = this.shardId;
    const offset = this.nextOffset - 1;
    const atMs = this.timeMs;
    const held = this.host.currentSnapshots();
    const buildState = this.behaviour.captureState?.();
    const savedState = buildState === undefined ? this.behaviour.saveState() : undefined;
    const sorted = await sortInSlices(held, byActorId, slicer);
    const actors = await mapInSlices(sorted, persistHeld, slicer);
    const behaviourState = buildState === undefined ? savedState : await buildState(slicer);
    return { shardId, offset, atMs, actors, behaviourState };
  }

  /** Resolves once the journal is durable up to `offset` (rejects if the shard fails first). */
  async whenDurable(offset: number): Promise<void> {
    while (this.durableOffset < offset) {
      this.throwIfFailed();
      this.flush();
      await this.writeChain;
    }
    this.throwIfFailed();
  }

  /**
   * SHA-256 over a canonical encoding of every actor (id, kind, status, state,
   * context; sorted by id) and the behaviour's own state.
   */
  stateHash(): string {
    const hasher = new CanonicalHasher();
    hasher.add({ shard: this.shardId });
    const ids = [...this.host.ids()].sort();
    for (const id of ids) {
      const snapshot = this.host.snapshot(id) as AnyMachineSnapshot;
      const state: unknown = snapshot.value;
      const context: unknown = snapshot.context;
      hasher.add({ id, kind: this.host.kindOf(id)?.name, status: snapshot.status, state, context });
    }
    hasher.add({ behaviour: this.behaviour.saveState() });
    return hasher.hex();
  }
}
