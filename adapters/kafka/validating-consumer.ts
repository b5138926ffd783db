import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type EachMessagePayload, type IHeaders, type Kafka, type KafkaMessage } from 'kafkajs';
import type { RegionInput } from '../../actors/region-io.js';
import { parseWire, type WireKind } from '../../actors/wire.js';
import { systemEventSchema, type SystemEventV1 } from '../../actors/wire-out.js';
import { ArcError, ErrorCodes, type ErrorCode } from '../../runtime/errors.js';

/**
 * The region's Kafka edge on the way in: consumes the three input topics in a
 * consumer group, validates every message with its zod schema (parseWire), and
 * hands the valid ones, in partition order, to `onInput`. A message that fails
 * validation (or has no value) never reaches an actor and never stops the
 * consumer: it is copied, value and key unchanged, to the dead-letter topic with
 * the reason in `x-error-*` headers and its origin in `x-source-*` headers, and
 * a SystemEvent v1 ('poison message', severity warn) goes to the system topic.
 *
 * Delivery is at least once: a message's offset is committed only after
 * `onInput` returned (or after its dead letter and system event were
 * acknowledged by the broker, acks=all). An error thrown by `onInput`, or a
 * failed dead-letter write, is not a bad message: it propagates to kafkajs,
 * which retries the message (and restarts the consumer if retries run out).
 *
 * Dead letters and system events keep the partition of their source message
 * (modulo the target's partition count): on topics partitioned by geozone that
 * is the geozone's partition, without trusting the key of a message that is
 * already known to be bad.
 */

export interface MessageSource {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offset (a decimal int64). */
  readonly offset: string;
}

export interface ValidatingConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  /** Topic names of the three inputs (arc.telemetry.node, arc.request.inference, arc.result.inference). */
  readonly topics: { readonly telemetry: string; readonly inference: string; readonly result: string };
  readonly deadLetterTopic: string;
  readonly systemTopic: string;
  readonly onInput: (input: RegionInput, source: MessageSource) => Promise<void> | void;
  /** Where a group without committed offsets starts: true = earliest retained message; default false (latest). */
  readonly fromBeginning?: boolean;
  /** Timestamps of the system events (default: the wall clock). */
  readonly nowMs?: () => number;
  /** How long to wait for the consumer to join its group before giving up (default 60 s). */
  readonly joinTimeoutMs?: number;
  readonly sessionTimeoutMs?: number;
}

export interface ValidatingConsumer {
  /** Stops consuming and disconnects the consumer and the producer (idempotent). */
  stop(): Promise<void>;
  /** Live counts of this consumer's messages. */
  readonly counters: Readonly<{ accepted: number; deadLettered: number }>;
}

/** Headers of a dead letter (plus the original message's own headers). */
export const deadLetterHeaders = {
  code: 'x-error-code',
  message: 'x-error-message',
  sourceTopic: 'x-source-topic',
  sourcePartition: 'x-source-partition',
  sourceOffset: 'x-source-offset',
} as const;

const MAX_ERROR_MESSAGE_CHARS = 1024;

/**
 * Starts the consumer; resolves once it has joined its group (so messages
 * published from then on are seen even with fromBeginning false).
 */
export async function startValidatingConsumer(options: ValidatingConsumerOptions): Promise<ValidatingConsumer> {
  const kindByTopic = new Map<string, WireKind>([
    [options.topics.telemetry, 'telemetry'],
    [options.topics.inference, 'inference'],
    [options.topics.result, 'result'],
  ]);
  if (kindByTopic.size !== 3) throw new ArcError(ErrorCodes.USAGE, 'the telemetry, inference and result topics must be three different topics');
  const nowMs = options.nowMs ?? (() => Date.now());
  const counters = { accepted: 0, deadLettered: 0 };

  const { kafka } = options;
  const admin = kafka.admin();
  // Every message gets an explicit partition; the default partitioner is named only to silence kafkajs's warning.
  const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 10 } });
  const consumer = kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: options.sessionTimeoutMs ?? 30_000,
    rebalanceTimeout: 60_000,
    allowAutoTopicCreation: false,
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const results = await Promise.allSettled([consumer.disconnect(), producer.disconnect(), admin.disconnect()]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    })();
    return stopping;
  };

  try {
    await admin.connect();
    const partitionsOf = new Map<string, number>();
    for (const topic of [options.deadLetterTopic, options.systemTopic, ...kindByTopic.keys()]) {
      let count = 0;
      try {
        const meta = await admin.fetchTopicMetadata({ topics: [topic] });
        count = meta.topics[0]?.partitions.length ?? 0;
      } catch {
        count = 0;
      }
      if (count === 0) throw new ArcError(ErrorCodes.USAGE, `topic ${topic} does not exist: create the topics first (arcnet kafka:topics)`, { topic });
      partitionsOf.set(topic, count);
    }
    await admin.disconnect();
    const partitionFor = (topic: string, sourcePartition: number): number => sourcePartition % (partitionsOf.get(topic) ?? 1);

    const deadLetter = async (kind: WireKind, payload: EachMessagePayload, error: unknown): Promise<void> => {
      const { topic, partition, message } = payload;
      const code: ErrorCode = error instanceof ArcError ? error.code : ErrorCodes.INVARIANT;
      const reason = (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_MESSAGE_CHARS);
      const headers: IHeaders = {
        ...originalHeaders(message),
        [deadLetterHeaders.code]: code,
        [deadLetterHeaders.message]: reason,
        [deadLetterHeaders.sourceTopic]: topic,
        [deadLetterHeaders.sourcePartition]: String(partition),
        [deadLetterHeaders.sourceOffset]: message.offset,
      };
      const event: SystemEventV1 = systemEventSchema.parse({
        severity: 'warn',
        message: 'poison message',
        details: { code, topic, partition, offset: message.offset },
        timestamp: new Date(nowMs()).toISOString(),
      } satisfies SystemEventV1);
      await producer.sendBatch({
        acks: -1,
        topicMessages: [
          { topic: options.deadLetterTopic, messages: [{ key: message.key, value: message.value, headers, partition: partitionFor(options.deadLetterTopic, partition) }] },
          {
            topic: options.systemTopic,
            messages: [{ key: message.key, value: JSON.stringify(event), headers: { 'x-schema': 'SystemEvent/v1', 'x-wire-kind': kind }, partition: partitionFor(options.systemTopic, partition) }],
          },
        ],
      });
      counters.deadLettered++;
    };

    await producer.connect();
    await consumer.connect();
    const joined = new Promise<void>((resolve, reject) => {
      const offJoin = consumer.on(consumer.events.GROUP_JOIN, () => {
        offJoin();
        offCrash();
        resolve();
      });
      const offCrash = consumer.on(consumer.events.CRASH, (event) => {
        if (event.payload.restart) return;
        offJoin();
        offCrash();
        reject(event.payload.error);
      });
    });
    await consumer.subscribe({ topics: [...kindByTopic.keys()], fromBeginning: options.fromBeginning ?? false });
    await consumer.run({
      eachMessage: async (payload) => {
        const { topic, partition, message } = payload;
        const kind = kindByTopic.get(topic);
        if (kind === undefined) throw new ArcError(ErrorCodes.INVARIANT, `message from unsubscribed topic ${topic}`);
        let input: RegionInput;
        try {
          if (message.value === null) throw new ArcError(ErrorCodes.VALIDATION, `${kind} message has no value (a tombstone)`);
          input = parseWire(kind, message.value);
        } catch (error) {
          await deadLetter(kind, payload, error);
          return;
        }
        await options.onInput(input, { topic, partition, offset: message.offset });
        counters.accepted++;
      },
    });
    const timeoutMs = options.joinTimeoutMs ?? 60_000;
    const timer = new AbortController();
    try {
      const outcome = await Promise.race([joined.then(() => 'joined' as const), sleep(timeoutMs, 'timeout' as const, { signal: timer.signal }).catch(() => 'cancelled' as const)]);
      if (outcome === 'timeout') throw new ArcError(ErrorCodes.USAGE, `consumer group ${options.groupId} not joined within ${timeoutMs} ms`);
    } finally {
      timer.abort();
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { stop, counters };
}

function originalHeaders(message: KafkaMessage): IHeaders {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}
