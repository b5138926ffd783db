import type { IHeaders, KafkaMessage, Producer, TopicMessages } from 'kafkajs';
import type { WireKind } from '../../actors/wire.js';
import { systemEventSchema, type SystemEventV1 } from '../../actors/wire-out.js';
import { ArcError, ErrorCodes, type ErrorCode } from '../../runtime/errors.js';

/**
 * Poison messages of the input topics: a message that fails validation never
 * reaches an actor and never stops the consumer. It is written, with the broker's
 * acknowledgement of every replica (acks=all), as:
 *
 * 1. a dead letter on arc.deadletter, on the partition it came from (its
 *    geozone's: the input topics and arc.deadletter are both partitioned by
 *    geozone), with
 *    - key and value: the original message's, byte for byte (a null value stays null);
 *    - headers: the original message's own headers, then
 *      `x-error-code` (ARC_ERR_MALFORMED_JSON, ARC_ERR_PAYLOAD_TOO_LARGE,
 *      ARC_ERR_VALIDATION, ARC_ERR_UNSUPPORTED_VERSION; ARC_ERR_INVARIANT for
 *      anything that is not a coded refusal), `x-error-message` (at most 1,024
 *      characters), `x-source-topic`, `x-source-partition`, `x-source-offset`
 *      (decimal) and `x-wire-kind` (telemetry, inference or result);
 * 2. a SystemEvent v1 on arc.event.system, keyed by the geozone, same partition,
 *    headers `x-schema: SystemEvent/v1` and `x-wire-kind`:
 *    `{"severity":"warn","message":"poison message","details":{"code","topic",
 *    "partition","offset","geozone"},"timestamp":ISO-8601}`.
 *
 * Only then does the consumer hand the message's offset on (as consumed, with
 * no input), so the offset is committed with the shard's journal like any
 * other. If the write fails, the message is not handed on: kafkajs delivers it
 * again, so a dead letter is written at least once (a retry after a lost
 * acknowledgement can write it twice) and is never skipped.
 */

/** Headers a dead letter carries besides the original message's own. */
export const deadLetterHeaders = {
  code: 'x-error-code',
  message: 'x-error-message',
  sourceTopic: 'x-source-topic',
  sourcePartition: 'x-source-partition',
  sourceOffset: 'x-source-offset',
  wireKind: 'x-wire-kind',
  /** The consumer group that refused it: deployments sharing a cluster tell their own refusals apart. */
  refusedBy: 'x-refused-by',
  /** The geozone the source partition stands for in that group's geozone list. */
  sourceGeozone: 'x-source-geozone',
} as const;

export const POISON_EVENT_MESSAGE = 'poison message';
export const MAX_ERROR_MESSAGE_CHARS = 1024;

export interface PoisonMessage {
  /** The input kind (telemetry, inference, result, or another role's, e.g. TrainingJob). */
  readonly kind: WireKind | (string & {});
  readonly topic: string;
  readonly partition: number;
  /** The geozone whose partition the message came from. */
  readonly geozone: string;
  readonly message: KafkaMessage;
  /** Why it was refused (an ArcError's code goes on the dead letter). */
  readonly error: unknown;
  /** The consumer group that read and refused it. */
  readonly refusedBy?: string;
}

export interface DeadLetterTopics {
  readonly deadLetter: string;
  readonly system: string;
}

/** The dead letter and its system event, as one batch for Producer.sendBatch. */
export function deadLetterBatch(poison: PoisonMessage, topics: DeadLetterTopics, timestampMs: number): TopicMessages[] {
  const { kind, topic, partition, geozone, message, error, refusedBy } = poison;
  const code: ErrorCode = error instanceof ArcError ? error.code : ErrorCodes.INVARIANT;
  const reason = (error instanceof Error ? error.message : String(error)).slice(0, MAX_ERROR_MESSAGE_CHARS);
  const headers: IHeaders = {
    ...originalHeaders(message),
    [deadLetterHeaders.code]: code,
    [deadLetterHeaders.message]: reason,
    [deadLetterHeaders.sourceTopic]: topic,
    [deadLetterHeaders.sourcePartition]: String(partition),
    [deadLetterHeaders.sourceOffset]: message.offset,
    [deadLetterHeaders.wireKind]: kind,
    [deadLetterHeaders.sourceGeozone]: geozone,
    ...(refusedBy === undefined ? {} : { [deadLetterHeaders.refusedBy]: refusedBy }),
  };
  const event: SystemEventV1 = systemEventSchema.parse({
    severity: 'warn',
    message: POISON_EVENT_MESSAGE,
    details: { code, topic, partition, offset: message.offset, geozone },
    timestamp: new Date(timestampMs).toISOString(),
  } satisfies SystemEventV1);
  // Explicit partitions: the key of a message already known to be bad is not trusted to route it.
  return [
    { topic: topics.deadLetter, messages: [{ key: message.key, value: message.value, headers, partition }] },
    { topic: topics.system, messages: [{ key: geozone, value: JSON.stringify(event), headers: { 'x-schema': 'SystemEvent/v1', [deadLetterHeaders.wireKind]: kind }, partition }] },
  ];
}

/** Writes a poison message's dead letter and system event; resolves once every replica has them. */
export async function writeDeadLetter(producer: Producer, poison: PoisonMessage, topics: DeadLetterTopics, timestampMs: number): Promise<void> {
  await producer.sendBatch({ acks: -1, topicMessages: deadLetterBatch(poison, topics, timestampMs) });
}

function originalHeaders(message: KafkaMessage): IHeaders {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) if (value !== undefined) headers[name] = value;
  return headers;
}
