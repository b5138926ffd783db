import { describeKafkaError } from './retry.js';

/**
 * How the region's Kafka edge is doing, for status lines, logs and /readyz:
 * each part (the consumer, the dead-letter writer, the effect producer, topic
 * setup) reports its own state, and the edge is connected only when every
 * part is. Listeners hear every change, in order, synchronously.
 */

export type EdgePartState =
  /** Connecting for the first time. */
  | 'starting'
  | 'connected'
  /** Waiting to try again after a retriable error (the broker is down, restarting, electing leaders). */
  | 'retrying'
  /** Stopped on a fatal error: it will not come back by itself. */
  | 'failed'
  /** Stopped on purpose. */
  | 'stopped';

export interface EdgePartStatus {
  readonly state: EdgePartState;
  /** Failed attempts since the part was last connected. */
  readonly failures: number;
  /** The last error of this part (kept after it recovers, for the record). */
  readonly lastError: string | undefined;
}

export interface EdgeStatus {
  /** Every part is connected: the region may say it is ready. */
  readonly connected: boolean;
  /** Some part is waiting to retry. */
  readonly retrying: boolean;
  /** Some part stopped on a fatal error: the region should stop. */
  readonly failed: boolean;
  /** The most recent error of any part, described in one line. */
  readonly lastError: string | undefined;
  readonly parts: Readonly<Record<string, EdgePartStatus>>;
}

/** What one part reports. */
export interface EdgePart {
  readonly connected: () => void;
  readonly retrying: (error: unknown) => void;
  readonly failed: (error: unknown) => void;
  readonly stopped: () => void;
}

export type EdgeStatusListener = (status: EdgeStatus) => void;

/** Parts are few and fixed (one per client); the bound catches a part registered per message by mistake. */
const MAX_PARTS = 64;

export class KafkaEdgeStatus {
  private readonly parts = new Map<string, EdgePartStatus>();
  private readonly listeners = new Set<EdgeStatusListener>();
  private lastError: string | undefined;
  private snapshot: EdgeStatus = { connected: false, retrying: false, failed: false, lastError: undefined, parts: {} };

  get current(): EdgeStatus {
    return this.snapshot;
  }

  /** Calls `listener` on every change from now on; returns the unsubscribe function. */
  subscribe(listener: EdgeStatusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Registers a part (state 'starting'); a name used again takes the part over. */
  part(name: string): EdgePart {
    if (!this.parts.has(name) && this.parts.size >= MAX_PARTS) throw new RangeError(`more than ${MAX_PARTS} Kafka edge parts`);
    this.set(name, { state: 'starting', failures: 0, lastError: this.parts.get(name)?.lastError });
    return {
      connected: () => this.set(name, { state: 'connected', failures: 0, lastError: this.parts.get(name)?.lastError }),
      retrying: (error) => this.fail(name, 'retrying', error),
      failed: (error) => this.fail(name, 'failed', error),
      stopped: () => this.set(name, { state: 'stopped', failures: this.parts.get(name)?.failures ?? 0, lastError: this.parts.get(name)?.lastError }),
    };
  }

  private fail(name: string, state: 'retrying' | 'failed', error: unknown): void {
    const lastError = describeKafkaError(error);
    this.lastError = `${name}: ${lastError}`;
    this.set(name, { state, failures: (this.parts.get(name)?.failures ?? 0) + 1, lastError });
  }

  private set(name: string, status: EdgePartStatus): void {
    const before = this.parts.get(name);
    this.parts.set(name, status);
    if (before !== undefined && before.state === status.state && before.failures === status.failures && before.lastError === status.lastError) return;
    const states = [...this.parts.values()].map((p) => p.state);
    this.snapshot = {
      connected: states.length > 0 && states.every((s) => s === 'connected'),
      retrying: states.includes('retrying'),
      failed: states.includes('failed'),
      lastError: this.lastError,
      parts: Object.fromEntries(this.parts),
    };
    for (const listener of [...this.listeners]) listener(this.snapshot);
  }
}
