import type { AnyMachineSnapshot } from 'xstate';
import type { NodeContext, NodeReport, NodeStatus } from '../machines/node.js';
import type { ReservationContext, ReservationInput } from '../machines/reservation.js';
import type { JournalRecord } from '../runtime/journal.js';
import type { ShardBehaviour, ShardContext } from '../runtime/shard.js';
import type { Slicer } from '../runtime/sliced-work.js';
import { NODE_KIND, nodeActorId, nodeKind, nodeView } from './node-actor.js';
import type { InferenceRequest, RegionEffect, RegionInput, RequestOutcome } from './region-io.js';
import { RESERVATION_KIND, reservationActorId, reservationKind, reservationView } from './reservation-actor.js';
import { RoutingIndex } from './routing-index.js';
import { summarize } from './summary.js';
import { TRAINING_KIND, trainingKind } from './training-actor.js';
import { defaultTrainingConfig, TrainingCoordinator, type TrainingConfig } from './training-coordinator.js';

/** The region's timing and limits. The seed fixes the two 30 s figures. */
export interface RegionConfig extends TrainingConfig {
  /** Every geozone of the federation, so a shard knows where it may forward. */
  readonly geozones: readonly string[];
  readonly reservationTtlMs: number;
  readonly silenceTimeoutMs: number;
  readonly summaryEveryMs: number;
  readonly reservationsPerGpu: number;
  /** Routing attempts per request (the first plus re-routes after node loss). */
  readonly maxAttempts: number;
  /** Other geozones a request may be forwarded to before it is rejected. */
  readonly maxForwardHops: number;
  /** An unacknowledged forward is sent again after this long (at summary ticks). */
  readonly forwardRetryMs: number;
  /** Ended request ids are remembered this long so a duplicate is refused. */
  readonly requestIdRetentionMs: number;
  /** And at most this many of them (the oldest are forgotten first). */
  readonly maxRememberedRequestIds: number;
}

export const defaultRegionConfig: Omit<RegionConfig, 'geozones'> = {
  reservationTtlMs: 30_000,
  silenceTimeoutMs: 30_000,
  summaryEveryMs: 60_000,
  reservationsPerGpu: 2,
  maxAttempts: 3,
  maxForwardHops: 3,
  forwardRetryMs: 10_000,
  requestIdRetentionMs: 10 * 60_000,
  maxRememberedRequestIds: 1_000_000,
  ...defaultTrainingConfig,
};

type Ctx = ShardContext<RegionEffect>;

/**
 * One geozone shard's decisions: telemetry upserts node actors, inference
 * requests become reservation actors routed by the index, results and deadlines
 * end them. Every state change goes through ctx.send/spawn (journaled); effects
 * are emitted as data and leave only after the journal is durable.
 */
export class RegionBehaviour implements ShardBehaviour<RegionInput, RegionEffect> {
  readonly kinds = [nodeKind, reservationKind, trainingKind];
  readonly tickEveryMs: number;
  readonly index = new RoutingIndex();
  private readonly geozone: string;
  private readonly config: RegionConfig;
  /**
   * Ended request ids → when they ended, oldest first (Map keeps insertion order;
   * snapshots save it as a list in that order, so a restore keeps it exactly).
   */
  private readonly ended = new Map<string, number>();
  /**
   * Ends during the step being decided, in order: they reach `ended` only once the
   * step is kept (a refused step must leave `ended`, and its evictions, untouched).
   */
  private readonly endedInStep: [requestId: string, atMs: number][] = [];
  private inStep = false;
  /*
   * Derived from actors (kept by onActorChanged). A restore rebuilds them in actor
   * id order, the live shard in order of arrival, so their iteration order must
   * never reach a record or an effect: summaries sum in an order-free way, and
   * forwards are re-sent in request id order.
   */
  private readonly nodes = new Map<string, { status: NodeStatus; context: NodeContext }>();
  private readonly openReservations = new Set<string>();
  /** Requests handed to another shard and not yet acknowledged by it. */
  private readonly forwarding = new Set<string>();
  /** Federated rounds (their actors, and the job views kept from their notes). */
  readonly training: TrainingCoordinator;

  constructor(geozone: string, config: RegionConfig) {
    this.geozone = geozone;
    this.config = config;
    this.tickEveryMs = config.summaryEveryMs;
    this.training = new TrainingCoordinator(geozone, config, () => this.nodes.values());
  }

  handle(input: RegionInput, ctx: Ctx): void {
    switch (input.type) {
      case 'telemetry':
        return this.onTelemetry(input.nodeId, input.report, ctx);
      case 'inference':
        return this.onRequest(input.request, input.triedGeozones, ctx);
      case 'result':
        return this.onResult(input, ctx);
      case 'cancel':
        return this.onCancel(input.requestId, ctx);
      case 'forward.ack': {
        const actorId = reservationActorId(input.requestId);
        if (ctx.snapshot(actorId)?.value === 'forwarding') ctx.send(actorId, { type: 'forward.accepted', atMs: ctx.nowMs });
        return;
      }
      case 'drain':
      case 'resume':
        if (ctx.snapshot(nodeActorId(input.nodeId)) !== undefined) ctx.send(nodeActorId(input.nodeId), { type: input.type, atMs: ctx.nowMs });
        return;
      case 'job.submit':
      case 'summary.in':
      case 'hpc.observed':
      case 'job.cancel':
        // The central orchestrator's inputs: its own shard behaviour takes them, a region's ignores them.
        return;
      default:
        return this.training.handle(input, ctx);
    }
  }

  // ------------------------------------------------------------------ nodes

  private onTelemetry(nodeId: string, report: NodeReport, ctx: Ctx): void {
    const actorId = nodeActorId(nodeId);
    const before = ctx.snapshot(actorId);
    if (before === undefined) {
      ctx.spawn(NODE_KIND, actorId, {
        nodeId,
        report,
        atMs: ctx.nowMs,
        silenceTimeoutMs: this.config.silenceTimeoutMs,
        reservationsPerGpu: this.config.reservationsPerGpu,
      });
      return;
    }
    const after = ctx.send(actorId, { type: 'telemetry', atMs: ctx.nowMs, report });
    if (before.value === 'offline' && after.value !== 'offline') {
      ctx.emit(this.system(ctx, 'success', `node ${nodeId} is back`, { nodeId, status: after.value }));
    }
  }

  onDeadline(actorId: string, kind: string, atMs: number, ctx: Ctx): void {
    if (kind === NODE_KIND) this.onNodeSilent(actorId, atMs, ctx);
    else if (kind === RESERVATION_KIND) this.onReservationDue(actorId, atMs, ctx);
    else if (kind === TRAINING_KIND) this.training.onDeadline(actorId, atMs, ctx);
  }

  private onNodeSilent(actorId: string, atMs: number, ctx: Ctx): void {
    const before = ctx.snapshot(actorId);
    if (before === undefined) return;
    const { context } = nodeView(before);
    const held = [...context.reservations];
    const after = ctx.send(actorId, { type: 'timeout', atMs });
    if (after.value !== 'offline') return;
    ctx.emit(
      this.system(ctx, 'warn', `node ${context.nodeId} went offline: no telemetry for ${this.config.silenceTimeoutMs} ms`, {
        nodeId: context.nodeId,
        lastSeenAtMs: context.lastSeenAtMs,
        reservationsLost: held.length,
      }),
    );
    this.training.onNodeOffline(context.nodeId, ctx);
    // Its reservations die with it: each goes back to routing (or fails when out of attempts).
    for (const requestId of held) {
      const resId = reservationActorId(requestId);
      if (ctx.snapshot(resId) === undefined) continue;
      const lost = ctx.send(resId, { type: 'node.lost', atMs, nodeId: context.nodeId });
      if (lost.value === 'requested') this.route(resId, reservationView(lost).context, ctx, false);
      else this.announceEnd(lost, ctx);
    }
  }

  private onReservationDue(actorId: string, atMs: number, ctx: Ctx): void {
    const before = ctx.snapshot(actorId);
    if (before === undefined) return;
    const nodeId = reservationView(before).context.nodeId;
    const after = ctx.send(actorId, { type: 'expire', atMs });
    if (after.status === 'active') return;
    this.releaseNode(nodeId, reservationView(after).context.requestId, ctx);
    this.announceEnd(after, ctx);
  }

  // ------------------------------------------------------------------ requests

  private onRequest(request: InferenceRequest, triedGeozones: readonly string[], ctx: Ctx): void {
    const actorId = reservationActorId(request.requestId);
    const sender = triedGeozones[triedGeozones.length - 1];
    const seen = ctx.snapshot(actorId) !== undefined || this.endedRecently(request.requestId, ctx.nowMs);
    if (sender !== undefined) {
      // A forwarded copy is acknowledged whether it is new or a re-send we already took.
      ctx.emit({ type: 'forward-ack', atMs: ctx.nowMs, toGeozone: sender, requestId: request.requestId });
      if (seen) return;
    }
    if (seen) {
      ctx.emit({
        type: 'decision',
        atMs: ctx.nowMs,
        requestId: request.requestId,
        outcome: 'duplicate',
        geozone: this.geozone,
        requesterGeozone: request.requesterGeozone,
        candidates: 0,
        reason: 'request id already seen in this geozone',
      });
      return;
    }
    const input: ReservationInput = {
      ...request,
      triedGeozones: [...triedGeozones],
      receivedAtMs: ctx.nowMs,
      reservationTtlMs: this.config.reservationTtlMs,
      maxAttempts: this.config.maxAttempts,
    };
    const spawned = ctx.spawn(RESERVATION_KIND, actorId, input);
    this.route(actorId, reservationView(spawned).context, ctx, true);
  }

  /**
   * Routes a reservation in `requested`: reserve the best local node, else
   * forward to the next untried geozone (first routing only), else reject.
   */
  private route(actorId: string, res: ReservationContext, ctx: Ctx, mayForward: boolean): void {
    const choice = this.index.choose(res.modelId, res.lostNodes);
    if (choice !== undefined) {
      const reason = `best of ${choice.candidates} eligible in ${this.geozone}: ${choice.energySource}, gpu ${choice.gpuUtilization}`;
      // Reserved and dispatched in one event (one record): the dispatch leaves only once it is durable.
      const reserved = ctx.send(actorId, { type: 'route.reserved', atMs: ctx.nowMs, nodeId: choice.nodeId, candidates: choice.candidates, reason, dispatch: true });
      const nodeBefore = ctx.snapshot(nodeActorId(choice.nodeId));
      const nodeAfter = ctx.send(nodeActorId(choice.nodeId), { type: 'reserve', atMs: ctx.nowMs, requestId: res.requestId });
      if (nodeAfter === nodeBefore) throw new Error(`index chose ${choice.nodeId}, which refused the reservation`);
      const expiresAtMs = reservationView(reserved).context.expiresAtMs as number;
      ctx.emit({
        type: 'dispatch',
        geozone: this.geozone,
        atMs: ctx.nowMs,
        requestId: res.requestId,
        nodeId: choice.nodeId,
        modelId: res.modelId,
        contextWindow: res.contextWindow,
        priority: res.priority,
        expiresAtMs,
      });
      ctx.emit({
        type: 'decision',
        atMs: ctx.nowMs,
        requestId: res.requestId,
        outcome: 'reserved',
        geozone: this.geozone,
        requesterGeozone: res.requesterGeozone,
        nodeId: choice.nodeId,
        expiresAtMs,
        candidates: choice.candidates,
        reason,
      });
      return;
    }
    const tried = [...res.triedGeozones, this.geozone];
    const next = mayForward ? this.nextGeozone(tried) : undefined;
    if (next !== undefined) {
      const forwarding = ctx.send(actorId, {
        type: 'route.forwarded',
        atMs: ctx.nowMs,
        toGeozone: next,
        candidates: 0,
        reason: `no eligible node for ${res.modelId} in ${this.geozone}`,
      });
      ctx.emit(this.forwardOf(reservationView(forwarding).context, ctx));
      return;
    }
    const reason =
      res.attempts > 0
        ? `node lost and no other eligible node for ${res.modelId} in ${this.geozone}`
        : `no eligible node for ${res.modelId} in ${tried.join(', ')}`;
    const rejected = ctx.send(actorId, { type: 'route.rejected', atMs: ctx.nowMs, candidates: 0, reason });
    if (res.attempts === 0) {
      ctx.emit({ type: 'decision', atMs: ctx.nowMs, requestId: res.requestId, outcome: 'rejected', geozone: this.geozone, requesterGeozone: res.requesterGeozone, candidates: 0, reason });
    }
    this.announceEnd(rejected, ctx);
  }

  private forwardOf(res: ReservationContext, ctx: Ctx): RegionEffect {
    const request: InferenceRequest = {
      requestId: res.requestId,
      modelId: res.modelId,
      contextWindow: res.contextWindow,
      priority: res.priority,
      requesterGeozone: res.requesterGeozone,
      ...(res.requesterGeohash === undefined ? {} : { requesterGeohash: res.requesterGeohash }),
    };
    return { type: 'forward', atMs: ctx.nowMs, toGeozone: res.forwardedTo as string, request, triedGeozones: [...res.triedGeozones, this.geozone] };
  }

  /**
   * Forwards not yet acknowledged are sent again: after a restart (the copy may
   * have been lost with the process) and at each tick for those older than the
   * retry interval. The receiving shard takes a copy once and acknowledges each.
   */
  onRecovered(ctx: Ctx): void {
    this.resendForwards(ctx, 0);
    this.training.onRecovered(ctx);
  }

  private resendForwards(ctx: Ctx, olderThanMs: number): void {
    if (this.forwarding.size === 0) return;
    // In request id order, not the set's: a restored shard fills the set in another order
    // than the live one did, and the order of forwards is the order the receiver records them.
    // Sorting is cheap here: only unacknowledged forwards, at ticks and on recovery.
    for (const requestId of [...this.forwarding].sort()) {
      const snapshot = ctx.snapshot(reservationActorId(requestId));
      if (snapshot === undefined) continue;
      const res = reservationView(snapshot).context;
      if (ctx.nowMs - (res.forwardedAtMs ?? 0) >= olderThanMs) ctx.emit(this.forwardOf(res, ctx));
    }
  }

  /** The next geozone after this one (federation order, wrapping) not yet tried, within the hop limit. */
  private nextGeozone(tried: readonly string[]): string | undefined {
    const hopsSoFar = tried.length - 1;
    if (hopsSoFar >= this.config.maxForwardHops) return undefined;
    const order = [...this.config.geozones].sort();
    const start = order.indexOf(this.geozone);
    for (let i = 1; i <= order.length; i++) {
      const candidate = order[(start + i) % order.length] as string;
      if (!tried.includes(candidate)) return candidate;
    }
    return undefined;
  }

  private onResult(input: RegionInput & { type: 'result' }, ctx: Ctx): void {
    const actorId = reservationActorId(input.requestId);
    if (ctx.snapshot(actorId) === undefined) return; // late (after expiry) or unknown: nothing to change
    const after = ctx.send(actorId, { type: 'result', atMs: ctx.nowMs, nodeId: input.nodeId, status: input.status, latencyMs: input.latencyMs });
    if (after.status === 'active') return; // not from the holder: ignored by the machine
    this.releaseNode(input.nodeId, input.requestId, ctx);
    this.announceEnd(after, ctx);
  }

  private onCancel(requestId: string, ctx: Ctx): void {
    const actorId = reservationActorId(requestId);
    const before = ctx.snapshot(actorId);
    if (before === undefined) return;
    const after = ctx.send(actorId, { type: 'cancel', atMs: ctx.nowMs });
    if (after.status === 'active') return;
    this.releaseNode(reservationView(before).context.nodeId, requestId, ctx);
    this.announceEnd(after, ctx);
  }

  private releaseNode(nodeId: string | null, requestId: string, ctx: Ctx): void {
    if (nodeId === null) return;
    const actorId = nodeActorId(nodeId);
    if (ctx.snapshot(actorId) !== undefined) ctx.send(actorId, { type: 'release', atMs: ctx.nowMs, requestId });
  }

  private announceEnd(snapshot: AnyMachineSnapshot, ctx: Ctx): void {
    if (snapshot.status === 'active') return;
    const { state, context } = reservationView(snapshot);
    if (state === 'forwarded') return;
    ctx.emit({
      type: 'ended',
      atMs: ctx.nowMs,
      requestId: context.requestId,
      geozone: this.geozone,
      outcome: state as RequestOutcome,
      nodeId: context.nodeId,
      reason: context.reason,
    });
  }

  // ------------------------------------------------------------------ summaries and derived state

  onTick(ctx: Ctx): void {
    this.resendForwards(ctx, this.config.forwardRetryMs);
    const summary = summarize(this.geozone, ctx.nowMs, this.nodes.values(), this.openReservations.size);
    ctx.note({ type: 'summary', ...summary });
    ctx.emit({ type: 'summary', summary });
  }

  onActorChanged(actorId: string, kind: string, snapshot: AnyMachineSnapshot | undefined, atMs: number): void {
    if (kind === TRAINING_KIND) return this.training.onActorChanged(actorId, kind, snapshot);
    if (kind === NODE_KIND) {
      const nodeId = actorId.slice('node/'.length);
      if (snapshot === undefined) {
        this.nodes.delete(nodeId);
        this.index.update(nodeId, undefined, undefined);
        return;
      }
      const view = nodeView(snapshot);
      this.nodes.set(nodeId, view);
      this.index.update(nodeId, view.status, view.context);
      return;
    }
    if (kind === RESERVATION_KIND) {
      const requestId = actorId.slice('reservation/'.length);
      if (snapshot !== undefined) {
        this.openReservations.add(requestId);
        if (snapshot.value === 'forwarding') this.forwarding.add(requestId);
        else this.forwarding.delete(requestId);
      } else {
        this.openReservations.delete(requestId);
        this.forwarding.delete(requestId);
        if (this.inStep) this.endedInStep.push([requestId, atMs]);
        else this.remember(requestId, atMs);
      }
    }
  }

  beginStep(): void {
    this.inStep = true;
    this.training.beginStep();
  }

  endStep(kept: boolean): void {
    this.inStep = false;
    this.training.endStep(kept);
    if (kept) for (const [requestId, atMs] of this.endedInStep) this.remember(requestId, atMs);
    this.endedInStep.length = 0;
  }

  /** Whether the id ended here within the retention window (older memories are being forgotten). */
  private endedRecently(requestId: string, nowMs: number): boolean {
    for (const [endedId] of this.endedInStep) if (endedId === requestId) return true;
    const endedAtMs = this.ended.get(requestId);
    return endedAtMs !== undefined && endedAtMs > nowMs - this.config.requestIdRetentionMs;
  }

  /**
   * Remembers an ended request id, and forgets those past retention or over the
   * cap, oldest first: a little on every end rather than a burst at some tick, so
   * no single input pays for a minute's worth of evictions (and replay, which
   * sees the same ends in the same order, forgets the same ids).
   */
  private remember(requestId: string, atMs: number): void {
    this.ended.delete(requestId); // re-inserted at the end, so the map stays in order of ending
    this.ended.set(requestId, atMs);
    const horizon = atMs - this.config.requestIdRetentionMs;
    for (const [oldest, endedAtMs] of this.ended) {
      if (endedAtMs > horizon && this.ended.size <= this.config.maxRememberedRequestIds) break;
      this.ended.delete(oldest);
    }
  }

  applyNote(record: JournalRecord): void {
    // Summaries change no behaviour state; they are journaled for the record. Training notes feed the job views.
    this.training.applyNote(record);
  }

  saveState(): unknown {
    const training = this.training.saveState();
    // Only when there is any, so regions without federated jobs keep the state (and hash) they had.
    return training.length === 0 ? { ended: [...this.ended] } : { ended: [...this.ended], training };
  }

  /** saveState() for a periodic snapshot: ids and times copied flat now, the [id, time] pairs built in slices. */
  captureState(): (slicer: Slicer) => Promise<unknown> {
    const ids = Array.from(this.ended.keys());
    const times = Array.from(this.ended.values());
    const training = this.training.saveState();
    return async (slicer) => {
      const ended = new Array<[string, number]>(ids.length);
      for (let i = 0; i < ids.length; i++) {
        ended[i] = [ids[i] as string, times[i] as number];
        if (slicer.due()) await slicer.pause();
      }
      return training.length === 0 ? { ended } : { ended, training };
    };
  }

  loadState(state: unknown): void {
    this.ended.clear();
    const saved = state as { ended?: [string, number][]; training?: unknown } | undefined;
    for (const [requestId, atMs] of saved?.ended ?? []) this.ended.set(requestId, atMs);
    this.training.loadState(saved?.training);
  }

  private system(ctx: Ctx, severity: 'info' | 'warn' | 'error' | 'success', message: string, details: Record<string, unknown>): RegionEffect {
    return { type: 'system', atMs: ctx.nowMs, severity, message, details: { geozone: this.geozone, ...details } };
  }
}
