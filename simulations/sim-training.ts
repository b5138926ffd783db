import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { parseFederatedTask, parseTrainingUpdate, type TrainEffect } from '../actors/training-wire.js';
import { effectToWire, trainTaskOf } from '../adapters/bus/topics.js';
import { loadDataset } from '../adapters/datasets/dataset-files.js';
import { sha256Hex } from '../runtime/blob-store.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { evaluate, fedAvg, parseShardUri, shardIndices, weightsFromBytes, weightsToBytes } from '../training/index.js';
import type { SimTrainingFleet } from './fleet-training.js';

type AggregateEffect = Extract<RegionEffect, { type: 'aggregate' }>;
type CheckpointEffect = Extract<RegionEffect, { type: 'checkpoint' }>;

/** Weights a simulation keeps (a digits model is 2.6 kB; a run needing more is a bug in the scenario). */
export const MAX_SIM_BLOB_BYTES = 256 * 1024 * 1024;

/**
 * The training weights of a simulation, content-addressed and synchronous: the
 * simulated outside world answers at a simulated time, never when a disk write
 * happens to finish, so the run stays a function of its seed. They are written
 * to the data folder's blob store at the end (replay recomputes every aggregate
 * from them), and outlive simulated restarts as a disk would.
 */
export class SimBlobs {
  private readonly blobs = new Map<string, Uint8Array>();
  private bytes = 0;

  put(bytes: Uint8Array): string {
    const sha = sha256Hex(bytes);
    if (this.blobs.has(sha)) return sha;
    if (this.bytes + bytes.byteLength > MAX_SIM_BLOB_BYTES) {
      throw new ArcError(ErrorCodes.OVERLOADED, `the simulation holds ${this.bytes} bytes of weights; the limit is ${MAX_SIM_BLOB_BYTES}: shorten the run or lower --jobs-per-hour`);
    }
    this.blobs.set(sha, Uint8Array.from(bytes));
    this.bytes += bytes.byteLength;
    return sha;
  }

  get(sha256: string): Uint8Array | undefined {
    return this.blobs.get(sha256);
  }

  entries(): IterableIterator<[string, Uint8Array]> {
    return this.blobs.entries();
  }
}

/**
 * What the region's training wiring does outside its shards (app/training-wiring.ts),
 * done on simulated time: a FederatedTask v1 from the orchestrator goes through the
 * wire format and the region's own schema into a `training.job` input; `train`
 * messages go to the simulated fleet with their weights inline; its updates are
 * validated as the edge does and stored by hash; FedAvg of exactly the counted
 * updates, the aggregate's held-out accuracy and the checkpoint file come back as
 * inputs at the time the step was released. Every step answers at once, so its
 * outcome lands in the same settle as the effect that asked for it.
 */
export class SimTrainingSide {
  constructor(
    private readonly blobs: SimBlobs,
    private readonly submit: (input: RegionInput) => void,
    private readonly fleet: () => SimTrainingFleet,
    private readonly onRefused: (what: string, error: unknown) => void,
  ) {}

  /** The orchestrator's FederatedTask v1, as a region's bus edge would take it. */
  federatedTask(effect: RegionEffect): void {
    const wire = effectToWire(effect);
    if (wire === undefined) return;
    try {
      this.submit({ type: 'training.job', job: parseFederatedTask(JSON.stringify(wire.message)) });
    } catch (error) {
      this.onRefused('FederatedTask', error);
    }
  }

  /** A TrainingUpdate v1 from a simulated node (JSON), checked and stored before the shard sees it. */
  update(body: string): void {
    try {
      const { update, weights } = parseTrainingUpdate(body);
      const weightsSha256 = 'inline' in weights ? this.blobs.put(weights.inline) : weights.sha256;
      if (this.blobs.get(weightsSha256) === undefined) throw new ArcError(ErrorCodes.BLOB_MISSING, `weights ${weightsSha256} are not stored`);
      this.submit({ type: 'training.update', update: { ...update, weightsSha256 } });
    } catch (error) {
      this.onRefused('TrainingUpdate', error);
    }
  }

  /** Handles a region effect of the federated path; false when it is not one. */
  onEffect(effect: RegionEffect, atMs: number): boolean {
    switch (effect.type) {
      case 'train':
        this.train(effect, atMs);
        return true;
      case 'aggregate':
        this.aggregate(effect);
        return true;
      case 'checkpoint':
        this.checkpoint(effect);
        return true;
      default:
        return false;
    }
  }

  private train(effect: TrainEffect, atMs: number): void {
    const bytes = effect.weightsSha256 === null ? undefined : this.blobs.get(effect.weightsSha256);
    if (effect.weightsSha256 !== null && bytes === undefined) {
      this.onRefused('train', new ArcError(ErrorCodes.BLOB_MISSING, `the starting weights ${effect.weightsSha256} of ${effect.jobId} round ${effect.round} are not stored`));
      return;
    }
    this.fleet().onTrain(trainTaskOf(effect, bytes === undefined ? null : Buffer.from(bytes).toString('base64')), atMs);
  }

  private aggregate(effect: AggregateEffect): void {
    const base = { geozone: effect.geozone, jobId: effect.jobId, round: effect.round };
    try {
      const updates = effect.updates.map((u) => {
        const bytes = this.blobs.get(u.weightsSha256);
        if (bytes === undefined) throw new ArcError(ErrorCodes.BLOB_MISSING, `the weights of node ${u.nodeId} (${u.weightsSha256}) are not stored`);
        return { nodeId: u.nodeId, sampleCount: u.sampleCount, weights: weightsFromBytes(bytes) };
      });
      const averaged = fedAvg(updates);
      const weightsSha256 = this.blobs.put(weightsToBytes(averaged));
      const shard = parseShardUri(effect.evaluationShardUri);
      const dataset = loadDataset(shard.datasetUri);
      const { accuracy, loss } = evaluate(averaged, dataset, shardIndices(dataset, shard).test);
      this.submit({ type: 'training.aggregated', ...base, weightsSha256, accuracy, loss });
    } catch (error) {
      this.submit({ type: 'training.failed-step', ...base, step: 'aggregation', reason: error instanceof Error ? error.message : String(error) });
    }
  }

  private checkpoint(effect: CheckpointEffect): void {
    const base = { geozone: effect.geozone, jobId: effect.jobId, round: effect.round };
    try {
      const bytes = this.blobs.get(effect.weightsSha256);
      if (bytes === undefined) throw new ArcError(ErrorCodes.BLOB_MISSING, `the aggregate ${effect.weightsSha256} is not stored`);
      const folder = fileURLToPath(effect.checkpointUri);
      mkdirSync(folder, { recursive: true });
      const file = join(folder, `${effect.jobId}-round-${String(effect.round).padStart(4, '0')}.f32le`);
      // Whole or not at all, as the live region writes it.
      writeFileSync(`${file}.tmp-${process.pid}`, bytes);
      renameSync(`${file}.tmp-${process.pid}`, file);
      this.submit({ type: 'training.checkpointed', ...base, checkpointUri: pathToFileURL(file).href, sha256: sha256Hex(bytes) });
    } catch (error) {
      this.submit({ type: 'training.failed-step', ...base, step: 'checkpoint', reason: error instanceof Error ? error.message : String(error) });
    }
  }
}
