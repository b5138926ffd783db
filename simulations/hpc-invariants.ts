import type { JournalRecord } from '../runtime/journal.js';

/**
 * The central orchestrator's invariants, read from its journal (hpc-job actor
 * records and the shard's `job.*` notes), independently of the orchestrator:
 * - every job ends exactly once (one final state, nothing after it, one `job.ended` note);
 * - no job is queued before its transfer completed and was verified (the
 *   machine's `transfer.completed` is journaled only on a verified copy; a queue
 *   submission or a start before it, or one without a started transfer, is wrong);
 * - progress never goes backwards (bytes moved and the fraction shown);
 * - never two queue submissions for one job (one queue job id per job);
 * - classification matches the rule, written out again here: FLOPs > 1e18,
 *   dataset > 100 GB or urgency critical → HPC; else HPC too when a region cannot
 *   read the dataset (only builtin: and file:) or write the checkpoint (only
 *   file:///); else federated. An hpc-job actor for a federated job is wrong too.
 * The vocabulary below (kind, states, event and note types) is the whole contract.
 */

export type HpcViolationRule = 'job-not-ended-once' | 'job-queued-before-verified' | 'job-progress-backwards' | 'job-two-queue-submissions' | 'job-classification-wrong';

const HPC_KIND = 'hpc-job';
const HPC_PREFIX = 'hpc-job/';
const FINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);
const AFTER_TRANSFER: ReadonlySet<string> = new Set(['queued', 'running']);

interface HpcModel {
  state: string;
  transferStarted: boolean;
  transferCompleted: boolean;
  finals: number;
  endedNotes: number;
  bytes: number;
  progress: number;
  queueJobIds: Set<string>;
  submissions: number;
}

export interface JobTally {
  readonly classified: { hpc: number; federated: number };
  /** HPC jobs by final state, and those still open at the end of the journal. */
  readonly hpc: Record<string, number>;
  readonly hpcOpen: number;
  /** Federated jobs the orchestrator published to a geozone, and those it could not place. */
  readonly placed: number;
  readonly notPlaced: number;
}

export class HpcJobModel {
  private readonly targets = new Map<string, string>();
  private readonly jobs = new Map<string, HpcModel>();
  private placed = 0;
  private notPlaced = 0;

  constructor(private readonly report: (rule: HpcViolationRule, record: JournalRecord, detail: string) => void) {}

  /** Whether a record is one this model reads. */
  static reads(record: JournalRecord): boolean {
    return record.kind === HPC_KIND || (record.actorId === '@shard' && record.event.type.startsWith('job.'));
  }

  apply(record: JournalRecord): void {
    if (record.kind === HPC_KIND) return this.applyActor(record);
    const e = record.event as Record<string, unknown> & { type: string };
    const jobId = e['jobId'] as string;
    switch (e.type) {
      case 'job.classified':
        this.targets.set(jobId, e['target'] as string);
        this.checkClassification(jobId, e['job'] as Record<string, unknown>, e['target'] as string, record);
        return;
      case 'job.placed':
        if (e['geozone'] === null) this.notPlaced++;
        else this.placed++;
        return;
      case 'job.ended': {
        const job = this.jobs.get(jobId);
        if (job === undefined) return this.report('job-not-ended-once', record, `job ${jobId} ended without an hpc-job actor`);
        job.endedNotes++;
        if (job.endedNotes > 1) this.report('job-not-ended-once', record, `job ${jobId} ended ${job.endedNotes} times`);
        if (!FINAL.has(job.state) || e['state'] !== job.state) this.report('job-not-ended-once', record, `job ${jobId} noted ended as ${String(e['state'])} while its actor is ${job.state}`);
        return;
      }
    }
  }

  private checkClassification(jobId: string, job: Record<string, unknown>, target: string, record: JournalRecord): void {
    const flops = job['estimatedFlops'] as number;
    const sizeGb = job['datasetSizeGb'] as number;
    const dataset = String(job['datasetUri']);
    const checkpoint = String(job['checkpointUri']);
    const seedRule = flops > 1e18 || sizeGb > 100 || job['urgency'] === 'critical';
    const regionCanRun = (dataset.startsWith('builtin:') || dataset.startsWith('file:')) && checkpoint.startsWith('file:///');
    const expected = seedRule || !regionCanRun ? 'hpc' : 'federated';
    if (target !== expected) {
      this.report('job-classification-wrong', record, `job ${jobId} (FLOPs ${flops}, ${sizeGb} GB, ${String(job['urgency'])}, dataset ${dataset}) went ${target}; the rule says ${expected}`);
    }
  }

  private applyActor(record: JournalRecord): void {
    const jobId = record.actorId.startsWith(HPC_PREFIX) ? record.actorId.slice(HPC_PREFIX.length) : record.actorId;
    const e = record.event as Record<string, unknown> & { type: string };
    if (e.type === '@spawn') {
      if (this.jobs.has(jobId)) this.report('job-not-ended-once', record, `job ${jobId} got a second hpc-job actor`);
      if (this.targets.get(jobId) !== 'hpc') this.report('job-classification-wrong', record, `job ${jobId} got an hpc-job actor but was classified ${this.targets.get(jobId) ?? 'never'}`);
      this.jobs.set(jobId, { state: record.state, transferStarted: false, transferCompleted: false, finals: 0, endedNotes: 0, bytes: 0, progress: 0, queueJobIds: new Set(), submissions: 0 });
      return;
    }
    const job = this.jobs.get(jobId);
    if (job === undefined) return;
    if (FINAL.has(job.state)) this.report('job-not-ended-once', record, `job ${jobId} took ${e.type} after it ended ${job.state}`);
    switch (e.type) {
      case 'transfer.started':
        job.transferStarted = true;
        break;
      case 'transfer.completed':
        if (!job.transferStarted) this.report('job-queued-before-verified', record, `job ${jobId}: transfer completed without a transfer started`);
        job.transferCompleted = true;
        break;
      case 'transfer.progress': {
        const bytes = e['bytesTransferred'] as number;
        const progress = e['progress'] as number;
        if (bytes < job.bytes || progress < job.progress) {
          this.report('job-progress-backwards', record, `job ${jobId}: progress ${job.progress} (${job.bytes} bytes) then ${progress} (${bytes} bytes)`);
        }
        job.bytes = Math.max(job.bytes, bytes);
        job.progress = Math.max(job.progress, progress);
        break;
      }
      case 'queue.submitted':
      case 'job.started': {
        if (!job.transferCompleted) this.report('job-queued-before-verified', record, `job ${jobId}: ${e.type} before its transfer was completed and verified`);
        const id = e['schedulerJobId'];
        if (typeof id === 'string') {
          job.queueJobIds.add(id);
          if (job.queueJobIds.size > 1) this.report('job-two-queue-submissions', record, `job ${jobId} has queue jobs ${[...job.queueJobIds].join(', ')}`);
        }
        if (e.type === 'queue.submitted' && ++job.submissions > 1) this.report('job-two-queue-submissions', record, `job ${jobId} submitted to the queue ${job.submissions} times`);
        break;
      }
    }
    if (AFTER_TRANSFER.has(record.state) && !job.transferCompleted) this.report('job-queued-before-verified', record, `job ${jobId} is ${record.state} before its transfer was completed and verified`);
    if (FINAL.has(record.state) && !FINAL.has(job.state)) {
      job.finals++;
      if (job.finals > 1) this.report('job-not-ended-once', record, `job ${jobId} reached a final state ${job.finals} times`);
    }
    job.state = record.state;
  }

  /** End of the journal: a final state without its note is an end not recorded once. */
  end(last: JournalRecord | undefined): void {
    for (const [jobId, job] of this.jobs) {
      if (job.finals === 1 && job.endedNotes === 0 && last !== undefined) this.report('job-not-ended-once', last, `job ${jobId} ended ${job.state} with no job.ended note`);
    }
  }

  tally(): JobTally {
    const classified = { hpc: 0, federated: 0 };
    for (const target of this.targets.values()) if (target === 'hpc' || target === 'federated') classified[target]++;
    const hpc: Record<string, number> = {};
    let hpcOpen = 0;
    for (const job of this.jobs.values()) {
      if (FINAL.has(job.state)) hpc[job.state] = (hpc[job.state] ?? 0) + 1;
      else hpcOpen++;
    }
    return { classified, hpc, hpcOpen, placed: this.placed, notPlaced: this.notPlaced };
  }
}
