import type { AnyMachineSnapshot } from 'xstate';
import { LEGACY_AGGREGATE_WHEN, type AggregateWhen, type FederatedRoundContext, type RoundClosedBy } from '../machines/federated-round.js';
import type { NodeContext, NodeStatus } from '../machines/node.js';
import type { JournalRecord } from '../runtime/journal.js';
import type { ShardContext } from '../runtime/shard.js';
import { formatShardUri } from '../training/dataset-shard.js';
import { chooseParticipants } from './participant-ranking.js';
import type { RegionEffect, TrainingInput, TrainingJobSpec, TrainingUpdate } from './region-io.js';
import { TRAINING_KIND, trainingActorId, trainingView } from './training-actor.js';

type Ctx = ShardContext<RegionEffect>;

/** A round as GET /v1/training/:job shows it (kept after the job's actor has ended). */
export interface TrainingRoundView {
  round: number;
  startedAtMs: number;
  deadlineAtMs: number;
  /** The weights the round started from (null: zeros, round 1). */
  startWeightsSha256: string | null;
  /** Updates counted, in order of arrival. */
  updates: { nodeId: string; sampleCount: number; weightsSha256: string; loss: number | null; accuracy: number | null; atMs: number }[];
  dropped: string[];
  /** Participants still in the round that had not answered when it closed. */
  stragglers: string[];
  /** Stragglers whose update came after the round closed: not counted (each named once). */
  late: string[];
  closedAtMs: number | null;
  /** What closed it: min-participants answered, everyone answered, or the deadline. */
  closedBy: RoundClosedBy | null;
  aggregateSha256: string | null;
  /** Held-out accuracy of the aggregate, measured by the region. */
  accuracy: number | null;
  loss: number | null;
  checkpointUri: string | null;
  checkpointSha256: string | null;
}

export interface TrainingJobView {
  jobId: string;
  geozone: string;
  spec: TrainingJobSpec;
  acceptedAtMs: number;
  participants: { nodeId: string; energySource: string; gpuUtilization: number; part: number; datasetShardUri: string }[];
  selection: { eligible: number; reason: string };
  state: 'training' | 'done' | 'failed' | 'cancelled';
  failureReason: string | null;
  failureDetail: string | null;
  endedAtMs: number | null;
  rounds: TrainingRoundView[];
}

export interface TrainingConfig {
  /** Nodes at or above this GPU utilisation are not invited. */
  readonly trainingMaxGpuUtilization: number;
  /** Jobs kept for GET /v1/training (the oldest ended ones are forgotten first). */
  readonly maxTrainingJobsKept: number;
}

export const defaultTrainingConfig: TrainingConfig = { trainingMaxGpuUtilization: 0.85, maxTrainingJobsKept: 1_000 };

/** A participant's local seed for a round: distinct per part and round, derived from the job's seed. */
export function localSeed(jobSeed: number, round: number, part: number): number {
  return (jobSeed * 1_000_003 + round * 7_919 + part) >>> 0;
}

/**
 * The federated rounds of one geozone shard. Lifecycle decisions are the
 * federated-round actor's (machines/federated-round.ts, journaled like any
 * actor); what the rounds carried (who was chosen and why, each counted
 * update's hash and sample count, each aggregate's hash and accuracy, each
 * checkpoint) is journaled as shard notes and folded into job views here, so
 * live, recovered and replayed shards hold the same views, and the views
 * outlive the actor. Weights never enter the journal: only their SHA-256.
 */
export class TrainingCoordinator {
  private readonly jobs = new Map<string, TrainingJobView>();
  /** Live federated-round actors (derived from actors). */
  private readonly active = new Set<string>();
  /** Views as they were before the current step first changed them (undefined: did not exist). */
  /**
   * How to take back each change the current step made to the views, newest last
   * (a step that throws is undone whole). Inverse operations rather than copies:
   * copying a job's view on every update would cost a round's length per update.
   */
  private readonly undo: (() => void)[] = [];
  /** The order of `jobs` before the step added or forgot one (an undo must restore it: it is in the state hash). */
  private orderBefore: string[] | undefined;
  private inStep = false;

  constructor(
    private readonly geozone: string,
    private readonly config: TrainingConfig,
    private readonly nodes: () => Iterable<{ status: NodeStatus; context: NodeContext }>,
  ) {}

  view(jobId: string): TrainingJobView | undefined {
    return this.jobs.get(jobId);
  }

  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  // ---------------------------------------------------------------- inputs

  handle(input: TrainingInput, ctx: Ctx): void {
    switch (input.type) {
      case 'training.job':
        return this.onJob(input.job, ctx);
      case 'training.update':
        return this.onUpdate(input.update, ctx);
      case 'training.aggregated':
        return this.onAggregated(input, ctx);
      case 'training.checkpointed':
        return this.onCheckpointed(input, ctx);
      case 'training.failed-step':
        return this.onFailedStep(input, ctx);
    }
  }

  private onJob(spec: TrainingJobSpec, ctx: Ctx): void {
    const actorId = trainingActorId(spec.jobId);
    if (this.jobs.has(spec.jobId) || ctx.snapshot(actorId) !== undefined) return; // a job id is used once
    const { chosen, eligible, reason } = chooseParticipants(this.nodes(), spec.participants, this.config.trainingMaxGpuUtilization);
    const participants = chosen.map((p, part) => ({
      nodeId: p.nodeId,
      energySource: p.energySource,
      gpuUtilization: p.gpuUtilization,
      part,
      datasetShardUri: formatShardUri({ datasetUri: spec.datasetUri, part, of: chosen.length, scheme: spec.partitioning, seed: spec.local.seed, testFraction: spec.testFraction }),
    }));
    if (chosen.length < spec.minParticipants) {
      const why = `only ${chosen.length} eligible node${chosen.length === 1 ? '' : 's'} in ${this.geozone}; min-participants is ${spec.minParticipants}`;
      ctx.note({ type: 'training.job', spec, participants, eligible, reason, state: 'failed', failureReason: 'quorum-not-reached', failureDetail: why });
      ctx.emit(this.system(ctx, 'error', `training job ${spec.jobId} failed: ${why}`, { jobId: spec.jobId, reason: 'quorum-not-reached' }));
      return;
    }
    ctx.spawn(TRAINING_KIND, actorId, {
      jobId: spec.jobId,
      totalRounds: spec.rounds,
      participants: participants.map((p) => p.nodeId),
      minParticipants: spec.minParticipants,
      // A spec journaled before the field existed has none (the type says otherwise for new input).
      aggregateWhen: (spec.aggregateWhen as AggregateWhen | undefined) ?? LEGACY_AGGREGATE_WHEN,
      roundTimeoutMs: spec.roundDeadlineMs,
      createdAtMs: ctx.nowMs,
    });
    ctx.note({ type: 'training.job', spec, participants, eligible, reason, state: 'training', failureReason: null, failureDetail: null });
    const configured = ctx.send(actorId, { type: 'configure', atMs: ctx.nowMs, partitions: participants.map((p) => ({ nodeId: p.nodeId, datasetShardUri: p.datasetShardUri })) });
    this.afterChange(spec.jobId, configured, ctx, null);
  }

  private onUpdate(update: TrainingUpdate, ctx: Ctx): void {
    const actorId = trainingActorId(update.jobId);
    const before = ctx.snapshot(actorId);
    if (before === undefined) {
      this.onNotCounted(update, ctx); // the job ended, or is not ours: nothing to count
      return;
    }
    const after = ctx.send(actorId, { type: 'update.received', atMs: ctx.nowMs, nodeId: update.nodeId, round: update.round });
    if (after === before) {
      this.onNotCounted(update, ctx); // late, repeated, or from a node not in the round: never counted
      return;
    }
    ctx.note({ type: 'training.update', ...update });
    this.afterChange(update.jobId, after, ctx, null);
  }

  /**
   * A straggler's update for a round that already closed: not counted, and
   * named once in the round's view and on the console (the agent resends until
   * acknowledged, so repeats are expected and say nothing new).
   */
  private onNotCounted(update: TrainingUpdate, ctx: Ctx): void {
    const round = this.jobs.get(update.jobId)?.rounds.find((r) => r.round === update.round);
    if (round === undefined || round.closedAtMs === null || !round.stragglers.includes(update.nodeId) || round.late.includes(update.nodeId)) return;
    ctx.note({ type: 'training.late', jobId: update.jobId, round: update.round, nodeId: update.nodeId });
    ctx.emit(
      this.system(ctx, 'warn', `training job ${update.jobId}: the update of ${update.nodeId} for round ${update.round} came after the round closed (${round.closedBy ?? 'closed'}); not counted`, {
        jobId: update.jobId,
        round: update.round,
        nodeId: update.nodeId,
      }),
    );
  }

  private onAggregated(input: Extract<TrainingInput, { type: 'training.aggregated' }>, ctx: Ctx): void {
    const actorId = trainingActorId(input.jobId);
    const before = ctx.snapshot(actorId);
    // A repeat (the executor ran again after a restart) finds the round past aggregating: ignored.
    if (before === undefined || before.value !== 'aggregating' || trainingView(before).context.round !== input.round) return;
    const after = ctx.send(actorId, { type: 'aggregated', atMs: ctx.nowMs });
    ctx.note({ type: 'training.aggregated', jobId: input.jobId, round: input.round, weightsSha256: input.weightsSha256, accuracy: input.accuracy, loss: input.loss });
    this.afterChange(input.jobId, after, ctx, null);
  }

  private onCheckpointed(input: Extract<TrainingInput, { type: 'training.checkpointed' }>, ctx: Ctx): void {
    const actorId = trainingActorId(input.jobId);
    const before = ctx.snapshot(actorId);
    if (before === undefined || before.value !== 'checkpointing' || trainingView(before).context.round !== input.round) return;
    ctx.note({ type: 'training.checkpoint', jobId: input.jobId, round: input.round, checkpointUri: input.checkpointUri, sha256: input.sha256 });
    const job = this.jobs.get(input.jobId);
    const round = job?.rounds[job.rounds.length - 1];
    ctx.emit(
      this.system(ctx, 'success', `training job ${input.jobId}: round ${input.round} of ${job?.spec.rounds ?? '?'} aggregated from ${round?.updates.length ?? 0} updates, held-out accuracy ${(round?.accuracy ?? 0).toFixed(4)}, checkpoint ${input.checkpointUri}`, {
        jobId: input.jobId,
        round: input.round,
        accuracy: round?.accuracy ?? null,
        counted: round?.updates.map((u) => u.nodeId) ?? [],
        stragglers: round?.stragglers ?? [],
        checkpointUri: input.checkpointUri,
        sha256: input.sha256,
      }),
    );
    const after = ctx.send(actorId, { type: 'checkpoint.published', atMs: ctx.nowMs, checkpointUri: input.checkpointUri });
    this.afterChange(input.jobId, after, ctx, round?.aggregateSha256 ?? null);
  }

  private onFailedStep(input: Extract<TrainingInput, { type: 'training.failed-step' }>, ctx: Ctx): void {
    const actorId = trainingActorId(input.jobId);
    const before = ctx.snapshot(actorId);
    const expected = input.step === 'aggregation' ? 'aggregating' : 'checkpointing';
    if (before === undefined || before.value !== expected || trainingView(before).context.round !== input.round) return;
    const reason = input.reason.slice(0, 1024);
    const after = ctx.send(actorId, input.step === 'aggregation' ? { type: 'aggregation.failed', atMs: ctx.nowMs, reason } : { type: 'checkpoint.failed', atMs: ctx.nowMs, reason });
    this.afterChange(input.jobId, after, ctx, null);
  }

  // ---------------------------------------------------------------- time and node loss

  /** The timer wheel fired a round deadline. */
  onDeadline(actorId: string, atMs: number, ctx: Ctx): void {
    const before = ctx.snapshot(actorId);
    if (before === undefined) return;
    const after = ctx.send(actorId, { type: 'deadline', atMs });
    if (after !== before) this.afterChange(trainingView(before).context.jobId, after, ctx, null);
  }

  /** A node went silent (the 30 s telemetry rule): it drops out of every round it was in. */
  onNodeOffline(nodeId: string, ctx: Ctx): void {
    for (const actorId of [...this.active].sort()) {
      const before = ctx.snapshot(actorId);
      if (before === undefined || !trainingView(before).context.participants.includes(nodeId)) continue;
      const jobId = trainingView(before).context.jobId;
      const after = ctx.send(actorId, { type: 'participant.dropped', atMs: ctx.nowMs, nodeId });
      if (after === before) continue;
      ctx.note({ type: 'training.dropped', jobId, round: trainingView(before).context.round, nodeId });
      ctx.emit(this.system(ctx, 'warn', `training job ${jobId}: node ${nodeId} went silent and dropped out`, { jobId, nodeId }));
      this.afterChange(jobId, after, ctx, null);
    }
  }

  /** After a restart: the work owed for each live round is asked for again (each is idempotent). */
  onRecovered(ctx: Ctx): void {
    for (const actorId of [...this.active].sort()) {
      const snapshot = ctx.snapshot(actorId);
      if (snapshot === undefined) continue;
      const { state, context } = trainingView(snapshot);
      const job = this.jobs.get(context.jobId);
      const round = job?.rounds[job.rounds.length - 1];
      if (job === undefined || round === undefined) continue;
      if (state === 'training') this.emitTrains(job, context, round.startWeightsSha256, ctx);
      else if (state === 'aggregating') this.emitAggregate(job, ctx);
      else if (state === 'checkpointing' && round.aggregateSha256 !== null) this.emitCheckpoint(job, round.round, round.aggregateSha256, ctx);
    }
  }

  // ---------------------------------------------------------------- what follows a change

  /**
   * After the actor moved: a round that closed is aggregated, an aggregate is
   * checkpointed, a new round is trained, an end is announced.
   */
  private afterChange(jobId: string, after: AnyMachineSnapshot, ctx: Ctx, startWeightsSha256: string | null): void {
    const job = this.jobs.get(jobId);
    if (job === undefined) return;
    const { state, context } = trainingView(after);
    const current = job.rounds[job.rounds.length - 1];
    if (state === 'training' && (current === undefined || current.round !== context.round)) {
      ctx.note({ type: 'training.round', jobId, round: context.round, startedAtMs: context.roundStartedAtMs, deadlineAtMs: context.roundDeadlineAtMs, startWeightsSha256 });
      ctx.emit(this.system(ctx, 'info', `training job ${jobId}: round ${context.round} of ${context.totalRounds} started with ${context.participants.length} participants`, { jobId, round: context.round, participants: context.participants }));
      this.emitTrains(job, context, startWeightsSha256, ctx);
      return;
    }
    if (state === 'aggregating' && current !== undefined && current.closedAtMs === null) {
      const counted = current.updates.map((u) => u.nodeId);
      const closedBy = context.roundClosedBy;
      ctx.note({ type: 'training.closed', jobId, round: context.round, counted, stragglers: context.stragglers, closedBy });
      if (context.stragglers.length > 0) {
        const when = closedBy === 'quorum' ? `at quorum (${counted.length} answered, min-participants ${context.minParticipants})` : 'at its deadline';
        ctx.emit(this.system(ctx, 'warn', `training job ${jobId}: round ${context.round} closed ${when}; stragglers left out: ${context.stragglers.join(', ')}`, { jobId, round: context.round, closedBy, stragglers: context.stragglers }));
      }
      this.emitAggregate(job, ctx);
      return;
    }
    if (state === 'checkpointing' && current?.aggregateSha256 != null) {
      this.emitCheckpoint(job, context.round, current.aggregateSha256, ctx);
      return;
    }
    if (after.status !== 'active' && job.state === 'training') {
      const ended = state === 'done' ? 'done' : state === 'cancelled' ? 'cancelled' : 'failed';
      ctx.note({ type: 'training.ended', jobId, state: ended, reason: context.failureReason ?? context.cancelReason, detail: context.failureDetail });
      if (ended === 'done') {
        ctx.emit(this.system(ctx, 'success', `training job ${jobId} done after ${context.roundsCompleted} rounds; last checkpoint ${context.lastCheckpointUri ?? 'none'}`, { jobId, rounds: context.roundsCompleted, checkpointUri: context.lastCheckpointUri, accuracy: current?.accuracy ?? null }));
      } else {
        ctx.emit(this.system(ctx, 'error', `training job ${jobId} ${ended} in round ${context.round}: ${context.failureReason ?? context.cancelReason ?? 'cancelled'}${context.failureDetail === null ? '' : ` (${context.failureDetail})`}`, { jobId, round: context.round, reason: context.failureReason }));
      }
    }
  }

  private emitTrains(job: TrainingJobView, context: FederatedRoundContext, startWeightsSha256: string | null, ctx: Ctx): void {
    const deadlineAtMs = context.roundDeadlineAtMs ?? ctx.nowMs;
    for (const p of job.participants) {
      if (!context.participants.includes(p.nodeId) || context.answered.includes(p.nodeId)) continue;
      ctx.emit({
        type: 'train',
        geozone: this.geozone,
        atMs: ctx.nowMs,
        jobId: job.jobId,
        round: context.round,
        nodeId: p.nodeId,
        modelId: job.spec.modelId,
        datasetShardUri: p.datasetShardUri,
        weightsSha256: startWeightsSha256,
        local: { ...job.spec.local, seed: localSeed(job.spec.local.seed, context.round, p.part) },
        deadlineAtMs,
      });
    }
  }

  private emitAggregate(job: TrainingJobView, ctx: Ctx): void {
    const round = job.rounds[job.rounds.length - 1];
    if (round === undefined) return;
    const { spec } = job;
    ctx.emit({
      type: 'aggregate',
      geozone: this.geozone,
      atMs: ctx.nowMs,
      jobId: job.jobId,
      round: round.round,
      updates: round.updates.map((u) => ({ nodeId: u.nodeId, sampleCount: u.sampleCount, weightsSha256: u.weightsSha256 })),
      evaluationShardUri: formatShardUri({ datasetUri: spec.datasetUri, part: 0, of: 1, scheme: spec.partitioning, seed: spec.local.seed, testFraction: spec.testFraction }),
    });
  }

  private emitCheckpoint(job: TrainingJobView, round: number, weightsSha256: string, ctx: Ctx): void {
    ctx.emit({ type: 'checkpoint', geozone: this.geozone, atMs: ctx.nowMs, jobId: job.jobId, round, weightsSha256, checkpointUri: job.spec.checkpointUri });
  }

  // ---------------------------------------------------------------- notes: the job views

  /** Folds one training note into the views (live, on recovery and in replay alike). */
  applyNote(record: JournalRecord): boolean {
    const e = record.event as Record<string, unknown> & { type: string; jobId?: string };
    if (!e.type.startsWith('training.')) return false;
    if (e.type === 'training.job') {
      const spec = e['spec'] as TrainingJobSpec;
      this.changeMembership();
      const previous = this.jobs.get(spec.jobId);
      this.onUndo(() => (previous === undefined ? this.jobs.delete(spec.jobId) : this.jobs.set(spec.jobId, previous)));
      this.jobs.set(spec.jobId, {
        jobId: spec.jobId,
        geozone: this.geozone,
        spec,
        acceptedAtMs: record.atMs,
        participants: e['participants'] as TrainingJobView['participants'],
        selection: { eligible: e['eligible'] as number, reason: e['reason'] as string },
        state: e['state'] as 'training' | 'failed',
        failureReason: (e['failureReason'] as string | null) ?? null,
        failureDetail: (e['failureDetail'] as string | null) ?? null,
        endedAtMs: e['state'] === 'failed' ? record.atMs : null,
        rounds: [],
      });
      this.evict();
      return true;
    }
    const jobId = e['jobId'] as string;
    const job = this.jobs.get(jobId);
    if (job === undefined) return true;
    const round = job.rounds[job.rounds.length - 1];
    switch (e.type) {
      case 'training.round':
        this.onUndo(() => job.rounds.pop());
        job.rounds.push({
          round: e['round'] as number,
          startedAtMs: record.atMs,
          deadlineAtMs: e['deadlineAtMs'] as number,
          startWeightsSha256: (e['startWeightsSha256'] as string | null) ?? null,
          updates: [],
          dropped: [],
          stragglers: [],
          late: [],
          closedAtMs: null,
          closedBy: null,
          aggregateSha256: null,
          accuracy: null,
          loss: null,
          checkpointUri: null,
          checkpointSha256: null,
        });
        break;
      case 'training.update':
        if (round !== undefined) this.onUndo(() => round.updates.pop());
        round?.updates.push({
          nodeId: e['nodeId'] as string,
          sampleCount: e['sampleCount'] as number,
          weightsSha256: e['weightsSha256'] as string,
          loss: (e['loss'] as number | null) ?? null,
          accuracy: (e['accuracy'] as number | null) ?? null,
          atMs: record.atMs,
        });
        break;
      case 'training.dropped':
        if (round !== undefined) this.onUndo(() => round.dropped.pop());
        round?.dropped.push(e['nodeId'] as string);
        break;
      case 'training.closed':
        if (round !== undefined) {
          this.keepFields(round, ['closedAtMs', 'stragglers', 'closedBy']);
          round.closedAtMs = record.atMs;
          round.stragglers = [...(e['stragglers'] as string[])];
          round.closedBy = (e['closedBy'] as RoundClosedBy | undefined) ?? null;
        }
        break;
      case 'training.late': {
        const late = job.rounds.find((r) => r.round === e['round']);
        if (late !== undefined) this.onUndo(() => late.late.pop());
        late?.late.push(e['nodeId'] as string);
        break;
      }
      case 'training.aggregated':
        if (round !== undefined) {
          this.keepFields(round, ['aggregateSha256', 'accuracy', 'loss']);
          round.aggregateSha256 = e['weightsSha256'] as string;
          round.accuracy = e['accuracy'] as number;
          round.loss = e['loss'] as number;
        }
        break;
      case 'training.checkpoint':
        if (round !== undefined) {
          this.keepFields(round, ['checkpointUri', 'checkpointSha256']);
          round.checkpointUri = e['checkpointUri'] as string;
          round.checkpointSha256 = e['sha256'] as string;
        }
        break;
      case 'training.ended':
        this.keepFields(job, ['state', 'failureReason', 'failureDetail', 'endedAtMs']);
        job.state = e['state'] as TrainingJobView['state'];
        job.failureReason = (e['reason'] as string | null) ?? null;
        job.failureDetail = (e['detail'] as string | null) ?? null;
        job.endedAtMs = record.atMs;
        break;
    }
    return true;
  }

  /** Forgets the oldest ended jobs beyond the limit (in order of acceptance, so replay forgets the same). */
  private evict(): void {
    if (this.jobs.size <= this.config.maxTrainingJobsKept) return;
    for (const [jobId, job] of this.jobs) {
      if (this.jobs.size <= this.config.maxTrainingJobsKept) break;
      if (job.state === 'training') continue;
      this.changeMembership();
      this.onUndo(() => this.jobs.set(jobId, job));
      this.jobs.delete(jobId);
    }
  }

  private onUndo(inverse: () => void): void {
    if (this.inStep) this.undo.push(inverse);
  }

  /** Remembers fields of `target` as they are now, to be put back if the step is undone. */
  private keepFields<T extends object, K extends keyof T>(target: T, keys: readonly K[]): void {
    if (!this.inStep) return;
    const saved = keys.map((key) => [key, target[key]] as const);
    this.undo.push(() => {
      for (const [key, value] of saved) target[key] = value;
    });
  }

  /** A job is about to be added or forgotten: the map's order before it is kept for an undo. */
  private changeMembership(): void {
    if (this.inStep) this.orderBefore ??= [...this.jobs.keys()];
  }

  onActorChanged(actorId: string, kind: string, snapshot: AnyMachineSnapshot | undefined): void {
    if (kind !== TRAINING_KIND) return;
    if (snapshot === undefined) this.active.delete(actorId);
    else this.active.add(actorId);
  }

  beginStep(): void {
    this.inStep = true;
  }

  endStep(kept: boolean): void {
    this.inStep = false;
    if (!kept) {
      for (let i = this.undo.length - 1; i >= 0; i--) (this.undo[i] as () => void)();
      if (this.orderBefore !== undefined) {
        const current = new Map(this.jobs);
        this.jobs.clear();
        for (const jobId of this.orderBefore) {
          const job = current.get(jobId);
          if (job !== undefined) this.jobs.set(jobId, job);
        }
      }
    }
    this.undo.length = 0;
    this.orderBefore = undefined;
  }

  /** A copy: a snapshot is stored after the journal catches up, while the views go on changing. */
  saveState(): TrainingJobView[] {
    return structuredClone([...this.jobs.values()]);
  }

  loadState(saved: unknown): void {
    this.jobs.clear();
    for (const job of (saved as TrainingJobView[] | undefined) ?? []) {
      const copy = structuredClone(job);
      // Views saved before rounds recorded what closed them and who came late read as "not known".
      for (const round of copy.rounds) {
        round.late ??= [];
        round.closedBy ??= null;
      }
      this.jobs.set(copy.jobId, copy);
    }
  }

  private system(ctx: Ctx, severity: 'info' | 'warn' | 'error' | 'success', message: string, details: Record<string, unknown>): RegionEffect {
    return { type: 'system', atMs: ctx.nowMs, severity, message, details: { geozone: this.geozone, ...details } };
  }
}
