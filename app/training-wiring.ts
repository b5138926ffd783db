import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { trainingActorId } from '../actors/training-actor.js';
import type { TrainingJobView } from '../actors/training-coordinator.js';
import { DEFAULT_AGGREGATE_WHEN } from '../machines/federated-round.js';
import { parseFederatedTask, parseTrainingUpdate, type TrainEffect, type TrainTaskV1 } from '../actors/training-wire.js';
import { trainTaskOf } from '../adapters/bus/topics.js';
import { trainTaskKey } from '../adapters/agent/agent-channel.js';
import { loadDataset } from '../adapters/datasets/dataset-files.js';
import type { UpdateSigner } from './kafka-training-edge.js';
import { sha256Hex, type BlobStore } from '../runtime/blob-store.js';
import { realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { evaluate, fedAvg, parameterCount, parseShardUri, shardIndices, weightsFromBytes, weightsToBytes } from '../training/index.js';

export type { TrainEffect };
type AggregateEffect = Extract<RegionEffect, { type: 'aggregate' }>;
type CheckpointEffect = Extract<RegionEffect, { type: 'checkpoint' }>;

/** Where `train` messages go: the agent channel (weights inline), and whoever else listens (a simulated fleet). */
export interface TrainDelivery {
  offerTask(nodeId: string, geozone: string, key: string, expiresAtMs: number, frame: Buffer): void;
}

/** How often, and after how long, a step's outcome is offered again to a shard that refused it (overloaded). */
const SUBMIT_RETRIES = 20;
const SUBMIT_RETRY_MS = 500;

/**
 * The region's federated path outside the shards: FederatedTask and
 * TrainingUpdate at the edge (validated, weights stored by hash before the
 * shard sees the update), the work a closed round needs (FedAvg of exactly the
 * counted updates, the aggregate's held-out accuracy, the checkpoint file),
 * whose outcomes go back to the shard as inputs to be journaled, and the
 * `train` messages for the participants. Each piece of work is idempotent (the
 * shard ignores a second outcome for the same round), so a restarted region
 * simply asks for it again.
 */
export function createTrainingWiring(options: { region: Region; blobs: BlobStore; log: Logger; delivery: () => TrainDelivery | undefined }) {
  const { region, blobs, log } = options;
  const inFlight = new Set<string>();
  const trainListeners: ((task: TrainTaskV1, effect: TrainEffect) => void)[] = [];
  let closed = false;

  const findJob = (jobId: string): TrainingJobView | undefined => {
    for (const behaviour of region.behaviours.values()) {
      const view = behaviour.training.view(jobId);
      if (view !== undefined) return view;
    }
    return undefined;
  };

  /** Submits an outcome, retrying while the shard is overloaded; gives up when it stopped or the region closes. */
  const submitLater = (input: RegionInput, attempt = 0): void => {
    if (closed) return;
    try {
      region.supervisor.submit(input);
    } catch (error) {
      const code = error instanceof ArcError ? error.code : undefined;
      if (code === ErrorCodes.OVERLOADED && attempt < SUBMIT_RETRIES) {
        realScheduler.after(SUBMIT_RETRY_MS, () => submitLater(input, attempt + 1));
        return;
      }
      log.error({ err: error, input: input.type }, 'a training step outcome could not be submitted; it is asked for again after a restart');
    }
  };

  const once = (key: string, work: () => Promise<void>): void => {
    if (inFlight.has(key)) return;
    inFlight.add(key);
    void work().finally(() => inFlight.delete(key));
  };

  const aggregate = (effect: AggregateEffect): void =>
    once(`aggregate/${effect.jobId}/${effect.round}`, async () => {
      const base = { geozone: effect.geozone, jobId: effect.jobId, round: effect.round };
      try {
        const updates = await Promise.all(
          effect.updates.map(async (u) => {
            const bytes = await blobs.get(u.weightsSha256);
            if (bytes === undefined) throw new ArcError(ErrorCodes.BLOB_MISSING, `the weights of node ${u.nodeId} (${u.weightsSha256}) are not in the blob store`);
            return { nodeId: u.nodeId, sampleCount: u.sampleCount, weights: weightsFromBytes(bytes) };
          }),
        );
        const averaged = fedAvg(updates);
        const weightsSha256 = await blobs.put(weightsToBytes(averaged));
        const shard = parseShardUri(effect.evaluationShardUri);
        const dataset = loadDataset(shard.datasetUri);
        const { accuracy, loss } = evaluate(averaged, dataset, shardIndices(dataset, shard).test);
        submitLater({ type: 'training.aggregated', ...base, weightsSha256, accuracy, loss });
      } catch (error) {
        submitLater({ type: 'training.failed-step', ...base, step: 'aggregation', reason: error instanceof Error ? error.message : String(error) });
      }
    });

  const checkpoint = (effect: CheckpointEffect): void =>
    once(`checkpoint/${effect.jobId}/${effect.round}`, async () => {
      const base = { geozone: effect.geozone, jobId: effect.jobId, round: effect.round };
      try {
        const bytes = await blobs.get(effect.weightsSha256);
        if (bytes === undefined) throw new ArcError(ErrorCodes.BLOB_MISSING, `the aggregate ${effect.weightsSha256} is not in the blob store`);
        const folder = fileURLToPath(effect.checkpointUri);
        await mkdir(folder, { recursive: true });
        const file = join(folder, `${effect.jobId}-round-${String(effect.round).padStart(4, '0')}.f32le`);
        // Written whole or not at all: a temporary file, synced, then renamed over the name.
        const temporary = `${file}.tmp-${process.pid}`;
        const handle = await open(temporary, 'w', 0o644);
        try {
          await handle.writeFile(bytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temporary, file);
        submitLater({ type: 'training.checkpointed', ...base, checkpointUri: pathToFileURL(file).href, sha256: sha256Hex(bytes) });
      } catch (error) {
        submitLater({ type: 'training.failed-step', ...base, step: 'checkpoint', reason: error instanceof Error ? error.message : String(error) });
      }
    });

  const train = (effect: TrainEffect): void => {
    void (async () => {
      const bytes = effect.weightsSha256 === null ? undefined : await blobs.get(effect.weightsSha256);
      if (effect.weightsSha256 !== null && bytes === undefined) {
        log.error({ jobId: effect.jobId, round: effect.round, sha256: effect.weightsSha256 }, 'the starting weights of a round are missing from the blob store');
        return;
      }
      const task = trainTaskOf(effect, bytes === undefined ? null : Buffer.from(bytes).toString('base64'));
      options.delivery()?.offerTask(effect.nodeId, effect.geozone, trainTaskKey(effect.jobId, effect.round), effect.deadlineAtMs, Buffer.from(JSON.stringify(task)));
      for (const listener of trainListeners) listener(task, effect);
    })().catch((error: unknown) => log.error({ err: error }, 'a train message could not be made'));
  };

  return {
    blobs,
    onEffects(effects: readonly RegionEffect[]): void {
      for (const effect of effects) {
        if (effect.type === 'train') train(effect);
        else if (effect.type === 'aggregate') aggregate(effect);
        else if (effect.type === 'checkpoint') checkpoint(effect);
      }
    },
    /** Every train message, with its weights inline (a simulated fleet trains on them). */
    onTrain(listener: (task: TrainTaskV1, effect: TrainEffect) => void): void {
      trainListeners.push(listener);
    },
    /** POST /v1/training: validated, the dataset readable, a new job id; resolves with the job once durable. */
    async submit(body: unknown, scope: (geozone: string) => boolean): Promise<TrainingJobView> {
      const job = parseFederatedTask(body);
      if (!scope(job.geozone)) throw new ArcError(ErrorCodes.FORBIDDEN, 'this key may not act on that geozone');
      loadDataset(job.datasetUri); // refused here (ARC_ERR_DATASET) rather than in every participant
      if (findJob(job.jobId) !== undefined || region.supervisor.all().some((s) => s.snapshotOf(trainingActorId(job.jobId)) !== undefined)) {
        throw new ArcError(ErrorCodes.DUPLICATE_JOB, `training job ${job.jobId} was already submitted; use a new job-id`);
      }
      const shard = region.supervisor.shard(region.shardOf({ type: 'training.job', job }));
      region.supervisor.submit({ type: 'training.job', job });
      await shard.whenDurable(shard.lastOffset);
      const view = findJob(job.jobId);
      if (view === undefined) throw new ArcError(ErrorCodes.INVARIANT, `training job ${job.jobId} was journaled but has no view`);
      return view;
    },
    /**
     * A TrainingUpdate v1 from any edge: weights checked and stored by hash, then the shard decides; resolves once durable.
     * `signer`: the node certificate that signed it (Kafka with --node-ca), which must be of the job's geozone.
     */
    async update(body: unknown, scope: (geozone: string) => boolean, signer?: UpdateSigner): Promise<void> {
      const { update, weights } = parseTrainingUpdate(body);
      const job = findJob(update.jobId);
      if (job === undefined || !scope(job.geozone)) throw new ArcError(ErrorCodes.NOT_FOUND, `no training job ${update.jobId} in the geozones this key reaches`);
      if (signer !== undefined && (signer.geozone !== job.geozone || signer.nodeId !== update.nodeId)) {
        throw new ArcError(ErrorCodes.PRODUCER_IDENTITY, `TrainingUpdate of ${update.nodeId} refused: signed by node ${signer.nodeId} of ${signer.geozone}, but job ${job.jobId} trains in ${job.geozone}; sign with the certificate of a node of ${job.geozone}`, { reason: 'geozone-mismatch' });
      }
      let weightsSha256: string;
      if ('inline' in weights) {
        const dataset = loadDataset(job.spec.datasetUri);
        const expected = parameterCount(dataset.featureCount, dataset.classCount);
        let vector: Float32Array;
        try {
          vector = weightsFromBytes(weights.inline);
        } catch (error) {
          throw new ArcError(ErrorCodes.VALIDATION, `invalid TrainingUpdate message: weights: ${(error as Error).message}`);
        }
        if (vector.length !== expected) throw new ArcError(ErrorCodes.VALIDATION, `invalid TrainingUpdate message: weights: ${vector.length} values; the model of job ${job.jobId} has ${expected}`);
        weightsSha256 = await blobs.put(weights.inline);
      } else {
        if (!(await blobs.has(weights.sha256))) throw new ArcError(ErrorCodes.BLOB_MISSING, `weights ${weights.sha256} are not in this region's blob store; send them inline`);
        weightsSha256 = weights.sha256;
      }
      const input: RegionInput = { type: 'training.update', update: { ...update, weightsSha256 } };
      const shard = region.supervisor.shard(region.shardOf(input));
      region.supervisor.submit(input);
      await shard.whenDurable(shard.lastOffset);
    },
    /** GET /v1/training/:job (undefined when unknown or out of scope: a key learns nothing of other geozones). */
    job(jobId: string, scope: (geozone: string) => boolean): Record<string, unknown> | undefined {
      const view = findJob(jobId);
      if (view === undefined || !scope(view.geozone)) return undefined;
      const live = region.supervisor.all().map((s) => s.snapshotOf(trainingActorId(jobId))).find((s) => s !== undefined);
      return { ...jobDocument(view), 'actor-state': live === undefined ? null : (live.value as string) };
    },
    close(): void {
      closed = true;
    },
  };
}

export type TrainingWiring = ReturnType<typeof createTrainingWiring>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The job as GET /v1/training/:job answers it (kebab-case like the wire formats). */
export function jobDocument(view: TrainingJobView): Record<string, unknown> {
  return {
    'job-id': view.jobId,
    geozone: view.geozone,
    'model-id': view.spec.modelId,
    'dataset-uri': view.spec.datasetUri,
    'checkpoint-uri': view.spec.checkpointUri,
    rounds: view.spec.rounds,
    'min-participants': view.spec.minParticipants,
    'aggregate-when': view.spec.aggregateWhen ?? DEFAULT_AGGREGATE_WHEN,
    state: view.state,
    'failure-reason': view.failureReason,
    'failure-detail': view.failureDetail,
    'accepted-at': iso(view.acceptedAtMs),
    'ended-at': iso(view.endedAtMs),
    selection: view.selection,
    participants: view.participants.map((p) => ({ 'node-id': p.nodeId, 'energy-source': p.energySource, 'gpu-utilization': p.gpuUtilization, part: p.part, 'dataset-shard-uri': p.datasetShardUri })),
    'round-history': view.rounds.map((r) => ({
      round: r.round,
      'started-at': iso(r.startedAtMs),
      deadline: iso(r.deadlineAtMs),
      'start-weights-sha256': r.startWeightsSha256,
      updates: r.updates.map((u) => ({ 'node-id': u.nodeId, 'sample-count': u.sampleCount, 'weights-sha256': u.weightsSha256, loss: u.loss, accuracy: u.accuracy })),
      dropped: r.dropped,
      stragglers: r.stragglers,
      late: r.late,
      'closed-at': iso(r.closedAtMs),
      'closed-by': r.closedBy,
      'aggregate-sha256': r.aggregateSha256,
      accuracy: r.accuracy,
      loss: r.loss,
      'checkpoint-uri': r.checkpointUri,
      'checkpoint-sha256': r.checkpointSha256,
    })),
  };
}
