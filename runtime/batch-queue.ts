export type BatchJobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export interface BatchJobSpec { readonly name: string; readonly command: readonly string[]; readonly workDir: string;
  readonly env: Readonly<Record<string, string>>; readonly timeLimitMinutes: number }
export interface BatchJobStatus { readonly queueJobId: string; readonly name: string; readonly state: BatchJobState;
  readonly rawState: string; readonly exitCode: number | null; readonly reason: string | null }
export interface BatchQueue {
  /** Submits unless a job of that name exists already (looked up first): a crash between submit and journal never gives two jobs. */
  submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }>;
  status(queueJobId: string): Promise<BatchJobStatus>;
  findByName(name: string): Promise<BatchJobStatus | undefined>;
  cancel(queueJobId: string): Promise<void>;
}
