import type { ConnectionOptions } from 'node:tls';
import type { Consumer, Producer } from 'kafkajs';
import { kafkaClient } from './kafka-client.js';
import { geozonePartition } from './topics.js';

/**
 * The node agent's Kafka client (the agent's logic is in agent/kafka-session.ts):
 * a producer for its telemetry and results, keyed by geozone onto the geozone's
 * partition (the region reads a result's geozone from its partition), and a
 * consumer of its geozone's dispatch topic in a group of its own
 * (`arcnet-agent.<GEOZONE>.<node-id>`, the prefix kafka:acls grants), committing
 * an offset only after the message was handed on (at least once).
 */
export interface AgentKafkaOptions {
  readonly brokers: readonly string[];
  readonly ssl?: ConnectionOptions | undefined;
  readonly nodeId: string;
  readonly geozone: string;
  /** Every geozone of the cluster, as given to kafka:topics: their sorted order numbers the partitions. */
  readonly clusterGeozones: readonly string[];
  readonly dispatchTopic: string;
}

export interface ProducedMessage {
  readonly topic: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface AgentKafka {
  /** Resolves once the broker acknowledged it (acks from all in-sync replicas). */
  produce(message: ProducedMessage): Promise<void>;
  /**
   * Joins the group and hands on each dispatch message's value, in order; resolves once
   * the group is joined. `onValue` runs before the offset is committed.
   */
  consume(onValue: (value: Buffer | null) => void): Promise<void>;
  /** Leaves the group (offsets of messages handed on are committed); the producer stays. */
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
  const consumer: Consumer = kafka.consumer({ groupId: agentGroupId(options.geozone, options.nodeId), allowAutoTopicCreation: false, sessionTimeout: 30_000 });
  await producer.connect();
  let joined: (() => void) | undefined;
  const joinedOnce = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined?.());
  const lostListeners: ((error: Error) => void)[] = [];
  consumer.on(consumer.events.CRASH, (event) => {
    if (event.payload.restart) return;
    const error = event.payload.error instanceof Error ? event.payload.error : new Error(String(event.payload.error));
    for (const listener of lostListeners) listener(error);
  });
  return {
    produce: async (message) => {
      await producer.send({ topic: message.topic, acks: -1, messages: [{ key: options.geozone, partition, value: message.value, headers: { ...message.headers } }] });
    },
    consume: async (onValue) => {
      await consumer.connect();
      // A new group starts at the end: older dispatches were for reservations long expired.
      await consumer.subscribe({ topic: options.dispatchTopic, fromBeginning: false });
      await consumer.run({ autoCommit: true, autoCommitThreshold: 1, eachMessage: ({ message }) => Promise.resolve(onValue(message.value)) });
      await joinedOnce;
    },
    stopConsuming: () => consumer.disconnect().catch(() => undefined),
    onConsumerLost: (listener) => {
      lostListeners.push(listener);
    },
    close: async () => {
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}
