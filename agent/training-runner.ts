import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { sha256Hex } from '../runtime/blob-store.js';
import { trainTaskSchema, type TrainingUpdateV1, type TrainTaskV1 } from '../actors/training-wire.js';
import type { TrainingJobIn, TrainingJobOut } from './training-worker.js';
import { updateKey, type UpdateOutbox } from './update-outbox.js';

export interface TrainingRunnerOptions {
  readonly nodeId: string;
  /** Trainings at once, each on its own worker thread. */
  readonly maxConcurrentTrainings: number;
  /** Tasks waiting for a slot; one past it is dropped (the region leaves this node out of that round). */
  readonly maxQueuedTrainings: number;
  /** Job/round pairs remembered to tell a re-sent `train` from a new one. */
  readonly maxRememberedTasks: number;
  readonly outbox: UpdateOutbox;
  readonly onUpdate: (update: TrainingUpdateV1) => void;
  /** The round's starting weights by SHA-256, when the `train` message names them by hash only (Kafka). */
  readonly fetchWeights: (sha256: string) => Promise<Uint8Array | undefined>;
  readonly wallNowMs: () => number;
  readonly logger: Logger;
}

/** The worker's compiled file, beside this one (dist/agent/ or, with a TS loader, agent/). */
const WORKER_URL = new URL('./training-worker.js', import.meta.url);

/**
 * Takes the region's `train` messages (TrainTask v1): validates each, runs the
 * real trainer (training/) on this node's part of the data set on a worker
 * thread, so the agent's own thread keeps reporting and dispatching while it
 * trains, and hands the TrainingUpdate to the outbox and the uplink.
 *
 * The region sends a `train` again after every reconnect until it accepted the
 * update (Kafka may deliver one twice), so a job/round seen before is not trained again: its update is owed
 * already (and re-sent on reconnect by the uplink) or was accepted. A task whose
 * deadline passes before it starts or while it runs is given up: an update
 * after the deadline is not counted.
 */
export class TrainingRunner {
  private readonly seen = new Set<string>();
  private readonly queue: TrainTaskV1[] = [];
  /** Trainings taken from the queue and not finished (reading weights or on a thread). */
  private active = 0;
  private readonly workers = new Set<Worker>();
  private stopping = false;
  trained = 0;
  failed = 0;
  duplicates = 0;
  expired = 0;
  refusedFull = 0;

  constructor(private readonly options: TrainingRunnerOptions) {}

  get size(): number {
    return this.active + this.queue.length;
  }

  offer(message: unknown): void {
    const { logger, nodeId } = this.options;
    const parsed = trainTaskSchema.safeParse(message);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return logger.warn({ issue: issue === undefined ? undefined : `${issue.path.join('.')}: ${issue.message}` }, 'malformed train message: ignored');
    }
    const task = parsed.data;
    if (task['node-id'] !== nodeId) return logger.warn({ nodeId: task['node-id'] }, 'train message for another node: ignored');
    if (this.stopping) return logger.info({ jobId: task['job-id'], round: task.round }, 'stopping: train message not taken');
    const key = updateKey(task['job-id'], task.round);
    if (this.seen.has(key)) {
      this.duplicates++;
      return logger.debug({ jobId: task['job-id'], round: task.round }, 'train message seen before: not trained again');
    }
    if (this.queue.length >= this.options.maxQueuedTrainings) {
      this.refusedFull++;
      return logger.warn({ jobId: task['job-id'], round: task.round, queued: this.queue.length }, 'too many training tasks waiting: this one is dropped');
    }
    this.remember(key);
    this.queue.push(task);
    this.pump();
  }

  /** Takes no new task, drops those waiting and ends the trainings running (their rounds go on without this node). */
  async stop(): Promise<{ abandoned: number }> {
    this.stopping = true;
    const abandoned = this.queue.length + this.active;
    this.queue.length = 0;
    await Promise.all([...this.workers].map((worker) => worker.terminate()));
    return { abandoned };
  }

  private remember(key: string): void {
    this.seen.add(key);
    // Insertion order: the oldest pair goes first; its round closed long ago.
    while (this.seen.size > this.options.maxRememberedTasks) this.seen.delete(this.seen.values().next().value as string);
  }

  private pump(): void {
    while (!this.stopping && this.active < this.options.maxConcurrentTrainings) {
      const task = this.queue.shift();
      if (task === undefined) return;
      this.active++;
      void this.run(task).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async run(task: TrainTaskV1): Promise<void> {
    const { logger, wallNowMs } = this.options;
    const log = { jobId: task['job-id'], round: task.round };
    const deadlineMs = Date.parse(task.deadline);
    if (deadlineMs <= wallNowMs()) {
      this.expired++;
      return logger.warn(log, 'training task past its deadline before it started: skipped');
    }
    let weights: Uint8Array | null = task.weights === null ? null : new Uint8Array(Buffer.from(task.weights, 'base64'));
    const sha = task['weights-sha256'];
    if (weights === null && sha !== null) {
      // On Kafka the starting weights travel by hash: read them from the region's blob topic.
      const fetched = await this.options.fetchWeights(sha).catch((error: unknown) => {
        logger.warn({ ...log, err: error instanceof Error ? error.message : String(error) }, 'could not read the starting weights');
        return undefined;
      });
      if (fetched === undefined || sha256Hex(fetched) !== sha) {
        this.failed++;
        return logger.error({ ...log, sha256: sha }, 'the starting weights of this round could not be found: not trained');
      }
      weights = fetched;
    }
    if (this.stopping) return;
    const leftMs = deadlineMs - wallNowMs();
    if (leftMs <= 0) {
      this.expired++;
      return logger.warn(log, 'training task past its deadline before it started: skipped');
    }
    const hyper = task['hyper-parameters'];
    const job: TrainingJobIn = {
      datasetShardUri: task['dataset-shard-uri'],
      weights,
      options: { epochs: hyper['local-epochs'], learningRate: hyper['learning-rate'], batchSize: hyper['batch-size'], l2: hyper.l2, seed: hyper.seed },
    };
    const startedMs = wallNowMs();
    logger.info({ ...log, shard: task['dataset-shard-uri'] }, 'training');
    const answer = await this.onWorker(job, leftMs);
    if (answer === 'deadline') {
      this.expired++;
      return logger.warn(log, 'training did not finish by the round deadline: stopped');
    }
    if (answer === 'stopped') return;
    if (!answer.ok) {
      this.failed++;
      return logger.error({ ...log, reason: answer.reason }, 'training failed');
    }
    this.trained++;
    const update: TrainingUpdateV1 = {
      'job-id': task['job-id'],
      round: task.round,
      'node-id': this.options.nodeId,
      'sample-count': answer.sampleCount,
      weights: Buffer.from(answer.weights).toString('base64'),
      metrics: { loss: answer.loss, accuracy: answer.accuracy },
      timestamp: new Date(wallNowMs()).toISOString(),
    };
    logger.info({ ...log, samples: answer.sampleCount, accuracy: answer.accuracy, loss: answer.loss, tookMs: wallNowMs() - startedMs }, 'trained: sending the update');
    this.options.outbox.add(update);
    this.options.onUpdate(update);
  }

  /** Runs one job on a thread of its own, ended at `timeoutMs` (an update after the deadline is not counted) or on stop. */
  private onWorker(job: TrainingJobIn, timeoutMs: number): Promise<TrainingJobOut | 'deadline' | 'stopped'> {
    return new Promise((resolve) => {
      const worker = new Worker(WORKER_URL);
      this.workers.add(worker);
      let outcome: TrainingJobOut | 'deadline' | undefined;
      const deadline = setTimeout(() => {
        outcome ??= 'deadline';
        void worker.terminate();
      }, timeoutMs);
      worker.once('message', (answer: TrainingJobOut) => {
        outcome ??= answer;
        void worker.terminate();
      });
      worker.once('error', (error) => {
        outcome ??= { ok: false, reason: `the training thread failed: ${error.message}` };
      });
      worker.once('exit', () => {
        clearTimeout(deadline);
        this.workers.delete(worker);
        resolve(outcome ?? 'stopped');
      });
      worker.postMessage(job);
    });
  }
}
