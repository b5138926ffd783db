import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import kafkajs, { Kafka, logLevel, type Consumer, type EachMessagePayload, type IHeaders, type KafkaMessage, type PartitionAssigner, type Producer } from 'kafkajs';
import type { RegionInput } from '../../actors/region-io.js';
import { parseWire, type WireKind } from '../../actors/wire.js';
import { ArcError, ErrorCodes, type ErrorCode } from '../../runtime/errors.js';
import { geozonePartitioner, sortedGeozones } from './topics.js';

// kafkajs is CommonJS; Node's named-export detection misses some of its members: take them off the default export.
const { AssignerProtocol } = kafkajs;

/**
 * Shard ownership by a Kafka consumer group. The input topics are partitioned by
 * geozone (partition i = the i-th geozone in sorted order), so a geozone is owned
 * by whichever member holds partition i of every input topic. The stock assigners
 * spread partitions of different topics independently; this one hands all
 * partitions with the same index to the same member, and leaves partitions beyond
 * the geozone count unassigned (they belong to no geozone of this federation).
 *
 * Also here (so that only adapters/ import kafkajs): the ownership-aware consumer
 * the Kafka region runs on, and the producer its effects leave by.
 */
export const GEOZONE_ASSIGNER = 'ArcnetGeozoneAssigner';

/** Request header carrying the geozones that already tried a forwarded request (JSON string[]). */
export const TRIED_HEADER = 'x-arcnet-tried';
/** Request header marking a forward acknowledgement (value: `{"request-id": ...}`), not a new request. */
export const FORWARD_ACK_HEADER = 'x-arcnet-forward-ack';

/** Partition index → member, for `geozoneCount` partitions and the given members. */
export function assignByIndex(memberIds: readonly string[], geozoneCount: number): Map<number, string> {
  const members = [...memberIds].sort();
  const out = new Map<number, string>();
  if (members.length === 0) return out;
  for (let index = 0; index < geozoneCount; index++) out.set(index, members[index % members.length] as string);
  return out;
}

export function geozoneAssigner(geozoneCount: number): PartitionAssigner {
  return ({ cluster }) => ({
    name: GEOZONE_ASSIGNER,
    version: 0,
    assign({ members, topics }) {
      const byIndex = assignByIndex(
        members.map((m) => m.memberId),
        geozoneCount,
      );
      const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
      for (const topic of topics) {
        for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
          const member = byIndex.get(partitionId);
          if (member === undefined) continue;
          const mine = assignment.get(member) as Record<string, number[]>;
          (mine[topic] ??= []).push(partitionId);
        }
      }
      return Promise.resolve(
        [...assignment].map(([memberId, topicPartitions]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: topicPartitions, userData: Buffer.alloc(0) }),
        })),
      );
    },
    protocol({ topics }) {
      return { name: GEOZONE_ASSIGNER, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
    },
  });
}

/** One input message, validated; `input` is undefined for a poison message (already dead-lettered). */
export interface GeozoneMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The geozone whose partition the message came from. */
  readonly geozone: string;
  readonly input: RegionInput | undefined;
  /** Let the group know this member is alive (call while waiting long). */
  readonly heartbeat: () => Promise<void>;
}

export interface GeozoneConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly geozones: readonly string[];
  readonly topics: { readonly telemetry: string; readonly inference: string; readonly result: string };
  readonly deadLetterTopic: string;
  readonly systemTopic: string;
  /** The full set of geozones this member owns now (after every group join). */
  readonly onAssigned: (geozones: readonly string[]) => void;
  readonly onMessage: (message: GeozoneMessage) => Promise<void>;
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly joinTimeoutMs?: number;
}

export interface GeozoneConsumer {
  pause(): void;
  stop(): Promise<void>;
  readonly counters: Readonly<{ accepted: number; deadLettered: number; rebalances: number }>;
}

/**
 * A consumer group member with the geozone assigner, auto-commit off (offsets
 * are committed by the journal transactions) and a group without committed
 * offsets reading from the beginning. Poison messages go to the dead-letter topic
 * with a system event and reach `onMessage` with no input (so their offset counts
 * as consumed).
 */
export async function startGeozoneConsumer(options: GeozoneConsumerOptions): Promise<GeozoneConsumer> {
  const zones = sortedGeozones(options.geozones);
  const kindByTopic = new Map<string, WireKind>([
    [options.topics.telemetry, 'telemetry'],
    [options.topics.inference, 'inference'],
    [options.topics.result, 'result'],
  ]);
  const counters = { accepted: 0, deadLettered: 0, rebalances: 0 };
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    partitionAssigners: [geozoneAssigner(zones.length)],
    sessionTimeout: options.sessionTimeoutMs ?? 6_000,
    heartbeatInterval: options.heartbeatIntervalMs ?? 1_000,
    rebalanceTimeout: 20_000,
    allowAutoTopicCreation: false,
    retry: { retries: 10 },
  });
  const producer: Producer = options.kafka.producer({ idempotent: true, allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(zones) });

  const deadLetter = async (kind: WireKind, payload: EachMessagePayload, geozone: string, error: unknown): Promise<void> => {
    const { topic, partition, message } = payload;
    const code: ErrorCode = error instanceof ArcError ? error.code : ErrorCodes.INVARIANT;
    const reason = (error instanceof Error ? error.message : String(error)).slice(0, 1024);
    const headers: IHeaders = {
      ...originalHeaders(message),
      'x-error-code': code,
      'x-error-message': reason,
      'x-source-topic': topic,
      'x-source-partition': String(partition),
      'x-source-offset': message.offset,
    };
    const event = { severity: 'warn', message: 'poison message', details: { code, topic, partition, offset: message.offset }, timestamp: new Date().toISOString() };
    await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: options.deadLetterTopic, messages: [{ key: geozone, value: message.value, headers }] },
        { topic: options.systemTopic, messages: [{ key: geozone, value: JSON.stringify(event), headers: { 'x-schema': 'SystemEvent/v1', 'x-wire-kind': kind } }] },
      ],
    });
    counters.deadLettered++;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    })();
    return stopping;
  };

  try {
    await producer.connect();
    await consumer.connect();
    const joined = new Promise<void>((resolve, reject) => {
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        counters.rebalances++;
        const assignment = event.payload.memberAssignment;
        const owned = new Set<string>();
        for (const partitions of Object.values(assignment)) for (const p of partitions) if (p < zones.length) owned.add(zones[p] as string);
        options.onAssigned([...owned].sort());
        resolve();
      });
      const offCrash = consumer.on(consumer.events.CRASH, (event) => {
        if (event.payload.restart) return;
        offCrash();
        reject(event.payload.error);
      });
    });
    await consumer.subscribe({ topics: [...kindByTopic.keys()], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async (payload) => {
        const { topic, partition, message } = payload;
        const kind = kindByTopic.get(topic);
        const geozone = zones[partition];
        if (kind === undefined || geozone === undefined) return; // not ours (the assigner does not hand these out)
        let input: RegionInput | undefined;
        try {
          if (message.value === null) throw new ArcError(ErrorCodes.VALIDATION, `${kind} message has no value (a tombstone)`);
          input = decode(kind, message, geozone);
        } catch (error) {
          await deadLetter(kind, payload, geozone, error);
          input = undefined;
        }
        await options.onMessage({ topic, partition, offset: message.offset, geozone, input, heartbeat: () => payload.heartbeat() });
        if (input !== undefined) counters.accepted++;
      },
    });
    const timeoutMs = options.joinTimeoutMs ?? 60_000;
    const outcome = await Promise.race([joined.then(() => 'joined' as const), sleep(timeoutMs, 'timeout' as const, { ref: false })]);
    if (outcome === 'timeout') throw new ArcError(ErrorCodes.USAGE, `consumer group ${options.groupId} not joined within ${timeoutMs} ms`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    pause: () => consumer.pause([...kindByTopic.keys()].map((topic) => ({ topic }))),
    stop,
    counters,
  };
}

/** The wire message as a region input, honouring the forwarding headers of the inference topic. */
function decode(kind: WireKind, message: KafkaMessage, geozone: string): RegionInput {
  const value = message.value as Buffer;
  if (kind === 'inference') {
    if (header(message, FORWARD_ACK_HEADER) !== undefined) {
      const ack = JSON.parse(value.toString('utf8')) as { 'request-id'?: unknown };
      const requestId = ack['request-id'];
      if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 128) throw new ArcError(ErrorCodes.VALIDATION, 'forward ack without a request-id');
      return { type: 'forward.ack', requestId, geozone };
    }
    const tried = header(message, TRIED_HEADER);
    const input = parseWire(kind, value);
    if (tried === undefined || input.type !== 'inference') return input;
    const triedGeozones = JSON.parse(tried) as unknown;
    if (!Array.isArray(triedGeozones) || triedGeozones.length > 64 || !triedGeozones.every((g) => typeof g === 'string')) {
      throw new ArcError(ErrorCodes.VALIDATION, `bad ${TRIED_HEADER} header: a JSON array of geozones is expected`);
    }
    return { ...input, triedGeozones, targetGeozone: geozone };
  }
  return parseWire(kind, value);
}

function header(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  if (value === undefined) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

function originalHeaders(message: KafkaMessage): IHeaders {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) if (value !== undefined) headers[name] = value;
  return headers;
}

/** Messages of one effect release, produced in one batch (acks=all, idempotent, key = geozone). */
export interface OutboundMessage {
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers?: Record<string, string>;
}

export interface EffectProducer {
  send(messages: readonly OutboundMessage[]): Promise<void>;
  close(): Promise<void>;
}

export async function startEffectProducer(kafka: Kafka, geozones: readonly string[]): Promise<EffectProducer> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(geozones) });
  await producer.connect();
  return {
    async send(messages) {
      const byTopic = new Map<string, { key: string; value: string; headers?: Record<string, string> }[]>();
      for (const m of messages) {
        let list = byTopic.get(m.topic);
        if (list === undefined) byTopic.set(m.topic, (list = []));
        list.push({ key: m.key, value: m.value, ...(m.headers === undefined ? {} : { headers: m.headers }) });
      }
      await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })) });
    },
    close: () => producer.disconnect(),
  };
}

/**
 * A kafkajs client for the region's consumer and effect producer (retriable errors kept quiet).
 * `ssl` (kafkaTlsOptions) connects with TLS; without it, plaintext.
 */
export function kafkaClient(brokers: readonly string[], clientId: string, ssl?: ConnectionOptions): Kafka {
  return new Kafka({
    clientId,
    brokers: [...brokers],
    ssl,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 5_000 },
  });
}
