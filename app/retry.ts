import { setTimeout as sleep } from 'node:timers/promises';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

export interface RetryOptions {
  /** Aborting stops the waiting; the call then rejects with ARC_ERR_SHARD_STOPPED. */
  readonly signal?: AbortSignal;
  /** Told before each wait (status lines, logs, readiness). */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
  /** Errors that retrying cannot mend (wrong credentials, usage) end the retries at once. */
  readonly isFatal?: (error: unknown) => boolean;
  /** Stop retrying (the reason for the work went away). */
  readonly stopIf?: () => boolean;
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
}

/**
 * Runs `work` until it succeeds, waiting twice as long after each failure (up to
 * a cap). A region started before its broker or its topics must wait for them,
 * never exit: a deployment brings processes up in any order.
 */
export async function retryWithBackoff<T>(work: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const first = options.firstDelayMs ?? 250;
  const max = options.maxDelayMs ?? 5_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if ((options.isFatal ?? isUsageError)(error) || options.signal?.aborted === true || options.stopIf?.() === true) throw error;
      const delayMs = Math.min(max, first * 2 ** Math.min(attempt - 1, 16));
      options.onRetry?.(attempt, error, delayMs);
      try {
        await sleep(delayMs, undefined, options.signal === undefined ? {} : { signal: options.signal });
      } catch {
        throw new ArcError(ErrorCodes.SHARD_STOPPED, 'stopped while waiting to retry');
      }
    }
  }
}

/** A usage error (a bad flag, a bad name) never mends by waiting. */
function isUsageError(error: unknown): boolean {
  return error instanceof ArcError && error.code === ErrorCodes.USAGE;
}
