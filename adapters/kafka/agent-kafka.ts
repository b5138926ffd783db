import type { ConnectionOptions } from 'node:tls';
import type { Consumer, Producer } from 'kafkajs';
import { sha256Hex } from '../../runtime/blob-store.js';
import { kafkaClient } from './kafka-client.js';
import { TopicReader } from './topic-reader.js';
import { geozonePartition } from './topics.js';

/**
 * The node agent's Kafka client (the agent's logic is in agent/kafka-session.ts):
 * a producer for its telemetry and results, keyed by geozone onto the geozone's
 * partition (the region reads a result's geozone from its partition), and a
 * consumer of its geozone's dispatch topic in a group of its own
 * (`arcnet-agent.<GEOZONE>.<node-id>`, the prefix kafka:acls grants), committing
 * an offset only after the message was handed on (at least once). For federated
 * training, a second consumer of the training topic (one partition, every
 * geozone's jobs and `train` messages) in a group of its own, and a reader of
 * the region's compacted blob topic for a round's starting weights by hash.
 */
export interface AgentKafkaOptions {
  readonly brokers: readonly string[];
  readonly ssl?: ConnectionOptions | undefined;
  readonly nodeId: string;
  readonly geozone: string;
  /** Every geozone of the cluster, as given to kafka:topics: their sorted order numbers the partitions. */
  readonly clusterGeozones: readonly string[];
  readonly dispatchTopic: string;
  /** arc.scheduler.training: the region's `train` messages, among the FederatedTasks. */
  readonly trainingTopic: string;
  /** arc.blobs: the region's weights, keyed by SHA-256 (compacted, one partition). */
  readonly blobTopic: string;
}

/** A blob is looked for first among the newest messages of the blob topic (a round's weights were written just before its `train`). */
const BLOB_RECENT_WINDOW = 1_024;
/** A blob read that takes longer fails (the round's deadline is usually shorter). */
const BLOB_READ_TIMEOUT_MS = 60_000;

export interface ProducedMessage {
  readonly topic: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Overrides the geozone's partition: for single-partition topics (arc.result.training), 0. */
  readonly partition?: number;
}

export interface AgentKafka {
  /** Resolves once the broker acknowledged it (acks from all in-sync replicas). */
  produce(message: ProducedMessage): Promise<void>;
  /**
   * Joins the group and hands on each dispatch message's value, in order; resolves once
   * the group is joined. `onValue` runs before the offset is committed.
   */
  consume(onValue: (value: Buffer | null) => void): Promise<void>;
  /** Like consume, for the training topic's messages (a second consumer, group `<dispatch group>.training`). */
  consumeTraining(onValue: (value: Buffer | null) => void): Promise<void>;
  /** The blob of this SHA-256 from the blob topic, checked against its hash; undefined when it is not there. */
  fetchBlob(sha256: string): Promise<Uint8Array | undefined>;
  /** Leaves the groups (offsets of messages handed on are committed); the producer stays. */
  stopConsuming(): Promise<void>;
  /** Called once if the consumer stops for good (a crash kafkajs does not restart from). */
  onConsumerLost(listener: (error: Error) => void): void;
  close(): Promise<void>;
}

export const agentGroupId = (geozone: string, nodeId: string): string => `arcnet-agent.${geozone}.${nodeId}`;

export async function connectAgentKafka(options: AgentKafkaOptions): Promise<AgentKafka> {
  const kafka = kafkaClient(options.brokers, `arcnet-agent-${options.nodeId}`, options.ssl);
  const partition = geozonePartition(options.geozone, options.clusterGeozones);
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  const groupId = agentGroupId(options.geozone, options.nodeId);
  const consumer: Consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, sessionTimeout: 30_000 });
  const trainingConsumer: Consumer = kafka.consumer({ groupId: `${groupId}.training`, allowAutoTopicCreation: false, sessionTimeout: 30_000 });
  const admin = kafka.admin();
  // Its throwaway groups are named after the agent's group, so the geozone's group ACL covers them.
  const reader = new TopicReader(kafka, admin, groupId, BLOB_READ_TIMEOUT_MS);
  await producer.connect();
  const lostListeners: ((error: Error) => void)[] = [];
  const watch = (c: Consumer): Promise<void> => {
    c.on(c.events.CRASH, (event) => {
      if (event.payload.restart) return;
      const error = event.payload.error instanceof Error ? event.payload.error : new Error(String(event.payload.error));
      for (const listener of lostListeners) listener(error);
    });
    return new Promise<void>((resolve) => c.on(c.events.GROUP_JOIN, () => resolve()));
  };
  const joinedOnce = watch(consumer);
  const trainingJoinedOnce = watch(trainingConsumer);
  let adminConnected = false;
  /** Reads [from, to) of the blob topic for one hash; the bytes only if they hash to it. */
  const readBlob = async (sha256: string, from: number, to: number): Promise<Uint8Array | undefined> => {
    let found: Uint8Array | undefined;
    await reader.read([{ topic: options.blobTopic, from, to }], { idleStopMs: 2_000 }, (message) => {
      if (found === undefined && message.key === sha256 && message.value !== null && sha256Hex(message.value) === sha256) found = new Uint8Array(message.value);
    });
    return found;
  };
  return {
    produce: async (message) => {
      await producer.send({ topic: message.topic, acks: -1, messages: [{ key: options.geozone, partition: message.partition ?? partition, value: message.value, headers: { ...message.headers } }] });
    },
    consume: async (onValue) => {
      await consumer.connect();
      // A new group starts at the end: older dispatches were for reservations long expired.
      await consumer.subscribe({ topic: options.dispatchTopic, fromBeginning: false });
      await consumer.run({ autoCommit: true, autoCommitThreshold: 1, eachMessage: ({ message }) => Promise.resolve(onValue(message.value)) });
      await joinedOnce;
    },
    consumeTraining: async (onValue) => {
      await trainingConsumer.connect();
      // A new group starts at the end: older train messages were for rounds long closed.
      await trainingConsumer.subscribe({ topic: options.trainingTopic, fromBeginning: false });
      await trainingConsumer.run({ autoCommit: true, autoCommitThreshold: 1, eachMessage: ({ message }) => Promise.resolve(onValue(message.value)) });
      await trainingJoinedOnce;
    },
    fetchBlob: async (sha256) => {
      if (!adminConnected) {
        await admin.connect();
        adminConnected = true;
      }
      const [low, high] = await Promise.all([reader.startOffset(options.blobTopic), reader.endOffset(options.blobTopic)]);
      const recentFrom = Math.max(low, high - BLOB_RECENT_WINDOW);
      return (await readBlob(sha256, recentFrom, high)) ?? (recentFrom > low ? await readBlob(sha256, low, recentFrom) : undefined);
    },
    stopConsuming: async () => {
      await Promise.all([consumer.disconnect().catch(() => undefined), trainingConsumer.disconnect().catch(() => undefined)]);
    },
    onConsumerLost: (listener) => {
      lostListeners.push(listener);
    },
    close: async () => {
      await consumer.disconnect().catch(() => undefined);
      await trainingConsumer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}
