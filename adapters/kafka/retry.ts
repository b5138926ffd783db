import { setTimeout as sleep } from 'node:timers/promises';
import { ArcError } from '../../runtime/errors.js';

/**
 * Waiting out a Kafka that is not there yet (or not any more): exponential
 * backoff with a cap, stopped by an AbortSignal, and a classification of
 * kafkajs errors into retriable (the broker is down, restarting, electing a
 * leader, has not caught up with a topic it just created) and fatal (bad
 * configuration, refused authorisation, our own validation errors, bugs).
 *
 * Retrying is deterministic unless a random source is given: jitter spreads
 * the reconnects of many processes after an outage, but a test or a
 * simulation wants the same delays every time, so it comes only from
 * `random` (for example a seeded Prng's `next`), never from Math.random.
 */

export interface BackoffPolicy {
  /** Delay before the second attempt. */
  readonly initialDelayMs: number;
  /** No delay is longer than this (before jitter is taken off). */
  readonly maxDelayMs: number;
  /** Each delay is this many times the previous one, up to maxDelayMs. */
  readonly multiplier: number;
  /**
   * Fraction of each delay (0..1) replaced by a random amount when a random
   * source is given: delay × (1 − jitter × random()). Never longer than the
   * delay without jitter, so maxDelayMs stays a true cap.
   */
  readonly jitter: number;
}

export const defaultBackoff: BackoffPolicy = { initialDelayMs: 200, maxDelayMs: 10_000, multiplier: 2, jitter: 0.3 };

/** The delay after failed attempt number `attempt` (1 = the first attempt failed). */
export function backoffDelayMs(attempt: number, policy: Partial<BackoffPolicy> = {}, random?: () => number): number {
  const p = { ...defaultBackoff, ...policy };
  if (!(p.initialDelayMs >= 0 && p.maxDelayMs >= p.initialDelayMs && p.multiplier >= 1 && p.jitter >= 0 && p.jitter <= 1)) {
    throw new RangeError(`bad backoff policy ${JSON.stringify(p)}: 0 <= initialDelayMs <= maxDelayMs, multiplier >= 1, 0 <= jitter <= 1`);
  }
  // Math.min before the power would overflow: the exponent is bounded by the number of doublings to the cap.
  const exponent = Math.min(Math.max(0, attempt - 1), 64);
  const base = Math.min(p.maxDelayMs, p.initialDelayMs * p.multiplier ** exponent);
  if (random === undefined || p.jitter === 0) return Math.round(base);
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(base * (1 - p.jitter * r));
}

export interface RetryOptions {
  readonly backoff?: Partial<BackoffPolicy>;
  /** Uniform in [0, 1): the only source of jitter (none without it). */
  readonly random?: () => number;
  /** Stops the waiting: the retry rejects with the signal's reason (an AbortError by default). */
  readonly signal?: AbortSignal | undefined;
  /** Attempts in all, the first included (default: no limit). The last error is thrown when they are used up. */
  readonly maxAttempts?: number;
  /** Which errors are worth another attempt (default: isRetriableKafkaError); any other is thrown at once. */
  readonly isRetriable?: (error: unknown) => boolean;
  /** Called before each wait: for status lines, logs and readiness. */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
}

/**
 * Runs `operation` until it succeeds, a fatal error comes, the attempts are
 * used up or the signal aborts. `operation` gets the attempt number (1-based).
 */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const isRetriable = options.isRetriable ?? isRetriableKafkaError;
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await operation(attempt);
    } catch (error) {
      options.signal?.throwIfAborted();
      if (attempt >= maxAttempts || !isRetriable(error)) throw error;
      const delayMs = backoffDelayMs(attempt, options.backoff, options.random);
      options.onRetry?.(attempt, error, delayMs);
      try {
        await sleep(delayMs, undefined, options.signal === undefined ? {} : { signal: options.signal });
      } catch (sleepError) {
        // The timer's AbortError says only "aborted": the signal's reason says why.
        options.signal?.throwIfAborted();
        throw sleepError;
      }
    }
  }
}

// ---------------------------------------------------------------- classification

/** kafkajs protocol error types that clear up by themselves (leaders move, coordinators load, brokers restart). */
const RETRIABLE_PROTOCOL_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'GROUP_LOAD_IN_PROGRESS',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NOT_CONTROLLER',
  'KAFKA_STORAGE_ERROR',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'OFFSET_NOT_AVAILABLE',
  'PREFERRED_LEADER_NOT_AVAILABLE',
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'CONCURRENT_TRANSACTIONS',
  'THROTTLING_QUOTA_EXCEEDED',
]);

/** Name of topics.ts's error for topics created but not yet served everywhere. */
export const TOPICS_NOT_READY = 'ArcKafkaTopicsNotReady';

/** kafkajs errors (and ours) that say "not now" rather than "never", whatever their `retriable` flag. */
const RETRIABLE_ERROR_NAMES = new Set([
  TOPICS_NOT_READY,
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSLockTimeout',
]);

/** Errors that no amount of waiting fixes: configuration, authorisation, protocol mismatch, programming errors. */
const FATAL_ERROR_NAMES = new Set([
  'KafkaJSSASLAuthenticationError',
  'KafkaJSServerDoesNotSupportApiKey',
  'KafkaJSUnsupportedMagicByteInMessageSet',
  'KafkaJSInvariantViolation',
  'KafkaJSNotImplemented',
  'KafkaJSInvalidVarIntError',
  'KafkaJSInvalidLongError',
  'AbortError',
  'TypeError',
  'RangeError',
  'ReferenceError',
  'SyntaxError',
]);

/** Socket errors of a broker that is down or restarting (kafkajs wraps them, but not always). */
const RETRIABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);

/** A certificate or TLS configuration problem: the same on every attempt. */
const TLS_FAILURE = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO|HOSTNAME_MISMATCH/;

const NOT_HOSTED = 'does not host this topic-partition';
const MAX_CAUSE_DEPTH = 16;
/** Error descriptions are cut here: they end up in status lines, headers and /readyz bodies. */
export const MAX_ERROR_DESCRIPTION_CHARS = 1024;

interface ErrorLike {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly type?: unknown;
  readonly code?: unknown;
  readonly retriable?: unknown;
  readonly cause?: unknown;
  readonly errors?: unknown;
}

/** The error and its causes, outermost first (kafkajs wraps: NumberOfRetriesExceeded → NonRetriable → the broker's answer). */
export function causeChain(error: unknown): ErrorLike[] {
  const chain: ErrorLike[] = [];
  let current: unknown = error;
  while (typeof current === 'object' && current !== null && chain.length < MAX_CAUSE_DEPTH && !chain.includes(current)) {
    const link: ErrorLike = current;
    chain.push(link);
    current = link.cause;
  }
  return chain;
}

/**
 * Whether waiting and trying again can help. Decided on the innermost cause
 * (kafkajs's KafkaJSNumberOfRetriesExceeded is "non-retriable" only in the
 * sense that kafkajs itself gave up), except that an ArcError or a
 * programming error anywhere in the chain is fatal. An aggregate (several
 * topic errors at once) is retriable only if each of its errors is.
 */
export function isRetriableKafkaError(error: unknown): boolean {
  const chain = causeChain(error);
  const root = chain[chain.length - 1];
  if (root === undefined) return false;
  for (const link of chain) {
    if (link instanceof ArcError) return false;
    if (typeof link.name === 'string' && FATAL_ERROR_NAMES.has(link.name)) return false;
  }
  if (Array.isArray(root.errors) && root.errors.length > 0) return root.errors.every((e) => isRetriableKafkaError(e));
  const name = typeof root.name === 'string' ? root.name : '';
  const code = typeof root.code === 'string' ? root.code : '';
  if (name.startsWith('KafkaJSConnection') && TLS_FAILURE.test(code)) return false;
  if (typeof root.type === 'string') {
    if (RETRIABLE_PROTOCOL_TYPES.has(root.type)) return true;
    // The broker's own verdict for the other protocol errors (kafkajs copies it from the error table).
    return root.retriable === true;
  }
  if (RETRIABLE_ERROR_NAMES.has(name)) return true;
  if (RETRIABLE_SOCKET_CODES.has(code)) return true;
  if (typeof root.message === 'string' && root.message.includes(NOT_HOSTED)) return true;
  // Other kafkajs errors carry their own flag; anything else (ours, the caller's) is not ours to retry.
  return name.startsWith('KafkaJS') && root.retriable === true;
}

/**
 * One line for logs and status: the chain's names outermost first, then each
 * distinct message (kafkajs's wrappers repeat their cause's), with the
 * protocol error type, e.g. "KafkaJSNumberOfRetriesExceeded > KafkaJSProtocolError:
 * This server does not host this topic-partition (UNKNOWN_TOPIC_OR_PARTITION)".
 */
export function describeKafkaError(error: unknown): string {
  const chain = causeChain(error);
  if (chain.length === 0) return String(error);
  const names = chain.map((link) => (typeof link.name === 'string' ? link.name : 'Error'));
  const messages: string[] = [];
  for (const link of chain) {
    const message = typeof link.message === 'string' ? link.message : '';
    if (message !== '' && !messages.some((m) => m.includes(message))) messages.push(message);
  }
  const type = chain.map((link) => link.type).find((t): t is string => typeof t === 'string');
  return `${names.join(' > ')}: ${messages.join(': ')}${type === undefined ? '' : ` (${type})`}`.slice(0, MAX_ERROR_DESCRIPTION_CHARS);
}
