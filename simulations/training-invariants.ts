import type { JournalRecord } from '../runtime/journal.js';

/**
 * The federated path's invariants, read from a shard's journal notes
 * (`training.*` on '@shard'), independently of the coordinator that wrote them:
 * - no aggregate below quorum (fewer counted updates than min-participants);
 * - a late update is never counted (after its round closed or its deadline, or for another round);
 * - every round ends exactly once (closed once; a job ends once);
 * - checkpoint rounds increase;
 * - the aggregate is FedAvg of exactly the counted updates, recomputed here
 *   from the stored weights (when the checker is given the blob store).
 * FedAvg is written out again below on purpose, not imported: a bug in the
 * region's aggregation must not be able to hide by also being in the checker.
 */

export type TrainingViolationRule =
  | 'training-aggregate-below-quorum'
  | 'training-late-update-counted'
  | 'training-round-not-ended-once'
  | 'training-checkpoint-round-not-increasing'
  | 'training-aggregate-not-fedavg';

/** Reads stored weights by SHA-256 (float32 little-endian bytes); undefined when not stored. */
export type BlobLookup = (sha256: string) => Uint8Array | undefined;

interface RoundModel {
  round: number;
  deadlineAtMs: number;
  closed: number;
  counted: { nodeId: string; sampleCount: number; weightsSha256: string }[];
}

interface JobModel {
  minParticipants: number;
  ended: number;
  round: RoundModel | undefined;
  lastCheckpointRound: number;
}

export class TrainingModel {
  private readonly jobs = new Map<string, JobModel>();

  constructor(
    private readonly report: (rule: TrainingViolationRule, record: JournalRecord, detail: string) => void,
    private readonly blobs: BlobLookup | undefined,
  ) {}

  apply(record: JournalRecord): void {
    const e = record.event as Record<string, unknown> & { type: string };
    if (e.type === 'training.job') {
      const spec = e['spec'] as { jobId: string; minParticipants: number };
      this.jobs.set(spec.jobId, { minParticipants: spec.minParticipants, ended: e['state'] === 'failed' ? 1 : 0, round: undefined, lastCheckpointRound: 0 });
      return;
    }
    const jobId = e['jobId'] as string;
    const job = this.jobs.get(jobId);
    if (job === undefined) return;
    const round = job.round;
    switch (e.type) {
      case 'training.round':
        if (round !== undefined && round.closed === 0) this.report('training-round-not-ended-once', record, `job ${jobId} round ${e['round'] as number} started before round ${round.round} ended`);
        job.round = { round: e['round'] as number, deadlineAtMs: e['deadlineAtMs'] as number, closed: 0, counted: [] };
        return;
      case 'training.update': {
        const late = round === undefined || round.closed > 0 || e['round'] !== round.round || record.atMs > round.deadlineAtMs;
        if (late) this.report('training-late-update-counted', record, `job ${jobId}: update of ${e['nodeId'] as string} for round ${e['round'] as number} counted after its round closed or its deadline`);
        round?.counted.push({ nodeId: e['nodeId'] as string, sampleCount: e['sampleCount'] as number, weightsSha256: e['weightsSha256'] as string });
        return;
      }
      case 'training.closed':
        if (round === undefined) return;
        round.closed++;
        if (round.closed > 1) this.report('training-round-not-ended-once', record, `job ${jobId} round ${round.round} closed ${round.closed} times`);
        return;
      case 'training.aggregated':
        if (round === undefined) return;
        if (round.counted.length < job.minParticipants) {
          this.report('training-aggregate-below-quorum', record, `job ${jobId} round ${round.round} aggregated ${round.counted.length} updates; min-participants is ${job.minParticipants}`);
        }
        this.checkFedAvg(jobId, round, e['weightsSha256'] as string, record);
        return;
      case 'training.checkpoint':
        if ((e['round'] as number) <= job.lastCheckpointRound) {
          this.report('training-checkpoint-round-not-increasing', record, `job ${jobId} checkpointed round ${e['round'] as number} after round ${job.lastCheckpointRound}`);
        }
        job.lastCheckpointRound = e['round'] as number;
        return;
      case 'training.ended':
        job.ended++;
        if (job.ended > 1) this.report('training-round-not-ended-once', record, `job ${jobId} ended ${job.ended} times`);
        return;
    }
  }

  private checkFedAvg(jobId: string, round: RoundModel, aggregateSha256: string, record: JournalRecord): void {
    if (this.blobs === undefined) return;
    const stored = this.blobs(aggregateSha256);
    const vectors = round.counted.map((u) => ({ ...u, bytes: this.blobs?.(u.weightsSha256) }));
    if (stored === undefined || vectors.some((v) => v.bytes === undefined)) {
      this.report('training-aggregate-not-fedavg', record, `job ${jobId} round ${round.round}: the aggregate or a counted update is missing from the blob store`);
      return;
    }
    const length = stored.byteLength / 4;
    const sum = new Float64Array(length);
    let total = 0;
    for (const v of [...vectors].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))) {
      const view = new DataView((v.bytes as Uint8Array).buffer, (v.bytes as Uint8Array).byteOffset, (v.bytes as Uint8Array).byteLength);
      if (view.byteLength !== stored.byteLength) {
        this.report('training-aggregate-not-fedavg', record, `job ${jobId} round ${round.round}: update of ${v.nodeId} has another length than the aggregate`);
        return;
      }
      for (let i = 0; i < length; i++) sum[i] = (sum[i] as number) + v.sampleCount * view.getFloat32(i * 4, true);
      total += v.sampleCount;
    }
    const expected = new DataView(new ArrayBuffer(stored.byteLength));
    for (let i = 0; i < length; i++) expected.setFloat32(i * 4, (sum[i] as number) / total, true);
    const actual = new Uint8Array(stored);
    const mine = new Uint8Array(expected.buffer);
    for (let i = 0; i < mine.length; i++) {
      if (mine[i] !== actual[i]) {
        this.report('training-aggregate-not-fedavg', record, `job ${jobId} round ${round.round}: the aggregate differs from FedAvg of the ${round.counted.length} counted updates at byte ${i}`);
        return;
      }
    }
  }
}
