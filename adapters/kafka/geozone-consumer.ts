import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { RegionInput } from '../../actors/region-io.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { writeDeadLetter } from './dead-letter.js';
import { KafkaEdgeStatus } from './edge-status.js';
import { geozoneAssigner } from './geozone-assigner.js';
import { decodeInput, type RawInputMessage } from './input-decoder.js';
import { isRetriableKafkaError, retry, type BackoffPolicy } from './retry.js';
import { geozonePartitioner, sortedGeozones } from './topics.js';

/**
 * The ownership-aware consumer the Kafka region runs on: a member of the
 * region's consumer group with the geozone assigner, auto-commit off (offsets
 * are committed by the journal transactions), a group without committed offsets
 * reading from the beginning. Every message is decoded at the edge
 * (input-decoder); a poison one goes to the dead-letter topic (dead-letter.ts)
 * and reaches `onMessage` with no input, so that its offset counts as consumed.
 *
 * It waits out a Kafka that is not there: connecting and subscribing are retried
 * with backoff on retriable errors (broker down, topics just created and not yet
 * served everywhere), forever unless `signal` aborts or `joinTimeoutMs` is given.
 * Once running, a failing fetch, heartbeat or commit is retried by kafkajs
 * `consumerRetries` times; then the consumer crashes and restarts itself (kafkajs
 * does, for the errors it deems retriable; this module does for the others that
 * isRetriableKafkaError deems retriable). A fatal crash stops it for good. Every
 * crash is reported to `onCrash` and in `status`.
 */

export interface GeozoneMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The geozone whose partition the message came from. */
  readonly geozone: string;
  /** The validated input; undefined for a poison message (already dead-lettered). */
  readonly input: RegionInput | undefined;
  /** Let the group know this member is alive (call while waiting long). */
  readonly heartbeat: () => Promise<void>;
}

/** An input topic of another role than the region's, with its decoder (an ArcError for a poison message). */
export interface ConsumedTopic {
  readonly topic: string;
  /** Its kind on dead letters (x-wire-kind). */
  readonly kind: string;
  decode(message: RawInputMessage, partitionGeozone: string): RegionInput;
}

export interface GeozoneConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly geozones: readonly string[];
  /** The region's input topics; another role names its own in `inputs` instead. */
  readonly topics?: { readonly telemetry: string; readonly inference: string; readonly result: string } | undefined;
  readonly inputs?: readonly ConsumedTopic[] | undefined;
  /** One shard owns every partition of every input topic (see geozoneAssigner). */
  readonly wholeTopics?: boolean | undefined;
  readonly deadLetterTopic: string;
  readonly systemTopic: string;
  /** The full set of geozones this member owns now (after every group join). */
  readonly onAssigned: (geozones: readonly string[]) => void;
  /**
   * Checks a decoded input against its raw message before it is handed on (a producer's signed
   * identity, say); a throw sends the message to the dead-letter topic with the error's code.
   */
  readonly verifyInput?: (input: RegionInput, raw: { topic: string; key: Buffer | null; value: Buffer | null; headers: RawInputMessage['headers'] }, partitionGeozone: string) => void;
  /**
   * Called once per message, in partition order; a throw (or a rejected promise) makes kafkajs
   * deliver the message again. Return nothing when the message was handled at once: the batch
   * goes on without a turn of the event loop per message.
   */
  readonly onMessage: (message: GeozoneMessage) => Promise<void> | undefined;
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  /** Give up (ARC_ERR_USAGE) if the group is not joined by then; default: wait until joined, stopped or aborted. */
  readonly joinTimeoutMs?: number;
  /** Where the consumer reports, as part 'consumer' (its dead-letter writes included); a private one if absent. */
  readonly status?: KafkaEdgeStatus;
  /** Aborts a start still waiting for Kafka (the start rejects) and stops a running consumer. */
  readonly signal?: AbortSignal;
  /** Before each wait of a retried start or self-restart. */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
  /** The running consumer crashed; `restarting` false means it stopped for good (the region should stop). */
  readonly onCrash?: (error: unknown, restarting: boolean) => void;
  readonly backoff?: Partial<BackoffPolicy>;
  /** Jitter for the backoff (none without it). */
  readonly random?: () => number;
  /**
   * How often kafkajs retries a failing fetch, heartbeat or commit before the
   * consumer crashes and restarts (default 6, about 6 s with kafkaClient's
   * retry times): how long an outage stays out of `status`.
   */
  readonly consumerRetries?: number;
  /** Timestamps of the poison-message system events (default: the wall clock). */
  readonly nowMs?: () => number;
}

export interface GeozoneConsumer {
  pause(): void;
  stop(): Promise<void>;
  readonly status: KafkaEdgeStatus;
  readonly counters: Readonly<{ accepted: number; deadLettered: number; rebalances: number; crashes: number; restarts: number }>;
}

const DEFAULT_CONSUMER_RETRIES = 6;

export async function startGeozoneConsumer(options: GeozoneConsumerOptions): Promise<GeozoneConsumer> {
  const zones = sortedGeozones(options.geozones);
  const wholeTopics = options.wholeTopics === true;
  const kindByTopic = new Map<string, { kind: string; decode: ConsumedTopic['decode'] }>();
  const regionTopics = options.topics;
  if (regionTopics !== undefined) {
    for (const kind of ['telemetry', 'inference', 'result'] as const) kindByTopic.set(regionTopics[kind], { kind, decode: (message, geozone) => decodeInput(kind, message, geozone) });
    if (kindByTopic.size !== 3) throw new ArcError(ErrorCodes.USAGE, 'the telemetry, inference and result topics must be three different topics');
  }
  for (const input of options.inputs ?? []) {
    if (kindByTopic.has(input.topic)) throw new ArcError(ErrorCodes.USAGE, `input topic ${input.topic} named twice`);
    kindByTopic.set(input.topic, { kind: input.kind, decode: (message, geozone) => input.decode(message, geozone) });
  }
  if (kindByTopic.size === 0) throw new ArcError(ErrorCodes.USAGE, 'a consumer needs at least one input topic');
  const topics = [...kindByTopic.keys()];
  const nowMs = options.nowMs ?? (() => Date.now());
  const counters = { accepted: 0, deadLettered: 0, rebalances: 0, crashes: 0, restarts: 0 };
  const status = options.status ?? new KafkaEdgeStatus();
  const part = status.part('consumer');
  // Said again after each message handled: a failed dead-letter write that succeeds on redelivery clears itself.
  let healthy = false;
  const connected = (): void => {
    if (healthy) return;
    healthy = true;
    part.connected();
  };
  const retrying = (error: unknown): void => {
    healthy = false;
    part.retrying(error);
  };

  // One signal for everything this consumer waits on: the caller's, or our own stop.
  const stopper = new AbortController();
  const signal = options.signal === undefined ? stopper.signal : AbortSignal.any([options.signal, stopper.signal]);
  const onRetry = (attempt: number, error: unknown, delayMs: number): void => {
    retrying(error);
    options.onRetry?.(attempt, error, delayMs);
  };
  const retryOptions = {
    signal,
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    ...(options.random === undefined ? {} : { random: options.random }),
  };

  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    partitionAssigners: [geozoneAssigner(zones.length, { wholeTopics })],
    sessionTimeout: options.sessionTimeoutMs ?? 6_000,
    heartbeatInterval: heartbeatIntervalMs,
    rebalanceTimeout: 20_000,
    allowAutoTopicCreation: false,
    retry: {
      retries: options.consumerRetries ?? DEFAULT_CONSUMER_RETRIES,
      // kafkajs asks only about errors it deems retriable; an ArcError or a bug in onMessage is not worth a restart loop.
      restartOnFailure: (error) => Promise.resolve(isRetriableKafkaError(error)),
    },
  });
  const producer: Producer = options.kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(zones) });

  let settleJoin: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  const joined = new Promise<void>((resolve, reject) => {
    settleJoin = { resolve, reject };
  });
  joined.catch(() => undefined); // also rejected when nobody waits any more (a fatal crash after the start)

  let stopping: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stopper.abort(new ArcError(ErrorCodes.USAGE, `consumer of group ${options.groupId} stopped`));
      await restarting;
      // The consumer first: it waits for the message in hand, whose dead letter may be on its way out.
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      healthy = false;
      part.stopped();
    })();
    return stopping;
  };
  options.signal?.addEventListener('abort', () => void stop(), { once: true });

  /** The message as an input, or undefined once it is dead-lettered (a promise only then). */
  const decode = (decoder: { kind: string; decode: ConsumedTopic['decode'] }, topic: string, partition: number, geozone: string, message: KafkaMessage): RegionInput | Promise<undefined> => {
    const kind = decoder.kind;
    try {
      const input = decoder.decode(message, geozone);
      options.verifyInput?.(input, { topic, key: message.key, value: message.value, headers: message.headers }, geozone);
      return input;
    } catch (error) {
      return writeDeadLetter(producer, { kind, topic, partition, geozone, message, error, refusedBy: options.groupId }, { deadLetter: options.deadLetterTopic, system: options.systemTopic }, nowMs()).then(
        () => {
          counters.deadLettered++;
          return undefined;
        },
        (writeError: unknown) => {
          // Not handed on: kafkajs delivers the message again (and restarts the consumer if that keeps failing).
          retrying(writeError);
          throw writeError;
        },
      );
    }
  };

  /**
   * A fetched batch of one partition, message by message. Batches rather than kafkajs's
   * eachMessage: that awaits a heartbeat check and an offset bookkeeping step per message,
   * which cost more than deciding most inputs. Here a message handled at once costs no turn
   * of the event loop; the heartbeat is sent about once a heartbeat interval.
   */
  const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    const { topic, partition } = batch;
    const decoder = kindByTopic.get(topic);
    const geozone = wholeTopics ? zones[0] : zones[partition];
    if (decoder === undefined || geozone === undefined) return; // not ours (the assigner does not hand these out)
    const beat = (): Promise<void> => payload.heartbeat();
    let beatAtMs = performance.now();
    for (const message of batch.messages) {
      // A rebalance or a stop: what is not resolved yet is fetched again by whoever owns it next.
      if (!payload.isRunning() || payload.isStale()) return;
      const decoded = decode(decoder, topic, partition, geozone, message);
      const input = decoded instanceof Promise ? await decoded : decoded;
      const handled = options.onMessage({ topic, partition, offset: message.offset, geozone, input, heartbeat: beat });
      if (handled !== undefined) await handled;
      if (input !== undefined) counters.accepted++;
      payload.resolveOffset(message.offset);
      connected();
      if (performance.now() - beatAtMs >= heartbeatIntervalMs) {
        beatAtMs = performance.now();
        await beat();
      }
    }
  };

  /** Connect, subscribe, run: each retried while Kafka is not there (run itself reports through CRASH). */
  const startRunning = async (): Promise<void> => {
    await retry(async () => {
      try {
        await consumer.connect();
        await consumer.subscribe({ topics, fromBeginning: true });
      } catch (error) {
        await consumer.disconnect().catch(() => undefined);
        throw error;
      }
    }, { ...retryOptions, onRetry });
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch });
  };

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    counters.rebalances++;
    const owned = new Set<string>();
    for (const partitions of Object.values(event.payload.memberAssignment)) {
      for (const p of partitions) {
        const zone = wholeTopics ? zones[0] : zones[p];
        if (zone !== undefined) owned.add(zone);
      }
    }
    connected();
    options.onAssigned([...owned].sort());
    settleJoin?.resolve();
  });

  consumer.on(consumer.events.CRASH, (event) => {
    if (stopping !== undefined) return;
    const { error, restart } = event.payload;
    counters.crashes++;
    if (restart) {
      // kafkajs restarts it after its own retry time.
      counters.restarts++;
      retrying(error);
      options.onCrash?.(error, true);
      return;
    }
    if (!isRetriableKafkaError(error)) {
      healthy = false;
      part.failed(error);
      options.onCrash?.(error, false);
      settleJoin?.reject(error);
      return;
    }
    // kafkajs gave up on an error that waiting does fix (it has disconnected the consumer already): start it again.
    counters.restarts++;
    retrying(error);
    options.onCrash?.(error, true);
    restarting = startRunning().catch((restartError: unknown) => {
      if (signal.aborted) return;
      healthy = false;
      part.failed(restartError);
      options.onCrash?.(restartError, false);
      settleJoin?.reject(restartError);
    });
  });

  try {
    await retry(() => producer.connect(), { ...retryOptions, onRetry });
    await startRunning();
    await waitForJoin(joined, signal, options.joinTimeoutMs, options.groupId);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pause: () => consumer.pause(topics.map((topic) => ({ topic }))),
    stop,
    status,
    counters,
  };
}

async function waitForJoin(joined: Promise<void>, signal: AbortSignal, timeoutMs: number | undefined, groupId: string): Promise<void> {
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  const waits: Promise<unknown>[] = [joined, aborted];
  const timer = new AbortController();
  if (timeoutMs !== undefined) {
    waits.push(
      sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => {
        throw new ArcError(ErrorCodes.USAGE, `consumer group ${groupId} not joined within ${timeoutMs} ms: is the broker up and are the input topics there?`);
      }),
    );
  }
  try {
    await Promise.race(waits);
  } finally {
    timer.abort();
  }
}
