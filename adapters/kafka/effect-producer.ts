import type { Kafka, Producer } from 'kafkajs';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { KafkaEdgeStatus } from './edge-status.js';
import { describeKafkaError, isRetriableKafkaError, retry, type BackoffPolicy } from './retry.js';
import { geozonePartitioner } from './topics.js';

/**
 * The producer the region's effects leave by: one batch per effect release
 * (acks=all, idempotent, key = geozone, so each geozone's messages land on its
 * partition). Connecting waits out a broker that is not there yet, and a send
 * that fails with a retriable error (broker restarting, leader moving) is tried
 * again with backoff until it is acknowledged, the producer is closed, the
 * error turns out fatal, or maxSendWaitMs has passed since the send.
 *
 * Order: a batch is not sent before every earlier batch that shares a key with
 * it has settled, so while one geozone's batch waits out an outage, the later
 * batches of that geozone wait behind it instead of overtaking it; geozones
 * that share no key with it go on. A batch that fails for good leaves a gap,
 * never a reordering. Delivery is at least once: a retry after a lost
 * acknowledgement may write a batch twice (the idempotent producer removes
 * most such doubles; the readers de-duplicate by request id).
 */

/** Messages of one effect release, produced in one batch. */
export interface OutboundMessage {
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers?: Record<string, string>;
}

export interface EffectProducer {
  /** Resolves once every replica has the batch; rejects on a fatal error, on close, or when too many sends wait (ARC_ERR_OVERLOADED). */
  send(messages: readonly OutboundMessage[]): Promise<void>;
  /** Stops retrying (waiting sends reject) and disconnects. */
  close(): Promise<void>;
  readonly status: KafkaEdgeStatus;
  /** Sends accepted and not yet settled. */
  readonly pending: number;
}

export interface EffectProducerOptions {
  /** Where the producer reports, as part 'effects'; a private one if absent. */
  readonly status?: KafkaEdgeStatus;
  /** Aborts a start still waiting for Kafka (the start rejects) and closes the producer. */
  readonly signal?: AbortSignal;
  /** Before each wait of a retried connect or send. */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
  readonly backoff?: Partial<BackoffPolicy>;
  /** Jitter for the backoff (none without it). */
  readonly random?: () => number;
  /** Sends accepted at once (sending, retrying or waiting for an earlier batch of their key); more are refused. Default 10,000. */
  readonly maxPendingSends?: number;
  /**
   * How long after its send() a batch may still be retried (default 120 s): effects are
   * real-time (a dispatch for a reservation that has expired helps nobody), and a region
   * stopping during an outage must not wait for ever. A batch past it fails
   * (ARC_ERR_EFFECT_DELIVERY) at its next failed attempt.
   */
  readonly maxSendWaitMs?: number;
}

const DEFAULT_MAX_PENDING_SENDS = 10_000;
/**
 * Messages per kafkajs sendBatch call. kafkajs groups a call's messages by partition
 * by copying the partition's list for every message (quadratic in the messages of a
 * partition): measured here at 1.6 µs a message for 200, 3.5 µs for 1,000 and 8.9 µs
 * for 4,000, and a region under load releases thousands of effects at once (one
 * journal append's worth, nearly all to its geozone's partitions). Larger releases
 * go as several calls, one after another, in order.
 */
export const MAX_MESSAGES_PER_PRODUCE_CALL = 256;
const DEFAULT_MAX_SEND_WAIT_MS = 120_000;

export async function startEffectProducer(kafka: Kafka, geozones: readonly string[], options: EffectProducerOptions = {}): Promise<EffectProducer> {
  const status = options.status ?? new KafkaEdgeStatus();
  const part = status.part('effects');
  const maxPending = options.maxPendingSends ?? DEFAULT_MAX_PENDING_SENDS;
  const maxWaitMs = options.maxSendWaitMs ?? DEFAULT_MAX_SEND_WAIT_MS;
  const closer = new AbortController();
  const signal = options.signal === undefined ? closer.signal : AbortSignal.any([options.signal, closer.signal]);
  const retryOptions = {
    signal,
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.random === undefined ? {} : { random: options.random }),
    onRetry: (attempt: number, error: unknown, delayMs: number) => {
      part.retrying(error);
      options.onRetry?.(attempt, error, delayMs);
    },
  };
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(geozones) });

  /** kafkajs sends under way: kafkajs retries one on its own, reconnecting even after a disconnect, so close waits for them. */
  const attempts = new Set<Promise<unknown>>();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closer.abort(new ArcError(ErrorCodes.EFFECT_DELIVERY, 'the effect producer is closed'));
      await Promise.allSettled([...attempts]);
      await producer.disconnect().catch(() => undefined);
      part.stopped();
    })();
    return closing;
  };
  options.signal?.addEventListener('abort', () => void close(), { once: true });

  try {
    await retry(() => producer.connect(), retryOptions);
  } catch (error) {
    await close();
    throw error;
  }
  part.connected();

  /** The last batch of each key, settled or not: a new batch of that key starts after it. */
  const tails = new Map<string, Promise<void>>();
  let pending = 0;

  const sendNow = async (messages: readonly OutboundMessage[], sentAtMs: number): Promise<void> => {
    // In order, one call at a time: a chunk that fails for good leaves the rest unsent (a gap, never a reordering).
    for (let start = 0; start < messages.length; start += MAX_MESSAGES_PER_PRODUCE_CALL) {
      await sendCall(messages.slice(start, start + MAX_MESSAGES_PER_PRODUCE_CALL), sentAtMs);
    }
  };

  const sendCall = async (messages: readonly OutboundMessage[], sentAtMs: number): Promise<void> => {
    const byTopic = new Map<string, { key: string; value: string; headers?: Record<string, string> }[]>();
    for (const m of messages) {
      let list = byTopic.get(m.topic);
      if (list === undefined) byTopic.set(m.topic, (list = []));
      list.push({ key: m.key, value: m.value, ...(m.headers === undefined ? {} : { headers: m.headers }) });
    }
    const topicMessages = [...byTopic].map(([topic, list]) => ({ topic, messages: list }));
    const inTime = () => performance.now() - sentAtMs < maxWaitMs;
    try {
      await retry(
        () => {
          const attempt = producer.sendBatch({ acks: -1, topicMessages });
          attempts.add(attempt);
          void attempt.then(
            () => attempts.delete(attempt),
            () => attempts.delete(attempt),
          );
          return attempt;
        },
        { ...retryOptions, isRetriable: (error) => isRetriableKafkaError(error) && inTime() },
      );
    } catch (error) {
      if (signal.aborted || inTime() || !isRetriableKafkaError(error)) throw error;
      throw new ArcError(ErrorCodes.EFFECT_DELIVERY, `effect batch not acknowledged within ${maxWaitMs} ms of its send: ${describeKafkaError(error)}`, { maxSendWaitMs: maxWaitMs });
    }
    part.connected();
  };

  return {
    send(messages) {
      if (closing !== undefined) return Promise.reject(new ArcError(ErrorCodes.EFFECT_DELIVERY, 'the effect producer is closed'));
      if (messages.length === 0) return Promise.resolve();
      if (pending >= maxPending) {
        return Promise.reject(new ArcError(ErrorCodes.OVERLOADED, `${pending} effect batches are waiting for Kafka already (limit ${maxPending}); this one is not sent`, { pending, limit: maxPending }));
      }
      pending++;
      const keys = [...new Set(messages.map((m) => m.key))];
      const before = keys.map((k) => tails.get(k)).filter((p): p is Promise<void> => p !== undefined);
      const sentAtMs = performance.now();
      const sent = Promise.all(before).then(() => sendNow(messages, sentAtMs));
      const settled = sent.then(
        () => undefined,
        () => undefined,
      );
      for (const k of keys) tails.set(k, settled);
      void settled.then(() => {
        pending--;
        for (const k of keys) if (tails.get(k) === settled) tails.delete(k);
      });
      return sent;
    },
    close,
    status,
    get pending() {
      return pending;
    },
  };
}
