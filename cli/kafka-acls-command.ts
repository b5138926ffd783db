import type { ConnectionOptions } from 'node:tls';
import { ensureGeozoneAclsAt, formatAcl, type EnsureAclsResult } from '../adapters/kafka/acls.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

export interface KafkaAclsOptions {
  /** Bootstrap brokers, host:port. */
  readonly brokers: readonly string[];
  /** TLS (and client certificate) to the brokers, from kafkaTlsOptions; plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  readonly geozones: readonly string[];
  /** Put in front of every topic and group name (default none), as kafka:topics does. */
  readonly prefix?: string;
}

/**
 * `arcnet kafka:acls --kafka BROKERS --geozones A,B,C`: grants each geozone's node principal
 * (User:node.<GEOZONE>) what its nodes need and nothing else (adapters/kafka/acls.ts says what and
 * why). Creates only the ACLs that are missing; re-running it is harmless. Needs a cluster with an
 * authorizer and a client allowed to change ACLs (the local broker's PLAINTEXT listener, or its SSL
 * listener with the region's certificate).
 */
export async function kafkaAclsCommand(options: KafkaAclsOptions): Promise<EnsureAclsResult> {
  const brokers = options.brokers.map((b) => b.trim()).filter((b) => b !== '');
  if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, 'kafka:acls needs at least one broker (host:port)');
  for (const b of brokers) {
    if (!/^.+:\d{1,5}$/.test(b)) throw new ArcError(ErrorCodes.USAGE, `bad broker address '${b}': use host:port`);
  }
  return ensureGeozoneAclsAt(brokers, options.geozones, { ssl: options.ssl, ...(options.prefix === undefined ? {} : { prefix: options.prefix }) });
}

/** The result for people: one line per ACL, granted first, then a count. */
export function formatAclsResult(result: EnsureAclsResult): string {
  const lines = [...result.granted.map((a) => `granted   ${formatAcl(a)}`), ...result.existing.map((a) => `existing  ${formatAcl(a)}`)];
  lines.push(`${result.granted.length} granted, ${result.existing.length} already there`);
  return `${lines.join('\n')}\n`;
}
