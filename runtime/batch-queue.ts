/**
 * The BatchQueue port: hands a command to a batch scheduler (a supercomputer's queue) and
 * follows it to its end. Jobs are named by the caller, and a name is looked up before any
 * submission, so a caller that crashed between submitting and recording the queue's job id
 * finds its job again instead of submitting a second one.
 * Adapters: Slurm's command-line tools (adapters/slurm), a simulated queue on simulated time
 * (simulations/).
 */
export type BatchJobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface BatchJobSpec {
  /** Unique per job, stable across restarts of the caller: [A-Za-z0-9._-], at most 128 characters. */
  readonly name: string;
  /** argv of the job's command (no shell), run in workDir with env added to the queue's environment. */
  readonly command: readonly string[];
  readonly workDir: string;
  readonly env: Readonly<Record<string, string>>;
  readonly timeLimitMinutes: number;
}

export interface BatchJobStatus {
  readonly queueJobId: string;
  readonly name: string;
  readonly state: BatchJobState;
  /** The queue's own word for the state (Slurm: PENDING, RUNNING, TIMEOUT, ...), for operators. */
  readonly rawState: string;
  /** The command's exit code once it ended (null before, or when the queue does not say). */
  readonly exitCode: number | null;
  /** The queue's reason (why pending, why failed), null when it gives none. */
  readonly reason: string | null;
}

export interface BatchQueue {
  /** Submits unless a job of that name exists already (looked up first): a crash between submit and journal never gives two jobs. */
  submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }>;
  status(queueJobId: string): Promise<BatchJobStatus>;
  findByName(name: string): Promise<BatchJobStatus | undefined>;
  cancel(queueJobId: string): Promise<void>;
  /** The name the queue gives a job submitted as `name`, when it is not `name` itself (a queue that tags names). */
  nameOf?(name: string): string;
}

export const BATCH_JOB_NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** Longest time limit a spec may ask for (Slurm's own maximum is larger; a week bounds a typo). */
export const MAX_BATCH_TIME_LIMIT_MINUTES = 7 * 24 * 60;
/** Bounds on a spec, so a bad caller cannot hand the queue an unbounded script. */
export const MAX_BATCH_COMMAND_ARGS = 256;
export const MAX_BATCH_COMMAND_BYTES = 64 * 1024;
export const MAX_BATCH_ENV_ENTRIES = 128;

export function isTerminalBatchJobState(state: BatchJobState): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}
