import type { AnyMachineSnapshot } from 'xstate';
import { classifyTrainingJob, type HpcJobContext, type HpcJobEvent, type TrainingTarget } from '../../machines/hpc-job.js';
import type { GlobalViewContext, ViewSummary } from '../../machines/global-view.js';
import { DEFAULT_AGGREGATE_WHEN } from '../../machines/federated-round.js';
import type { JournalRecord } from '../../runtime/journal.js';
import type { ShardBehaviour, ShardContext } from '../../runtime/shard.js';
import type { RegionalSummary, RegionEffect, RegionInput } from '../region-io.js';
import { defaultAlertConfig, silenceAlert, summaryAlerts, type Alert, type AlertConfig } from './alerts.js';
import { GLOBAL_VIEW_KIND, globalViewActorId, globalViewKind, HPC_JOB_KIND, hpcJobActorId, hpcJobKind } from './actors.js';
import type { CentralInput, HpcObservation, TrainingJob } from './central-io.js';
import { rankGeozones } from './placement.js';
import { hyperFromWire, hyperParametersSchema, regionHyperParameterEntries, regionReadsDataset, regionWritesCheckpoint } from '../training-wire.js';

export interface CentralConfig {
  /**
   * Where staged datasets go: the orchestrator asks for `${stagingUri}/${jobId}/${its file name}`;
   * the data mover says where the copy really landed (a mover may tag or nest it), and that is journaled.
   */
  readonly stagingUri: string;
  /** The regions' summary period (RegionalSummary v1 every 60 s). */
  readonly summaryEveryMs: number;
  readonly alerts: AlertConfig;
  /** A transfer without forward progress for this long fails as stalled (timer wheel). */
  readonly transferStallTimeoutMs: number;
  /** Transfer progress is journaled at most once per this much logical time (plus the last). */
  readonly progressEveryMs: number;
  /** Defaults of a federated job that does not say. */
  readonly federatedDefaults: { readonly rounds: number; readonly minParticipants: number; readonly participants: number; readonly roundDeadlineMs: number; readonly modelId: string };
  /** Jobs remembered (views, duplicate refusal); beyond it the oldest ended ones are forgotten. */
  readonly maxRememberedJobs: number;
}

export const defaultCentralConfig: CentralConfig = {
  stagingUri: 'file:///tmp/arcnet-staging',
  summaryEveryMs: 60_000,
  alerts: defaultAlertConfig,
  transferStallTimeoutMs: 10 * 60_000,
  progressEveryMs: 1_000,
  federatedDefaults: { rounds: 3, minParticipants: 2, participants: 4, roundDeadlineMs: 120_000, modelId: 'default-model' },
  maxRememberedJobs: 100_000,
};

/** What the orchestrator remembers of a job beside its actor (the actor ends; the record stays). */
export interface JobRecord {
  readonly jobId: string;
  readonly job: TrainingJob;
  readonly target: TrainingTarget;
  readonly reason: string;
  readonly submittedAtMs: number;
  /** Federated: the geozone chosen and why (null geozone: none was eligible). */
  readonly placement?: { readonly geozone: string | null; readonly reason: string; readonly ranked: readonly string[] };
  /** HPC: where the data mover staged the dataset and the batch queue's name for the job (once verified). */
  readonly staged?: { readonly stagedUri: string; readonly batchJobName: string };
  /** HPC: the final state and context once the actor ended. */
  readonly ended?: { readonly state: string; readonly atMs: number; readonly context: HpcJobContext };
}

type Ctx = ShardContext<RegionEffect>;
const HPC_FINAL = new Set(['completed', 'failed', 'cancelled']);

export function stagedUriOf(stagingUri: string, jobId: string, datasetUri: string): string {
  const base = datasetUri.replace(/\/+$/, '').split('/').pop() ?? 'dataset';
  return `${stagingUri.replace(/\/+$/, '')}/${jobId}/${base === '' ? 'dataset' : base}`;
}

/**
 * The seed's rules, then one of the federated path's own: a job they would send
 * to a region trains there only if the region can read its dataset-uri (builtin:
 * or file:) and write its checkpoint-uri (file:///). Any other (s3:, globus:, a
 * remote folder) goes to HPC, whose data mover stages the data set from where it
 * is and whose batch job writes the checkpoint: the submitter asked for training
 * and gets it where the data can be reached, rather than a task every region
 * refuses or a refusal for a job central can run.
 */
export function classifyForRegions(job: TrainingJob): { target: TrainingTarget; reason: string } {
  const seed = classifyTrainingJob(job);
  if (seed.target !== 'federated') return seed;
  if (!regionReadsDataset(job.datasetUri)) return { target: 'hpc', reason: 'dataset-uri not readable by a region (only builtin: and file:)' };
  if (!regionWritesCheckpoint(job.checkpointUri)) return { target: 'hpc', reason: 'checkpoint-uri not writable by a region (only file:///)' };
  return seed;
}

/**
 * The central orchestrator's one shard: training jobs are classified (the
 * seed's rule, its reason journaled); federated ones go to the geozone the
 * global view ranks best as FederatedTask v1; HPC ones become hpc-job actors
 * whose data-mover and batch-queue work is asked for as effects (released only
 * once durable) and whose progress comes back as journaled observations.
 * Regional summaries feed one global-view actor per geozone, and the alert
 * detectors run on them in logical time.
 */
export class CentralBehaviour implements ShardBehaviour<RegionInput, RegionEffect> {
  readonly kinds = [hpcJobKind, globalViewKind];
  private readonly config: CentralConfig;
  /** Every job in order of arrival (snapshotted in that order). */
  private readonly jobs = new Map<string, JobRecord>();
  /** Undo log of the step: the job records it changed, as they were. */
  private readonly undo: [string, JobRecord | undefined][] = [];
  private inStep = false;
  /** Derived from actors (onActorChanged): iteration order never reaches a record unsorted. */
  private readonly views = new Map<string, { state: string; context: GlobalViewContext }>();
  private readonly liveHpc = new Map<string, { state: string; context: HpcJobContext }>();

  constructor(config: CentralConfig) {
    this.config = config;
  }

  handle(input: RegionInput, ctx: Ctx): void {
    const central = input as RegionInput & CentralInput;
    switch (central.type) {
      case 'job.submit':
        return this.onJob(central.job, ctx);
      case 'summary.in':
        return this.onSummary(central.summary, ctx);
      case 'hpc.observed':
        return this.onObserved(central.jobId, central.observation, ctx);
      case 'job.cancel':
        return this.onCancel(central.jobId, central.reason, ctx);
      default:
        return; // region inputs mean nothing here
    }
  }

  // ------------------------------------------------------------------ intake

  hasJob(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  private onJob(job: TrainingJob, ctx: Ctx): void {
    if (this.jobs.has(job.jobId)) {
      ctx.emit({ type: 'system', atMs: ctx.nowMs, severity: 'warn', message: `training job ${job.jobId} submitted again: refused as a duplicate`, details: { jobId: job.jobId } });
      return;
    }
    const { target, reason } = classifyForRegions(job);
    ctx.note({ type: 'job.classified', jobId: job.jobId, job: { ...job }, target, reason });
    if (target === 'federated') return this.placeFederated(job, ctx);
    ctx.spawn(HPC_JOB_KIND, hpcJobActorId(job.jobId), {
      jobId: job.jobId,
      datasetUri: job.datasetUri,
      datasetSizeGb: job.datasetSizeGb,
      estimatedFlops: job.estimatedFlops,
      checkpointUri: job.checkpointUri,
      urgency: job.urgency,
      ...(job.sourceNodeId === undefined ? {} : { sourceNodeId: job.sourceNodeId }),
      submittedAtMs: ctx.nowMs,
      transferStallTimeoutMs: this.config.transferStallTimeoutMs,
    });
    // The seed's HPC path starts on arc.bridge.pending: the job awaits its transfer.
    ctx.emit({
      type: 'hpc-pending',
      atMs: ctx.nowMs,
      jobId: job.jobId,
      datasetUri: job.datasetUri,
      datasetSizeGb: job.datasetSizeGb,
      estimatedFlops: job.estimatedFlops,
      checkpointUri: job.checkpointUri,
      urgency: job.urgency,
      reason,
    });
    ctx.emit({ type: 'hpc-command', command: { kind: 'transfer', jobId: job.jobId, sourceUri: job.datasetUri, destinationUri: stagedUriOf(this.config.stagingUri, job.jobId, job.datasetUri) } });
  }

  private placeFederated(job: TrainingJob, ctx: Ctx): void {
    const d = this.config.federatedDefaults;
    const minParticipants = job.minParticipants ?? d.minParticipants;
    // Only the names a region's trainer reads go to it (its schema refuses any other);
    // intake refused values it would not take, so a failure here is a job journaled
    // before intake checked them: it is not placed rather than refused by its region.
    const hyper = hyperParametersSchema.safeParse(regionHyperParameterEntries(job.hyperParameters ?? {}));
    const candidates = [...this.views.entries()].map(([geozone, v]) => ({ geozone, silent: v.state === 'silent', view: v.context }));
    const placement = hyper.success ? rankGeozones(candidates, minParticipants) : { geozone: null, reason: `hyper-parameters a region refuses: ${hyper.error.issues.map((i) => i.path.join('.')).join(', ')}`, ranked: [] };
    ctx.note({ type: 'job.placed', jobId: job.jobId, geozone: placement.geozone, reason: placement.reason, ranked: [...placement.ranked] });
    if (placement.geozone === null || !hyper.success) {
      ctx.emit({ type: 'system', atMs: ctx.nowMs, severity: 'warn', message: `federated job ${job.jobId} not placed: ${placement.reason}`, details: { jobId: job.jobId, reason: placement.reason } });
      return;
    }
    ctx.emit({
      type: 'federated-task',
      atMs: ctx.nowMs,
      task: {
        jobId: job.jobId,
        geozone: placement.geozone,
        modelId: job.modelId ?? d.modelId,
        datasetUri: job.datasetUri,
        rounds: job.rounds ?? d.rounds,
        minParticipants,
        aggregateWhen: DEFAULT_AGGREGATE_WHEN,
        participants: Math.max(minParticipants, job.participants ?? d.participants),
        roundDeadlineMs: job.roundDeadlineMs ?? d.roundDeadlineMs,
        checkpointUri: job.checkpointUri,
        ...hyperFromWire(hyper.data),
      },
      reason: placement.reason,
    });
  }

  // ------------------------------------------------------------------ global view

  private onSummary(summary: RegionalSummary, ctx: Ctx): void {
    const actorId = globalViewActorId(summary.geozoneId);
    const view: ViewSummary = {
      reportedAtMs: Math.max(0, Math.trunc(summary.atMs)),
      receivedAtMs: ctx.nowMs,
      totalNodes: summary.totalNodes,
      activeNodes: summary.activeNodes,
      avgGpuUtil: summary.avgGpuUtil,
      energyBreakdown: { ...summary.energyBreakdown },
      openReservations: summary.openReservations,
    };
    const before = ctx.snapshot(actorId);
    if (before === undefined) {
      const a = this.config.alerts;
      ctx.spawn(GLOBAL_VIEW_KIND, actorId, { geozone: summary.geozoneId, summaryEveryMs: this.config.summaryEveryMs, silentPeriods: a.silentPeriods, recentWindow: a.recentWindow, summary: view });
      return;
    }
    const alerts = summaryAlerts(before.context as GlobalViewContext, view, this.config.alerts);
    const wasSilent = before.value === 'silent';
    ctx.send(actorId, { type: 'summary', atMs: ctx.nowMs, summary: view });
    if (wasSilent) this.alert(ctx, { rule: 'region-silent', severity: 'info', message: `${summary.geozoneId}: regional summaries again`, details: { geozone: summary.geozoneId, rule: 'region-silent', explanation: 'a summary arrived after silence' } });
    for (const alert of alerts) this.alert(ctx, alert);
  }

  private alert(ctx: Ctx, alert: Alert): void {
    ctx.emit({ type: 'system', atMs: ctx.nowMs, severity: alert.severity, message: alert.message, details: { ...alert.details } });
  }

  // ------------------------------------------------------------------ HPC path

  private onObserved(jobId: string, observation: HpcObservation, ctx: Ctx): void {
    const actorId = hpcJobActorId(jobId);
    const snapshot = ctx.snapshot(actorId);
    if (snapshot === undefined) return; // ended (or never ours): a late report changes nothing
    const state = snapshot.value as string;
    const context = snapshot.context as HpcJobContext;
    const at = ctx.nowMs;
    let last: AnyMachineSnapshot = snapshot;
    const send = (event: HpcJobEvent): string => {
      last = ctx.send(actorId, event);
      return last.value as string;
    };
    let after = state;
    switch (observation.kind) {
      case 'transfer.started':
        if (state === 'pending') after = send({ type: 'transfer.started', atMs: at, transferId: observation.transferId });
        break;
      case 'transfer.progress': {
        if (state !== 'transferring') break;
        // Bounded rate: one progress record per progressEveryMs of logical time.
        const last = context.lastProgressAtMs ?? context.transferStartedAtMs ?? 0;
        if (context.lastProgressAtMs !== null && at - last < this.config.progressEveryMs) break;
        if (observation.bytesDone <= context.bytesTransferred) break;
        send({ type: 'transfer.progress', atMs: at, bytesTransferred: observation.bytesDone, progress: fractionOf(observation.bytesDone, observation.bytesTotal, context) });
        break;
      }
      case 'transfer.verified': {
        if (state !== 'transferring') break;
        if (observation.bytesDone > context.bytesTransferred) send({ type: 'transfer.progress', atMs: at, bytesTransferred: observation.bytesDone, progress: 1 });
        after = send({ type: 'transfer.completed', atMs: at });
        // Journaled: the batch job (and a restart that submits it) must read where the copy really is.
        const { stagedUri, batchJobName } = observation;
        ctx.note({ type: 'job.staged', jobId, stagedUri, batchJobName });
        ctx.emit({
          type: 'hpc-ingress',
          atMs: at,
          jobId,
          datasetUri: context.datasetUri,
          stagedUri,
          batchJobName,
          datasetSizeGb: context.datasetSizeGb,
          estimatedFlops: context.estimatedFlops,
          checkpointUri: context.checkpointUri ?? '',
          urgency: context.urgency,
          reason: this.jobs.get(jobId)?.reason ?? '',
        });
        ctx.emit({ type: 'hpc-command', command: { kind: 'submit', jobId, stagedUri, checkpointUri: context.checkpointUri ?? '', datasetUri: context.datasetUri } });
        break;
      }
      case 'transfer.failed':
        if (state === 'pending' || state === 'transferring') after = send({ type: 'transfer.failed', atMs: at, reason: observation.reason.slice(0, 1024) || 'transfer failed' });
        break;
      case 'queue.submitted':
        if (state === 'queued' && context.schedulerJobId === null) {
          send({ type: 'queue.submitted', atMs: at, schedulerJobId: observation.queueJobId });
          ctx.emit({ type: 'hpc-command', command: { kind: 'watch-queue', jobId, queueJobId: observation.queueJobId } });
        }
        break;
      case 'queue.rejected':
        if (state === 'queued') after = send({ type: 'queue.rejected', atMs: at, reason: observation.reason.slice(0, 1024) || 'rejected' });
        break;
      case 'queue.state':
        after = this.onQueueState(state, observation, send, at);
        break;
    }
    if (HPC_FINAL.has(after)) this.ended(jobId, last, ctx);
  }

  private onQueueState(state: string, o: Extract<HpcObservation, { kind: 'queue.state' }>, send: (event: HpcJobEvent) => string, at: number): string {
    if (state !== 'queued' && state !== 'running') return state;
    const detail = (fallback: string): string => `${o.rawState}${o.reason === null ? '' : `: ${o.reason}`}${o.exitCode === null ? '' : ` (exit ${o.exitCode})`}`.slice(0, 1024) || fallback;
    let now = state;
    // A job seen done without having been seen running ran in between polls: both are journaled.
    if (now === 'queued' && (o.state === 'running' || o.state === 'completed' || o.state === 'failed')) now = send({ type: 'job.started', atMs: at, schedulerJobId: o.queueJobId });
    if (o.state === 'completed') now = send({ type: 'job.completed', atMs: at });
    else if (o.state === 'failed') now = send({ type: 'job.failed', atMs: at, reason: detail('failed') });
    else if (o.state === 'cancelled') now = send({ type: 'cancel', atMs: at, reason: `cancelled in the batch queue (${detail('cancelled')})` });
    return now;
  }

  private onCancel(jobId: string, reason: string, ctx: Ctx): void {
    const actorId = hpcJobActorId(jobId);
    const snapshot = ctx.snapshot(actorId);
    if (snapshot === undefined) return;
    const context = snapshot.context as HpcJobContext;
    const after = ctx.send(actorId, { type: 'cancel', atMs: ctx.nowMs, reason: reason.slice(0, 1024) || 'cancelled' });
    ctx.emit({ type: 'hpc-command', command: { kind: 'cancel', jobId, transferId: context.transferId, queueJobId: context.schedulerJobId } });
    this.ended(jobId, after, ctx);
  }

  /** The actor reached a final state: its last context becomes the job's record (the actor leaves memory). */
  private ended(jobId: string, final: AnyMachineSnapshot, ctx: Ctx): void {
    ctx.note({ type: 'job.ended', jobId, state: final.value as string, context: { ...(final.context as HpcJobContext) } });
  }

  onDeadline(actorId: string, kind: string, atMs: number, ctx: Ctx): void {
    if (kind === GLOBAL_VIEW_KIND) {
      const before = ctx.snapshot(actorId);
      if (before === undefined || before.value === 'silent') return;
      if (ctx.send(actorId, { type: 'deadline', atMs }).value === 'silent') this.alert(ctx, silenceAlert(before.context as GlobalViewContext, atMs, this.config.alerts));
      return;
    }
    if (kind === HPC_JOB_KIND) {
      const before = ctx.snapshot(actorId);
      if (before === undefined) return;
      const context = before.context as HpcJobContext;
      const after = ctx.send(actorId, { type: 'deadline', atMs });
      if (HPC_FINAL.has(after.value as string)) {
        // A stalled transfer is stopped, so it cannot finish behind a job that already failed.
        ctx.emit({ type: 'hpc-command', command: { kind: 'cancel', jobId: context.jobId, transferId: context.transferId, queueJobId: null } });
        this.ended(context.jobId, after, ctx);
      }
    }
  }

  /** After a restart: the driver re-attaches to every open job's transfer or queue job (by key and name). */
  onRecovered(ctx: Ctx): void {
    for (const jobId of [...this.liveHpc.keys()].sort()) {
      const live = this.liveHpc.get(jobId);
      if (live === undefined) continue;
      const c = live.context;
      if (live.state === 'pending' || live.state === 'transferring') {
        ctx.emit({ type: 'hpc-command', command: { kind: 'transfer', jobId, sourceUri: c.datasetUri, destinationUri: stagedUriOf(this.config.stagingUri, jobId, c.datasetUri) } });
      } else if ((live.state === 'queued' || live.state === 'running') && c.schedulerJobId !== null) {
        ctx.emit({ type: 'hpc-command', command: { kind: 'watch-queue', jobId, queueJobId: c.schedulerJobId } });
      } else if (live.state === 'queued') {
        const stagedUri = this.jobs.get(jobId)?.staged?.stagedUri ?? stagedUriOf(this.config.stagingUri, jobId, c.datasetUri);
        ctx.emit({ type: 'hpc-command', command: { kind: 'submit', jobId, stagedUri, checkpointUri: c.checkpointUri ?? '', datasetUri: c.datasetUri } });
      }
    }
  }

  onActorChanged(actorId: string, kind: string, snapshot: AnyMachineSnapshot | undefined): void {
    if (kind === GLOBAL_VIEW_KIND) {
      const geozone = actorId.slice(actorId.indexOf('/') + 1);
      if (snapshot === undefined) this.views.delete(geozone);
      else this.views.set(geozone, { state: snapshot.value as string, context: snapshot.context as GlobalViewContext });
    } else if (kind === HPC_JOB_KIND) {
      const jobId = actorId.slice(actorId.indexOf('/') + 1);
      if (snapshot === undefined || HPC_FINAL.has(snapshot.value as string)) this.liveHpc.delete(jobId);
      else this.liveHpc.set(jobId, { state: snapshot.value as string, context: snapshot.context as HpcJobContext });
    }
  }

  // ------------------------------------------------------------------ job records (shard-level notes)

  applyNote(record: JournalRecord): void {
    const e = record.event;
    const jobId = e['jobId'] as string | undefined;
    if (jobId === undefined) return;
    const before = this.jobs.get(jobId);
    if (e.type === 'job.classified') {
      this.change(jobId, { jobId, job: e['job'] as TrainingJob, target: e['target'] as TrainingTarget, reason: e['reason'] as string, submittedAtMs: record.atMs });
      this.forgetOldest();
    } else if (e.type === 'job.placed' && before !== undefined) {
      this.change(jobId, { ...before, placement: { geozone: e['geozone'] as string | null, reason: e['reason'] as string, ranked: e['ranked'] as string[] } });
    } else if (e.type === 'job.staged' && before !== undefined) {
      this.change(jobId, { ...before, staged: { stagedUri: e['stagedUri'] as string, batchJobName: e['batchJobName'] as string } });
    } else if (e.type === 'job.ended' && before !== undefined) {
      this.change(jobId, { ...before, ended: { state: e['state'] as string, atMs: record.atMs, context: e['context'] as HpcJobContext } });
    }
  }

  private change(jobId: string, next: JobRecord | undefined): void {
    if (this.inStep) this.undo.push([jobId, this.jobs.get(jobId)]);
    if (next === undefined) this.jobs.delete(jobId);
    else this.jobs.set(jobId, next);
  }

  /** Bounded memory: past the limit, the oldest jobs that have ended are forgotten (in arrival order, so replay forgets the same). */
  private forgetOldest(): void {
    if (this.jobs.size <= this.config.maxRememberedJobs) return;
    for (const [jobId, job] of this.jobs) {
      if (this.jobs.size <= this.config.maxRememberedJobs) return;
      if (job.target === 'federated' || job.ended !== undefined) this.change(jobId, undefined);
    }
  }

  beginStep(): void {
    this.inStep = true;
    this.undo.length = 0;
  }

  endStep(kept: boolean): void {
    this.inStep = false;
    if (!kept) {
      for (let i = this.undo.length - 1; i >= 0; i--) {
        const [jobId, before] = this.undo[i] as [string, JobRecord | undefined];
        if (before === undefined) this.jobs.delete(jobId);
        else this.jobs.set(jobId, before);
      }
      // Deleting and re-adding moved restored jobs to the end: put arrival order back.
      const ordered = [...this.jobs.values()].sort((a, b) => a.submittedAtMs - b.submittedAtMs);
      if (ordered.length > 0) {
        this.jobs.clear();
        for (const job of ordered) this.jobs.set(job.jobId, job);
      }
    }
    this.undo.length = 0;
  }

  saveState(): unknown {
    return { jobs: [...this.jobs.values()] };
  }

  loadState(state: unknown): void {
    this.jobs.clear();
    for (const job of (state as { jobs?: JobRecord[] } | undefined)?.jobs ?? []) this.jobs.set(job.jobId, job);
  }

  // ------------------------------------------------------------------ views (API)

  jobList(): readonly JobRecord[] {
    return [...this.jobs.values()];
  }

  job(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  liveJob(jobId: string): { state: string; context: HpcJobContext } | undefined {
    return this.liveHpc.get(jobId);
  }

  /**
   * What the orchestrator's metrics show, from its state (journal and snapshots), so a restart
   * keeps them: jobs by class and state, bytes staged, queue submissions, summaries folded.
   */
  figures(): { jobs: { target: TrainingTarget; state: string; count: number }[]; transferredBytes: number; queueSubmissions: number; summariesFolded: number } {
    const counts = new Map<string, { target: TrainingTarget; state: string; count: number }>();
    let transferredBytes = 0;
    let queueSubmissions = 0;
    for (const record of this.jobs.values()) {
      const live = this.liveHpc.get(record.jobId);
      const state = record.target === 'federated' ? (record.placement?.geozone === null ? 'unplaced' : 'published') : (live?.state ?? record.ended?.state ?? 'pending');
      const key = `${record.target}/${state}`;
      const row = counts.get(key) ?? { target: record.target, state, count: 0 };
      row.count++;
      counts.set(key, row);
      const context = live?.context ?? record.ended?.context;
      if (context === undefined) continue;
      transferredBytes += context.bytesTransferred;
      if (context.schedulerJobId !== null) queueSubmissions++;
    }
    let summariesFolded = 0;
    for (const view of this.views.values()) summariesFolded += view.context.summaries;
    return { jobs: [...counts.values()].sort((a, b) => (a.target === b.target ? (a.state < b.state ? -1 : 1) : a.target < b.target ? -1 : 1)), transferredBytes, queueSubmissions, summariesFolded };
  }

  globalView(): { geozone: string; state: string; context: GlobalViewContext }[] {
    return [...this.views.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([geozone, v]) => ({ geozone, ...v }));
  }
}

function fractionOf(bytesDone: number, bytesTotal: number | null, context: HpcJobContext): number {
  const total = bytesTotal ?? context.datasetSizeGb * 1e9;
  if (total <= 0) return context.progress;
  // Never 1 before verification, and never lower than what was journaled.
  return Math.max(context.progress, Math.min(0.999, bytesDone / total));
}

