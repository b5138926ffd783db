import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel } from 'kafkajs';

/**
 * A kafkajs client for the region's consumer and effect producer. kafkajs's own
 * retries are kept short (a few seconds): longer outages are waited out by the
 * callers' backoff (retry.ts), which reports them, instead of inside kafkajs,
 * which keeps quiet (its log is off: retriable errors would flood it).
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
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 5_000 },
  });
}
