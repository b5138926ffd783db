import type { ConnectionOptions } from 'node:tls';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { ChainVerifier, type ChainAnchor, type JournalVerification } from '../../runtime/journal-chain.js';
import { classifyJournalMessage } from './journal-message.js';
import { journalTopic, quietKafka, snapshotsTopic } from './kafka-store.js';
import { TopicReader } from './topic-reader.js';

/**
 * Verification of Kafka journals (the `arcnet audit verify --kafka` side of
 * adapters/lmdb/journal-chain.ts): the committed messages of each shard's
 * journal topic, from the first one the partition still holds, go through the
 * store-independent chain check of runtime/journal-chain.ts, anchored by the
 * chain heads recorded with the snapshots still in the compacted snapshots
 * topic. Read-only: it opens no producer, so it fences no one and can run
 * beside a live region.
 */
export interface KafkaAuditOptions {
  readonly brokers: readonly string[];
  readonly ssl?: ConnectionOptions | undefined;
  /** The shards (geozones) to verify. */
  readonly shardIds: readonly string[];
  readonly topicPrefix?: string;
  readonly clientId?: string;
  /** Reading a topic fails if it takes longer. Default 10 minutes. */
  readonly readTimeoutMs?: number;
}

export async function verifyKafkaJournal(options: KafkaAuditOptions): Promise<JournalVerification> {
  const prefix = options.topicPrefix ?? '';
  const shardIds = [...new Set(options.shardIds)].sort();
  const clientLog: string[] = [];
  const clientId = options.clientId ?? 'arcnet-audit';
  const kafka = quietKafka({ clientId, brokers: options.brokers, ssl: options.ssl }, clientLog);
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = shardIds.filter((id) => !existing.has(journalTopic(prefix, id)));
    if (missing.length > 0) {
      throw new ArcError(
        ErrorCodes.NO_JOURNAL,
        `no Kafka journal for ${missing.join(', ')} (topic ${missing.map((id) => journalTopic(prefix, id)).join(', ')} does not exist): check --geozone and --kafka`,
      );
    }
    const reader = new TopicReader(kafka, admin, clientId, options.readTimeoutMs ?? 600_000);
    // Anchors are read before the journals: on a live journal a newer snapshot can then only add records, never make it look truncated.
    const anchors = existing.has(snapshotsTopic(prefix)) ? await readAnchors(reader, snapshotsTopic(prefix), new Set(shardIds)) : new Map<string, ChainAnchor[]>();
    const verifiers = new Map(shardIds.map((id) => [journalTopic(prefix, id), new ChainVerifier(id, anchors.get(id) ?? [])]));
    const plans = [];
    for (const topic of verifiers.keys()) plans.push({ topic, from: await reader.startOffset(topic), to: await reader.endOffset(topic) });
    await reader.read(plans, {}, ({ topic, kafkaOffset, value, headers }) => {
      const message = classifyJournalMessage(value, headers);
      if (message.kind === 'claim') return; // an owner's claim: no records, nothing chained
      (verifiers.get(topic) as ChainVerifier).add({ where: `the message at Kafka offset ${kafkaOffset}`, bytes: message.bytes });
    });
    const shards = [...verifiers.values()].map((v) => v.finish());
    return { ok: shards.every((s) => s.problem === undefined), shards };
  } catch (error) {
    if (error instanceof ArcError) throw error;
    const log = clientLog.slice(-5).join('\n  ');
    throw new Error(`verifying the Kafka journal failed: ${error instanceof Error ? error.message : String(error)}${log.length > 0 ? `\n  kafkajs log:\n  ${log}` : ''}`, {
      cause: error,
    });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The chain heads recorded with every snapshot of the shards still in the (compacted) snapshots topic. */
async function readAnchors(reader: TopicReader, topic: string, shards: ReadonlySet<string>): Promise<Map<string, ChainAnchor[]>> {
  const anchors = new Map<string, ChainAnchor[]>();
  const to = await reader.endOffset(topic);
  // Compaction can leave the end of the log with no record at it: stop once fetches bring nothing.
  await reader.read([{ topic, from: 0, to }], { idleStopMs: 1_500 }, ({ key, value }) => {
    if (key === undefined || value === null || !shards.has(key)) return;
    const anchor = snapshotAnchor(value.toString('utf8'));
    // A snapshot without a readable anchor anchors nothing; the journal is still checked from its genesis.
    if (anchor !== undefined) anchors.set(key, [...(anchors.get(key) ?? []), anchor]);
  });
  return anchors;
}

function snapshotAnchor(value: string): ChainAnchor | undefined {
  try {
    const parsed = JSON.parse(value) as { offset?: unknown; chainHead?: unknown };
    if (!Number.isInteger(parsed.offset) || typeof parsed.chainHead !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.chainHead)) return undefined;
    return { offset: parsed.offset as number, head: parsed.chainHead };
  } catch {
    return undefined;
  }
}
