import type { BatchJobSpec, BatchJobStatus, BatchQueue } from '../../runtime/batch-queue.js';
import type { Scheduler } from '../../runtime/clock.js';
import { stagedLocation, type DataMover, type TransferRequest, type TransferStatus } from '../../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { CentralInput, HpcCommand, HpcObservation } from './central-io.js';

export interface HpcDriverOptions {
  readonly mover: DataMover;
  readonly queue: BatchQueue;
  readonly scheduler: Scheduler;
  /** Hands an observation to the orchestrator's shard (which journals it); throws when the shard refuses. */
  readonly observe: (input: Extract<CentralInput, { type: 'hpc.observed' }>) => void;
  /** The batch job that trains on a staged dataset (named after the job id by the driver). */
  readonly jobSpec: (job: { jobId: string; stagedUri: string; checkpointUri: string; datasetUri: string }) => Omit<BatchJobSpec, 'name'>;
  /** How often a live transfer or queue job is polled. */
  readonly pollEveryMs: number;
  /** What went wrong talking to the mover or the queue (retried). */
  readonly onError: (error: unknown, context: Record<string, unknown>) => void;
}

/** Jobs followed at once; beyond it new work waits for a slot (every limit explicit). */
export const MAX_FOLLOWED_JOBS = 10_000;

/**
 * Drives the HPC path's outside world from the orchestrator's released
 * commands: the data mover copies (by key = job id, so a restart finds the same
 * copy), the batch queue runs (by name = job id, looked up before any submit),
 * and what they are seen to do goes back to the shard as observations, which
 * the shard journals and turns into hpc-job events. The driver keeps nothing
 * that matters: after a crash the shard's recovery asks it again.
 */
export class HpcDriver {
  private readonly options: HpcDriverOptions;
  /** One follower per job; a new command for the job replaces the old one. */
  private readonly followers = new Map<string, { cancelled: boolean; cancelTimer?: () => void }>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(options: HpcDriverOptions) {
    this.options = options;
  }

  onCommand(command: HpcCommand): void {
    if (this.stopped) return;
    switch (command.kind) {
      case 'transfer':
        return this.follow(command.jobId, (f) => this.transfer(command.jobId, { key: command.jobId, sourceUri: command.sourceUri, destinationUri: command.destinationUri }, f));
      case 'submit':
        return this.follow(command.jobId, (f) => this.submit(command, f));
      case 'watch-queue':
        return this.follow(command.jobId, (f) => this.watchQueue(command.jobId, command.queueJobId, f));
      case 'cancel':
        this.unfollow(command.jobId);
        this.track(this.cancel(command));
        return;
    }
  }

  /** Stops following (nothing outside is cancelled: a restarted orchestrator picks the work up again). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const jobId of [...this.followers.keys()]) this.unfollow(jobId);
    await Promise.all([...this.inFlight]);
  }

  // ------------------------------------------------------------------ following

  private follow(jobId: string, run: (follower: { cancelled: boolean }) => Promise<void>): void {
    this.unfollow(jobId);
    if (this.followers.size >= MAX_FOLLOWED_JOBS) {
      this.options.onError(new ArcError(ErrorCodes.OVERLOADED, `more than ${MAX_FOLLOWED_JOBS} HPC jobs followed at once`), { jobId });
      return;
    }
    const follower = { cancelled: false };
    this.followers.set(jobId, follower);
    this.track(
      run(follower).finally(() => {
        if (this.followers.get(jobId) === follower) this.followers.delete(jobId);
      }),
    );
  }

  private unfollow(jobId: string): void {
    const follower = this.followers.get(jobId);
    if (follower === undefined) return;
    follower.cancelled = true;
    follower.cancelTimer?.();
    this.followers.delete(jobId);
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.options.onError(error, {}));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private wait(follower: { cancelled: boolean; cancelTimer?: () => void }, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (follower.cancelled) return resolve(false);
      follower.cancelTimer = this.options.scheduler.after(ms, () => resolve(!follower.cancelled));
      const previous = follower.cancelTimer;
      follower.cancelTimer = () => {
        previous();
        resolve(false);
      };
    });
  }

  /** Calls the mover or the queue until it answers (each failure reported, then retried after a pause). */
  private async attempt<T>(follower: { cancelled: boolean }, what: string, jobId: string, call: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      if (follower.cancelled) return undefined;
      try {
        return await call();
      } catch (error) {
        if (error instanceof ArcError && error.code === ErrorCodes.VALIDATION) throw error;
        this.options.onError(error, { jobId, what, attempt });
        if (!(await this.wait(follower, Math.min(30_000, this.options.pollEveryMs * 2 ** Math.min(attempt, 6))))) return undefined;
      }
    }
  }

  private observe(jobId: string, observation: HpcObservation, follower: { cancelled: boolean }): void {
    if (follower.cancelled || this.stopped) return;
    try {
      this.options.observe({ type: 'hpc.observed', jobId, observation });
    } catch (error) {
      // An overloaded or stopping shard: the next poll reports again (observations are idempotent).
      this.options.onError(error, { jobId, observation: observation.kind });
    }
  }

  // ------------------------------------------------------------------ transfer

  private async transfer(jobId: string, request: TransferRequest, follower: { cancelled: boolean }): Promise<void> {
    let started = await this.attempt(follower, 'transfer start', jobId, () => this.options.mover.start(request));
    if (started === undefined) return;
    this.observe(jobId, { kind: 'transfer.started', transferId: started.transferId }, follower);
    let status: TransferStatus = started;
    // A copy started again (the mover forgot the first one) counts only the bytes it still has to
    // move; what the first one moved is added back so the progress shown never goes backwards.
    let movedBefore = 0;
    let firstTotal: number | null = started.bytesTotal;
    let bestDone = 0;
    for (;;) {
      if (status.state === 'running') {
        const total = firstTotal ?? status.bytesTotal;
        if (status.bytesTotal !== null && firstTotal === null) firstTotal = status.bytesTotal;
        bestDone = Math.max(bestDone, movedBefore + status.bytesDone);
        if (bestDone > 0) this.observe(jobId, { kind: 'transfer.progress', bytesDone: total === null ? bestDone : Math.min(bestDone, total), bytesTotal: total }, follower);
        if (!(await this.wait(follower, this.options.pollEveryMs))) return;
        const transferId = started.transferId;
        const next = await this.attempt(follower, 'transfer status', jobId, async () => {
          try {
            return await this.options.mover.status(transferId);
          } catch (error) {
            // rclone's rcd forgets a copy after its job expiry or a restart: start it again (complete files are skipped).
            if (error instanceof ArcError && error.code === ErrorCodes.UNKNOWN_QUEUE_ITEM) return undefined;
            throw error;
          }
        });
        if (follower.cancelled) return;
        if (next === undefined) {
          const again = await this.attempt(follower, 'transfer restart', jobId, () => this.options.mover.start(request));
          if (again === undefined) return;
          started = again;
          movedBefore = bestDone;
          if (again.bytesTotal !== null && firstTotal !== null) movedBefore = Math.max(movedBefore, firstTotal - again.bytesTotal);
          status = again;
          continue;
        }
        status = next;
        continue;
      }
      if (status.state === 'succeeded') {
        const verdict = await this.attempt(follower, 'transfer verify', jobId, () => this.options.mover.verify(request));
        if (verdict === undefined) return;
        const moved = Math.max(bestDone, firstTotal ?? 0, status.bytesDone);
        // The staged location and the queue's job name as the adapters make them, so HpcJob v1 names what is really there.
        const stagedUri = stagedLocation(this.options.mover, request);
        const batchJobName = this.options.queue.nameOf?.(jobId) ?? jobId;
        if (verdict.ok) this.observe(jobId, { kind: 'transfer.verified', bytesDone: moved, detail: verdict.detail.slice(0, 512), stagedUri, batchJobName }, follower);
        else this.observe(jobId, { kind: 'transfer.failed', reason: `checksum mismatch: ${verdict.detail}`.slice(0, 1024) }, follower);
        return;
      }
      if (status.state === 'failed') this.observe(jobId, { kind: 'transfer.failed', reason: status.error ?? 'transfer failed' }, follower);
      // cancelled: the job was cancelled (or stalled) and says so itself.
      return;
    }
  }

  // ------------------------------------------------------------------ batch queue

  private async submit(command: Extract<HpcCommand, { kind: 'submit' }>, follower: { cancelled: boolean }): Promise<void> {
    const spec: BatchJobSpec = { ...this.options.jobSpec(command), name: command.jobId };
    let submitted: (BatchJobStatus & { resubmitted: boolean }) | undefined;
    try {
      submitted = await this.attempt(follower, 'queue submit', command.jobId, () => this.options.queue.submit(spec));
    } catch (error) {
      this.observe(command.jobId, { kind: 'queue.rejected', reason: (error as Error).message.slice(0, 1024) }, follower);
      return;
    }
    if (submitted === undefined) return;
    // The shard journals the queue id, then asks to watch it (write-ahead: a restart finds it by name either way).
    this.observe(command.jobId, { kind: 'queue.submitted', queueJobId: submitted.queueJobId, resubmitted: submitted.resubmitted }, follower);
  }

  private async watchQueue(jobId: string, queueJobId: string, follower: { cancelled: boolean }): Promise<void> {
    let last = '';
    for (;;) {
      const status = await this.attempt(follower, 'queue status', jobId, () => this.queueStatusOrForgotten(queueJobId));
      if (status === undefined) return;
      if (status.state !== 'queued' && status.state !== last) {
        this.observe(jobId, { kind: 'queue.state', queueJobId, state: status.state, rawState: status.rawState, exitCode: status.exitCode, reason: status.reason }, follower);
        last = status.state;
      }
      if (status.state === 'completed' || status.state === 'failed' || status.state === 'cancelled') return;
      if (!(await this.wait(follower, this.options.pollEveryMs))) return;
    }
  }

  /**
   * The queue job's status; a job the queue no longer knows (Slurm forgets finished jobs after
   * MinJobAge, so after a long outage of the orchestrator) ended unseen: it is reported failed with
   * where to look, rather than submitted again or polled forever.
   */
  private async queueStatusOrForgotten(queueJobId: string): Promise<BatchJobStatus> {
    try {
      return await this.options.queue.status(queueJobId);
    } catch (error) {
      if (!(error instanceof ArcError && error.code === ErrorCodes.UNKNOWN_QUEUE_ITEM)) throw error;
      return {
        queueJobId,
        name: '',
        state: 'failed',
        rawState: 'FORGOTTEN',
        exitCode: null,
        reason: `the batch queue no longer knows job ${queueJobId}: it ended while the orchestrator was not watching, long enough ago to be forgotten; its output file and checkpoint say how it went`,
      };
    }
  }

  // ------------------------------------------------------------------ cancel

  private async cancel(command: Extract<HpcCommand, { kind: 'cancel' }>): Promise<void> {
    const { mover, queue } = this.options;
    // What the journal does not know yet (a crash between the call and its record) is found by key and name.
    // A journaled transfer id the mover forgot (its copy was started again since) is found by key.
    const journaled = command.transferId === null ? undefined : await mover.status(command.transferId).catch(() => undefined);
    const transfer = journaled ?? (await mover.find(command.jobId));
    const transferId = transfer?.transferId;
    if (transferId !== undefined) {
      const status = transfer?.state === 'running' ? await mover.status(transferId).catch(() => undefined) : transfer;
      if (status?.state === 'running') await mover.cancel(transferId);
    }
    const queueJobId = command.queueJobId ?? (await queue.findByName(command.jobId))?.queueJobId;
    if (queueJobId !== undefined) {
      const status = await queue.status(queueJobId).catch(() => undefined);
      if (status !== undefined && (status.state === 'queued' || status.state === 'running')) await queue.cancel(queueJobId);
    }
  }
}
