import type { Logger } from 'pino';
import type { InferenceDispatchV1 } from '../actors/wire-out.js';
import type { InferenceResultV1 } from '../actors/wire.js';
import type { OpenAiModelServer } from '../adapters/model-server/openai-model-server.js';
import { monotonicNowMs } from '../runtime/clock.js';
import type { ResultOutbox } from './result-outbox.js';

/** What became of a dispatch offered to the runner. */
export type Offered =
  /** New: it will run and its result will be owed. */
  | 'taken'
  /** Seen before (redelivered after a reconnect, or twice on Kafka): not run again. */
  | 'duplicate'
  /** Its reservation expired before it arrived: running it would help nobody. */
  | 'expired'
  /** More than maxDispatchesInHand: answered `failed` at once so the request ends now, not at expiry. */
  | 'refused-full'
  /** The agent is stopping: not taken (the region sends it again, or it expires). */
  | 'stopping';

export interface DispatchRunnerOptions {
  readonly nodeId: string;
  readonly modelServer?: OpenAiModelServer | undefined;
  readonly maxTokens: number;
  readonly maxConcurrentRuns: number;
  readonly maxDispatchesInHand: number;
  readonly maxRememberedRequests: number;
  readonly outbox: ResultOutbox;
  /** Called with each new result (already in the outbox) so the uplink can send it at once. */
  readonly onResult: (result: InferenceResultV1) => void;
  /** Wall-clock now (ms), to judge a dispatch's `expires-at`. */
  readonly wallNowMs: () => number;
  readonly logger: Logger;
}

const priorityRank: Readonly<Record<InferenceDispatchV1['priority'], number>> = { critical: 0, normal: 1, background: 2 };

interface InHand {
  readonly dispatch: InferenceDispatchV1;
  readonly takenAtMs: number;
  readonly abort: AbortController;
  started: boolean;
}

/**
 * Runs dispatches against the model server, at most `maxConcurrentRuns` at once,
 * and turns each into an InferenceResult v1 with its real latency (time from
 * taking the dispatch to the model server's answer, queueing in the agent
 * included, since that is what the requester waited). A model-server error or
 * timeout is a `failed` result, never a silence.
 */
export class DispatchRunner {
  private readonly inHand = new Map<string, InHand>();
  /** Request ids seen, oldest first (a Map keeps insertion order), bounded. */
  private readonly remembered = new Map<string, true>();
  private stopping = false;
  private idleWaiters: (() => void)[] = [];
  dispatchesRun = 0;
  completed = 0;
  failed = 0;
  duplicates = 0;
  expired = 0;
  refusedFull = 0;

  constructor(private readonly options: DispatchRunnerOptions) {}

  get size(): number {
    return this.inHand.size;
  }

  offer(dispatch: InferenceDispatchV1): Offered {
    const requestId = dispatch['request-id'];
    if (this.remembered.has(requestId)) {
      this.duplicates++;
      return 'duplicate';
    }
    if (this.stopping) return 'stopping';
    this.remember(requestId);
    const expiresAtMs = Date.parse(dispatch['expires-at']);
    if (Number.isFinite(expiresAtMs) && expiresAtMs <= this.options.wallNowMs()) {
      this.expired++;
      this.options.logger.warn({ requestId, expiresAt: dispatch['expires-at'] }, 'dispatch arrived after its reservation expired: not run');
      return 'expired';
    }
    if (this.inHand.size >= this.options.maxDispatchesInHand) {
      this.refusedFull++;
      this.finish(dispatch, 'failed', 0, `more than ${this.options.maxDispatchesInHand} dispatches in hand`);
      return 'refused-full';
    }
    this.inHand.set(requestId, { dispatch, takenAtMs: monotonicNowMs(), abort: new AbortController(), started: false });
    this.pump();
    return 'taken';
  }

  /**
   * Stops taking dispatches; waits up to `drainTimeoutMs` for those in hand, then
   * abandons the rest (each a `failed` result, so the region hears of it).
   */
  async stop(drainTimeoutMs: number): Promise<{ abandoned: number }> {
    this.stopping = true;
    if (this.inHand.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainTimeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const left = [...this.inHand.values()];
    for (const hand of left) {
      if (hand.started) hand.abort.abort();
      else {
        this.inHand.delete(hand.dispatch['request-id']);
        this.finish(hand.dispatch, 'failed', monotonicNowMs() - hand.takenAtMs, 'the agent stopped before running it');
      }
    }
    // Aborted calls settle promptly (their fetch rejects); wait for their results.
    if (this.inHand.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    return { abandoned: left.length };
  }

  private remember(requestId: string): void {
    this.remembered.set(requestId, true);
    if (this.remembered.size > this.options.maxRememberedRequests) this.remembered.delete(this.remembered.keys().next().value as string);
  }

  private running(): number {
    let n = 0;
    for (const hand of this.inHand.values()) if (hand.started) n++;
    return n;
  }

  /** Starts waiting dispatches while calls are free: critical first, then normal, then background, each in arrival order. */
  private pump(): void {
    let free = this.options.maxConcurrentRuns - this.running();
    while (free > 0) {
      let next: InHand | undefined;
      for (const hand of this.inHand.values()) {
        if (hand.started) continue;
        if (next === undefined || priorityRank[hand.dispatch.priority] < priorityRank[next.dispatch.priority]) next = hand;
      }
      if (next === undefined) return;
      next.started = true;
      free--;
      void this.run(next);
    }
  }

  private async run(hand: InHand): Promise<void> {
    const { dispatch } = hand;
    const server = this.options.modelServer;
    let status: 'completed' | 'failed' = 'failed';
    let reason: string | undefined = 'no model server is configured (--model-server)';
    if (server !== undefined) {
      // The seed's InferenceDispatch v1 carries no prompt (payloads travel outside the
      // control plane), so the call names the request; the model's work is real.
      const outcome = await server.complete({ model: dispatch['model-id'], prompt: `ArcNet request ${dispatch['request-id']}`, maxTokens: this.options.maxTokens }, hand.abort.signal);
      status = outcome.ok ? 'completed' : 'failed';
      reason = outcome.ok ? undefined : outcome.reason;
    }
    this.dispatchesRun++;
    this.inHand.delete(dispatch['request-id']);
    this.finish(dispatch, status, monotonicNowMs() - hand.takenAtMs, reason);
    this.pump();
    if (this.inHand.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private finish(dispatch: InferenceDispatchV1, status: 'completed' | 'failed', latencyMs: number, reason?: string): void {
    if (status === 'completed') this.completed++;
    else this.failed++;
    if (reason !== undefined) this.options.logger.warn({ requestId: dispatch['request-id'], model: dispatch['model-id'], reason }, 'inference failed');
    const result: InferenceResultV1 = {
      'request-id': dispatch['request-id'],
      'node-id': this.options.nodeId,
      'latency-ms': Math.max(0, Math.round(latencyMs * 1000) / 1000),
      status,
    };
    this.options.outbox.add(result);
    this.options.onResult(result);
  }
}
