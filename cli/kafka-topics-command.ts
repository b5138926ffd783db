import type { ConnectionOptions } from 'node:tls';
import { ensureTopicsAt, topicSpecs } from '../adapters/kafka/topics.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

export interface KafkaTopicsOptions {
  /** Bootstrap brokers, host:port. */
  readonly brokers: readonly string[];
  /** TLS (and client certificate) to the brokers, from kafkaTlsOptions; plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  readonly geozones: readonly string[];
  /** Put in front of every topic name (default none). */
  readonly prefix?: string;
  /** Default: the broker's default.replication.factor. */
  readonly replicationFactor?: number;
}

/**
 * `arcnet kafka:topics --kafka BROKERS --geozones A,B,C`: creates the ArcNet topics
 * that do not exist yet (the seed's table with its retention, one dispatch topic
 * and one journal per geozone, the dead-letter and compacted snapshot topics) and
 * leaves existing ones alone. Re-running it is harmless.
 */
export async function kafkaTopicsCommand(options: KafkaTopicsOptions): Promise<{ created: string[]; existing: string[] }> {
  const brokers = options.brokers.map((b) => b.trim()).filter((b) => b !== '');
  if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, 'kafka:topics needs at least one broker (host:port)');
  for (const b of brokers) {
    if (!/^.+:\d{1,5}$/.test(b)) throw new ArcError(ErrorCodes.USAGE, `bad broker address '${b}': use host:port`);
  }
  // topicSpecs validates the geozones (ARC_ERR_USAGE for a bad or empty list).
  const specs = topicSpecs(options.geozones, options.prefix === undefined ? {} : { prefix: options.prefix });
  return ensureTopicsAt(brokers, specs, { ssl: options.ssl, ...(options.replicationFactor === undefined ? {} : { replicationFactor: options.replicationFactor }) });
}
