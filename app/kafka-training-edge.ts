import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { Consumer, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import { parseTrainingUpdate, trainingTopics } from '../actors/training-wire.js';
import { kafkaClient } from '../adapters/kafka/kafka-client.js';
import { deadLetterHeaders, MAX_ERROR_MESSAGE_CHARS } from '../adapters/kafka/dead-letter.js';
import { createInputIdentityVerifier } from '../adapters/security/node-identity.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { realScheduler } from '../runtime/clock.js';

/** The node whose certificate signed an update (its CN and OU), when the region checks signatures. */
export interface UpdateSigner {
  readonly nodeId: string;
  readonly geozone: string;
}

/** What the edge hands on: a task, or an update with its verified signer (undefined without --node-ca). */
export type KafkaTrainingIngress = (kind: 'task' | 'update', raw: string, signer: UpdateSigner | undefined) => Promise<void>;

/** Codes that say the message itself is bad: dead-lettered (by one process: see below). */
const POISON: ReadonlySet<string> = new Set([ErrorCodes.VALIDATION, ErrorCodes.MALFORMED_JSON, ErrorCodes.PAYLOAD_TOO_LARGE, ErrorCodes.DATASET, ErrorCodes.BLOB_MISSING, ErrorCodes.PRODUCER_IDENTITY]);
/** Codes that say the message is for a geozone or job elsewhere, or already taken: passed over. */
const NOT_HERE: ReadonlySet<string> = new Set([ErrorCodes.FORBIDDEN, ErrorCodes.UNKNOWN_SHARD, ErrorCodes.DUPLICATE_JOB, ErrorCodes.NOT_FOUND]);
const RESTART_AFTER_MS = 1_000;
/** How many dead-lettered positions a process remembers, so a re-read does not dead-letter them again. */
const MAX_REMEMBERED_DEAD_LETTERS = 100_000;

/**
 * A Kafka region's edge for the federated path: FederatedTask v1 on
 * arc.scheduler.training and TrainingUpdate v1 on arc.result.training, through
 * the same validation as HTTP and the agent channel. Every process of the group
 * reads both topics whole (a consumer group of its own, from the beginning) and
 * acts on what concerns the geozones it owns now; a job id is taken once, so
 * reading a task again changes nothing. When it takes a geozone over it reads
 * them again, so a task published while the geozone had no owner is not lost.
 * A poison message is dead-lettered by the owner of the federation's first
 * geozone only, so the group writes one dead letter, not one per process.
 *
 * With a node CA (--node-ca), a TrainingUpdate counts only when signed as the
 * agents sign telemetry (adapters/security/node-identity.ts): the certificate
 * chains to the CA, its CN is the update's node-id and its OU the geozone in the
 * message key; the job's geozone must then be that geozone (checked where the
 * job is known). Anything else is dead-lettered with ARC_ERR_PRODUCER_IDENTITY
 * and never reaches an actor: every node may write arc.result.training, so
 * without this any of them could send weights in another node's name.
 */
export function startKafkaTrainingEdge(options: {
  brokers: readonly string[];
  ssl?: ConnectionOptions | undefined;
  clientId: string;
  deadLetterTopic: string;
  /** The region group's id, named on its dead letters (x-refused-by) like the geozone consumer's. */
  refusedBy: string;
  federation: readonly string[];
  owned: () => readonly string[];
  handle: KafkaTrainingIngress;
  /** PEM of the node CA: updates must be signed by a node certificate it issued. */
  nodeCaPem?: string | undefined;
  log: Logger;
}): { restart(): void; stop(): Promise<void>; counters: { accepted: number; deadLettered: number; passedOver: number } } {
  const kafka = kafkaClient(options.brokers, `${options.clientId}-training`, options.ssl);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const admin = kafka.admin();
  const counters = { accepted: 0, deadLettered: 0, passedOver: 0 };
  const first = [...options.federation].sort()[0];
  let consumer: Consumer | undefined;
  let stopped = false;
  let pending: (() => void) | undefined;
  let running: Promise<void> = Promise.resolve();
  const verify = options.nodeCaPem === undefined ? undefined : createInputIdentityVerifier({ caPem: options.nodeCaPem });

  /** Who signed an update; throws ARC_ERR_PRODUCER_IDENTITY (or the update's own validation error) when it does not hold. */
  const signerOf = (message: KafkaMessage, topic: string, raw: string): UpdateSigner | undefined => {
    if (verify === undefined) return undefined;
    const claimedNodeId = parseTrainingUpdate(raw).update.nodeId;
    // Agents key each message by their geozone, and the signature covers the key.
    const claimedGeozone = message.key === null ? '' : message.key.toString('utf8');
    const verdict = verify(message.headers, topic, message.key, message.value, claimedGeozone, claimedNodeId);
    if (!verdict.ok) throw new ArcError(ErrorCodes.PRODUCER_IDENTITY, `TrainingUpdate of ${claimedNodeId} refused: ${verdict.message}`, { reason: verdict.reason });
    return { nodeId: verdict.nodeId, geozone: verdict.geozone };
  };

  const ensureTopics = async (): Promise<void> => {
    const existing = await admin.listTopics();
    const missing = [trainingTopics.scheduler, trainingTopics.result].filter((t) => !existing.includes(t));
    if (missing.length > 0) await admin.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic, numPartitions: 1 })) });
  };

  // The dead letter as adapters/kafka/dead-letter.ts describes it: the original key, value and headers, then why.
  // Every takeover re-reads the topics from the beginning: a poison message already dead-lettered
  // by this process is not written again (a new process may write it once more: at least once).
  const deadLettered = new Set<string>();
  const deadLetter = async (topic: string, partition: number, message: KafkaMessage, error: ArcError): Promise<void> => {
    if (first === undefined || !options.owned().includes(first)) return;
    const position = `${topic}:${partition}:${message.offset}`;
    if (deadLettered.has(position)) return;
    await producer.send({
      topic: options.deadLetterTopic,
      acks: -1,
      messages: [
        {
          partition: 0,
          key: message.key,
          value: message.value,
          headers: {
            ...message.headers,
            [deadLetterHeaders.code]: error.code,
            [deadLetterHeaders.message]: error.message.slice(0, MAX_ERROR_MESSAGE_CHARS),
            [deadLetterHeaders.sourceTopic]: topic,
            [deadLetterHeaders.sourcePartition]: String(partition),
            [deadLetterHeaders.sourceOffset]: message.offset,
            [deadLetterHeaders.wireKind]: topic === trainingTopics.scheduler ? 'FederatedTask' : 'TrainingUpdate',
            [deadLetterHeaders.refusedBy]: options.refusedBy,
          },
        },
      ],
    });
    counters.deadLettered++;
    deadLettered.add(position);
    if (deadLettered.size > MAX_REMEMBERED_DEAD_LETTERS) {
      const oldest = deadLettered.values().next().value;
      if (oldest !== undefined) deadLettered.delete(oldest);
    }
  };

  const run = async (): Promise<void> => {
    await consumer?.disconnect().catch(() => undefined);
    if (stopped) return;
    await admin.connect();
    await producer.connect();
    await ensureTopics();
    const next = kafka.consumer({ groupId: `${options.clientId}-training-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
    consumer = next;
    await next.connect();
    await next.subscribe({ topics: [trainingTopics.scheduler, trainingTopics.result], fromBeginning: true });
    await next.run({
      eachMessage: async ({ topic, partition, message }) => {
        if (message.value === null) return;
        const raw = message.value.toString('utf8');
        const kind = topic === trainingTopics.scheduler ? 'task' : 'update';
        // The region's own train messages for the nodes share the scheduler topic: not inputs.
        if (kind === 'task' && raw.includes('"type":"train"')) return;
        try {
          await options.handle(kind, raw, kind === 'update' ? signerOf(message, topic, raw) : undefined);
          counters.accepted++;
        } catch (error) {
          if (error instanceof ArcError && NOT_HERE.has(error.code)) counters.passedOver++;
          else if (error instanceof ArcError && POISON.has(error.code)) await deadLetter(topic, partition, message, error);
          else options.log.warn({ err: error, topic }, 'training input refused');
        }
      },
    });
  };

  const restart = (): void => {
    if (stopped) return;
    pending?.();
    // Takeovers come in bursts (one per geozone): one re-read after the last.
    pending = realScheduler.after(RESTART_AFTER_MS, () => {
      pending = undefined;
      running = running.then(run).catch((error: unknown) => {
        options.log.warn({ err: error }, 'the training topics could not be read; retrying');
        restart();
      });
    });
  };

  return {
    restart,
    counters,
    stop: async () => {
      stopped = true;
      pending?.();
      await running.catch(() => undefined);
      await consumer?.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    },
  };
}
