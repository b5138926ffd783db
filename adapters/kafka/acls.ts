import type { ConnectionOptions } from 'node:tls';
import kafkajs, { Kafka, logLevel, type AclEntry, type Admin } from 'kafkajs';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { sortedGeozones, topicNames } from './topics.js';

// kafkajs is CommonJS and Node's named-export detection misses its enums: take them off the default export.
const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;

/**
 * Geozone isolation on Kafka: the ACLs of the compute nodes' principals.
 *
 * A node's certificate (CN=<node-id>,OU=<GEOZONE>,O=arcnet-node, from `kafka.mjs node-cert`) is mapped
 * by the broker's ssl.principal.mapping.rules to User:node.<GEOZONE>, so one set of ACLs covers every
 * node of a geozone, and a new node needs a certificate, not an ACL change. A geozone's nodes may:
 *
 * - READ (and DESCRIBE) their own arc.command.dispatch.<GEOZONE>, and nobody else's;
 * - READ (and DESCRIBE) arc.scheduler.training. The seed has ONE training topic for all geozones, so
 *   this grant isolates nothing: every node can read every geozone's training jobs. Isolating them
 *   needs a topic per geozone (as dispatch has), which is a topic-table change;
 * - READ (and DESCRIBE) arc.blobs, where a Kafka region keeps the weights of federated rounds by
 *   SHA-256: a node reads a round's starting weights there. Like the training topic, it is shared by
 *   all geozones (weights, not requests or telemetry);
 * - WRITE arc.telemetry.node, arc.result.inference and arc.result.training. These are shared by all
 *   geozones, so Kafka cannot stop a node writing a message that claims another geozone: the region
 *   checks each message's signed producer identity instead (adapters/security/node-identity.ts);
 * - READ consumer groups named arcnet-agent.<GEOZONE>.<anything> (agentGroupId): a dispatch consumer
 *   needs a group, and the dot after the geozone (which a geozone never contains) keeps CAISO's prefix
 *   from also matching a geozone CAISO_NORTH's groups.
 *
 * Nothing else: no inference requests, no other input topic reads, no journals, snapshots or outputs,
 * no topic creation, no transactional ids. The broker allows nothing without an ACL
 * (allow.everyone.if.no.acl.found=false).
 */

export type AclResourceKind = 'topic' | 'group';
export type AclPattern = 'literal' | 'prefixed';
export type AclOperation = 'read' | 'write' | 'describe';

/** One ALLOW rule, from any host. */
export interface GeozoneAcl {
  readonly principal: string;
  readonly operation: AclOperation;
  readonly resourceType: AclResourceKind;
  readonly patternType: AclPattern;
  readonly resourceName: string;
}

export interface GeozoneAclOptions {
  /** Put in front of every topic and group name (tests isolate their resources this way), as kafka:topics does. */
  readonly prefix?: string;
}

/** The Kafka principal of every node certificate of `geozone`. */
export function nodePrincipal(geozone: string): string {
  return `User:node.${geozone}`;
}

/** The group-name prefix a geozone's nodes may consume in. */
export function agentGroupPrefix(geozone: string, options: GeozoneAclOptions = {}): string {
  return `${options.prefix ?? ''}arcnet-agent.${geozone}.`;
}

/** A consumer group a node of `geozone` may use, e.g. one per node for its dispatch topic. */
export function agentGroupId(geozone: string, name: string, options: GeozoneAclOptions = {}): string {
  return agentGroupPrefix(geozone, options) + name;
}

/** The ACLs of each geozone's node principal (see the file comment), in a stable order. */
export function geozoneAcls(geozones: readonly string[], options: GeozoneAclOptions = {}): GeozoneAcl[] {
  const names = topicNames(options.prefix === undefined ? {} : { prefix: options.prefix });
  return sortedGeozones(geozones).flatMap((geozone): GeozoneAcl[] => {
    const principal = nodePrincipal(geozone);
    const topic = (operation: AclOperation, resourceName: string): GeozoneAcl => ({ principal, operation, resourceType: 'topic', patternType: 'literal', resourceName });
    return [
      topic('read', names.dispatch(geozone)),
      topic('describe', names.dispatch(geozone)),
      topic('read', names.schedulerTraining),
      topic('describe', names.schedulerTraining),
      topic('read', names.blobs),
      topic('describe', names.blobs),
      topic('write', names.telemetry),
      topic('write', names.result),
      topic('write', names.resultTraining),
      { principal, operation: 'read', resourceType: 'group', patternType: 'prefixed', resourceName: agentGroupPrefix(geozone, options) },
    ];
  });
}

/** One line per ACL, for people: `User:node.CAISO  READ      topic  arc.command.dispatch.CAISO`. */
export function formatAcl(acl: GeozoneAcl): string {
  const pattern = acl.patternType === 'prefixed' ? ' (prefix)' : '';
  return `${acl.principal.padEnd(24)} ${acl.operation.toUpperCase().padEnd(8)} ${acl.resourceType.padEnd(5)} ${acl.resourceName}${pattern}`;
}

const operationCode = { read: AclOperationTypes.READ, write: AclOperationTypes.WRITE, describe: AclOperationTypes.DESCRIBE } as const;
const resourceCode = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP } as const;
const patternCode = { literal: ResourcePatternTypes.LITERAL, prefixed: ResourcePatternTypes.PREFIXED } as const;

function toEntry(acl: GeozoneAcl): AclEntry {
  return {
    principal: acl.principal,
    host: '*',
    operation: operationCode[acl.operation],
    permissionType: AclPermissionTypes.ALLOW,
    resourceType: resourceCode[acl.resourceType],
    resourceName: acl.resourceName,
    resourcePatternType: patternCode[acl.patternType],
  };
}

const identity = (e: { principal: string; host: string; operation: number; permissionType: number; resourceType: number; resourceName: string; resourcePatternType: number }): string =>
  JSON.stringify([e.principal, e.host, e.operation, e.permissionType, e.resourceType, e.resourceName, e.resourcePatternType]);

/** An ACL request's failure as an ArcError that says what to do (a broker without an authorizer answers SECURITY_DISABLED). */
function aclError(error: unknown, doing: string): ArcError {
  let cause: unknown = error;
  while (cause instanceof Error) {
    const type = (cause as { type?: unknown }).type;
    if (type === 'SECURITY_DISABLED') {
      return new ArcError(ErrorCodes.KAFKA_ACL, `cannot ${doing}: the Kafka cluster runs no authorizer (set authorizer.class.name; the local broker from kafka.mjs start has one, restart an older one)`);
    }
    if (type === 'CLUSTER_AUTHORIZATION_FAILED') {
      return new ArcError(ErrorCodes.KAFKA_ACL, `cannot ${doing}: this client may not read or change ACLs (that takes DESCRIBE and ALTER on the cluster: use the region's certificate, or an admin principal)`);
    }
    cause = (cause as { cause?: unknown; originalError?: unknown }).cause ?? (cause as { originalError?: unknown }).originalError;
  }
  return new ArcError(ErrorCodes.KAFKA_ACL, `cannot ${doing}: ${error instanceof Error ? error.message : String(error)}`);
}

export interface EnsureAclsResult {
  /** ACLs this call created. */
  readonly granted: GeozoneAcl[];
  /** ACLs that were there already. */
  readonly existing: GeozoneAcl[];
}

/**
 * Creates the ACLs that are not there yet (ALLOW, any host) and says which it created. Adding an ACL
 * the broker already has is harmless, so two concurrent runs are safe; the split between granted and
 * existing is then only as exact as the describe before the create.
 */
export async function ensureAcls(admin: Admin, acls: readonly GeozoneAcl[]): Promise<EnsureAclsResult> {
  const present = new Set<string>();
  for (const principal of new Set(acls.map((a) => a.principal))) {
    let described: Awaited<ReturnType<Admin['describeAcls']>>;
    try {
      described = await admin.describeAcls({
        principal,
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      });
    } catch (error) {
      throw aclError(error, `read the ACLs of ${principal}`);
    }
    for (const resource of described.resources) {
      for (const acl of resource.acls) present.add(identity({ ...resource, ...acl }));
    }
  }
  const missing = acls.filter((a) => !present.has(identity(toEntry(a))));
  if (missing.length > 0) {
    try {
      await admin.createAcls({ acl: missing.map(toEntry) });
    } catch (error) {
      throw aclError(error, `create ${missing.length} ACLs`);
    }
  }
  const missingSet = new Set(missing);
  return { granted: missing, existing: acls.filter((a) => !missingSet.has(a)) };
}

/**
 * Removes exactly these ACLs (none other), e.g. a test's own; returns how many the broker matched.
 * Each filter names one ACL fully, so nothing else of the principal is touched.
 */
export async function deleteAcls(admin: Admin, acls: readonly GeozoneAcl[]): Promise<number> {
  if (acls.length === 0) return 0;
  try {
    const response = await admin.deleteAcls({ filters: acls.map(toEntry) });
    return response.filterResponses.reduce((n, r) => n + r.matchingAcls.length, 0);
  } catch (error) {
    throw aclError(error, `delete ${acls.length} ACLs`);
  }
}

export interface EnsureGeozoneAclsOptions extends GeozoneAclOptions {
  /** TLS (and client certificate) to the brokers, from kafkaTlsOptions; plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  readonly clientId?: string;
}

/** Connects an admin client to `brokers`, ensures the geozones' node ACLs and disconnects (what `arcnet kafka:acls` does). */
export async function ensureGeozoneAclsAt(brokers: readonly string[], geozones: readonly string[], options: EnsureGeozoneAclsOptions = {}): Promise<EnsureAclsResult> {
  const acls = geozoneAcls(geozones, options.prefix === undefined ? {} : { prefix: options.prefix });
  const kafka = new Kafka({
    clientId: options.clientId ?? 'arcnet-acls',
    brokers: [...brokers],
    ssl: options.ssl,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10_000,
    requestTimeout: 60_000,
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const admin = kafka.admin();
  try {
    try {
      await admin.connect();
    } catch (error) {
      throw new ArcError(ErrorCodes.USAGE, `no Kafka broker answers at ${brokers.join(',')}: ${(error as Error).message} (npm run kafka:start starts a local one)`, {
        brokers: [...brokers],
      });
    }
    return await ensureAcls(admin, acls);
  } finally {
    await admin.disconnect();
  }
}
