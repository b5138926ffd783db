import type { ConnectionOptions } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { ArcError, ErrorCodes, type ErrorCode } from '../runtime/errors.js';
import type { PointState, TimePoint } from './point-in-time.js';

/**
 * Time-travel replays in a worker thread, one at a time: a long replay never
 * blocks the live region's event loop, and a newer request supersedes an older
 * one (the older worker is stopped and its caller told so), which is what a
 * dragged slider needs.
 */
/** Where the worker opens the journals: an LMDB data folder, or Kafka (read-only, beside the live owner). */
export type ReplayWorkerData = (
  | { readonly path: string; readonly dataKeyHex?: string }
  | { readonly kafka: { readonly brokers: readonly string[]; readonly ssl?: ConnectionOptions | undefined; readonly topicPrefix?: string | undefined } }
) & {
  /** Shards that run the central orchestrator's behaviour (the rest are region geozones). */
  readonly centralShards?: readonly string[] | undefined;
};

export interface ReplayRequest {
  readonly id: number;
  readonly point: TimePoint;
  /** Each shard's journal end (next offset) as the caller knows it; the worker reopens its view when behind. */
  readonly ends: Readonly<Record<string, number>>;
}

export type ReplayReply =
  | { readonly id: number; readonly ok: true; readonly state: PointState }
  | { readonly id: number; readonly ok: false; readonly code: ErrorCode; readonly message: string };

interface Pending {
  readonly id: number;
  readonly resolve: (state: PointState) => void;
  readonly reject: (error: Error) => void;
}

export class ReplayRunner {
  private worker: Worker | undefined;
  private pending: Pending | undefined;
  private nextId = 1;
  private closed = false;

  constructor(private readonly data: ReplayWorkerData) {}

  /** The region as of `point`; rejects with ARC_ERR_OVERLOADED if a newer request supersedes it. */
  stateAt(point: TimePoint, ends: Readonly<Record<string, number>>): Promise<PointState> {
    if (this.closed) return Promise.reject(new ArcError(ErrorCodes.SHARD_STOPPED, 'the inspector is closing'));
    if (this.pending !== undefined) {
      // Still replaying an older point: stop it rather than queue behind it.
      this.pending.reject(new ArcError(ErrorCodes.OVERLOADED, 'superseded by a newer time-travel request'));
      this.pending = undefined;
      void this.worker?.terminate();
      this.worker = undefined;
    }
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<PointState>((resolve, reject) => {
      this.pending = { id, resolve, reject };
      worker.postMessage({ id, point, ends } satisfies ReplayRequest);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(new URL('./replay-worker.js', import.meta.url), { workerData: this.data });
    // An idle replay worker must not keep the process alive.
    worker.unref();
    worker.on('message', (reply: ReplayReply) => {
      const pending = this.pending;
      if (pending === undefined || pending.id !== reply.id) return;
      this.pending = undefined;
      if (reply.ok) pending.resolve(reply.state);
      else pending.reject(new ArcError(reply.code, reply.message));
    });
    worker.on('error', (error) => {
      if (this.worker === worker) this.worker = undefined;
      this.pending?.reject(new ArcError(ErrorCodes.INVARIANT, `time-travel replay failed: ${error.message}`));
      this.pending = undefined;
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending?.reject(new ArcError(ErrorCodes.SHARD_STOPPED, 'the inspector is closing'));
    this.pending = undefined;
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
