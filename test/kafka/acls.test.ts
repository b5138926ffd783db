// Geozone isolation on the local broker (scripts/kafka/kafka.mjs: StandardAuthorizer, node certificates
// mapped to User:node.<GEOZONE>): kafka:acls grants each geozone's nodes their topics and groups, once;
// a CAISO node certificate reads CAISO's dispatch topic and writes telemetry but is refused ERCOT's
// dispatch topic, other topics and other geozones' groups; the region's certificate still does
// everything; and a node of another geozone writing telemetry that claims CAISO gets through Kafka
// (the topic is shared) but not through the region's identity check.
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import kafkajs, { Kafka, logLevel, type KafkaMessage } from 'kafkajs';
import { agentGroupId, deleteAcls, ensureGeozoneAclsAt, geozoneAcls, nodePrincipal, type GeozoneAcl } from '../../adapters/kafka/acls.js';
import { ensureTopicsAt, geozonePartitioner, topicNames, topicSpecs } from '../../adapters/kafka/topics.js';
import { createInputIdentityVerifier, loadNodeIdentity, signNodeMessage, type IdentityVerdict } from '../../adapters/security/node-identity.js';
import { kafkaTlsOptions } from '../../adapters/security/tls-options.js';
import { formatAclsResult, kafkaAclsCommand } from '../../cli/kafka-acls-command.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokerReachable, brokers, deleteTopicsWithPrefix, kafkaTest, probe, testKafka } from '../helpers/kafka-broker.js';
import { repoRoot } from '../helpers/repo.js';

const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;


const root = repoRoot();
const kafkaScript = join(root, 'scripts', 'kafka', 'kafka.mjs');
const cli = join(root, 'dist', 'cli', 'arcnet.js');
const tlsDir = join(root, '.kafka', 'tls');
const regionFiles = { caFile: join(tlsDir, 'ca.pem'), certFile: join(tlsDir, 'client.pem'), keyFile: join(tlsDir, 'client-key.pem') };
const tlsPort = Number(process.env['KAFKA_TLS_PORT'] ?? '9094');
const tlsBrokers = [`127.0.0.1:${tlsPort}`];
const haveCertificates = Object.values(regionFiles).every((file) => existsSync(file)) && existsSync(join(tlsDir, 'ca-key.pem'));
const userBroker = (process.env['KAFKA_BROKERS'] ?? '') !== '';
const onCi = process.env['CI'] === 'true';


/** 'on' when the broker answers ACL requests, 'off' when it runs without an authorizer (SECURITY_DISABLED). */
async function probeAuthorizer(): Promise<string> {
  const admin = testKafka('acl-probe').admin();
  try {
    await admin.connect();
    await admin.describeAcls({
      principal: nodePrincipal('PROBE'),
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ANY,
    });
    return 'on';
  } catch (error) {
    return errorTypes(error).includes('SECURITY_DISABLED') ? 'off' : `error: ${(error as Error).message}`;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

const listening = haveCertificates && (await probe(`127.0.0.1:${tlsPort}`, 2_000));
const authorizer = brokerReachable ? await probeAuthorizer() : 'unknown';

/**
 * A test against the broker's authorizer and SSL listener. Skipped with a notice (never under CI=true,
 * where the broker .ci/run starts is this script's and has both) when KAFKA_BROKERS names a broker this
 * checkout has no certificates for, or when the broker runs without an authorizer because an older
 * kafka.mjs started it.
 */
function aclTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  const skipBecause =
    userBroker && !haveCertificates
      ? `KAFKA_BROKERS is set and ${tlsDir} holds no local CA (kafka.mjs start makes it)`
      : authorizer === 'off'
        ? `the broker at ${brokers.join(',')} runs without an authorizer (an older kafka.mjs started it): node scripts/kafka/kafka.mjs stop && node scripts/kafka/kafka.mjs start`
        : undefined;
  if (skipBecause !== undefined && !onCi) {
    console.warn(`kafka ACL test skipped: ${skipBecause}: ${title}`);
    test.skip(`${title} (SKIPPED: ${skipBecause})`, () => undefined);
    return;
  }
  kafkaTest(title, async (t) => {
    if (!listening) {
      t.fail(haveCertificates ? `nothing answers on ${tlsBrokers.join(',')} (the SSL listener)` : `no local CA in ${tlsDir}: node scripts/kafka/kafka.mjs start makes it (it needs openssl)`);
      return;
    }
    if (authorizer !== 'on') {
      t.fail(`the broker's ACLs cannot be read (${authorizer}); restart it with node scripts/kafka/kafka.mjs stop && start`);
      return;
    }
    await fn(t);
  });
}

function errorTypes(error: unknown): string[] {
  const types: string[] = [];
  let cause: unknown = error;
  while (cause instanceof Error) {
    const type = (cause as { type?: unknown }).type;
    if (typeof type === 'string') types.push(type);
    cause = (cause as { cause?: unknown }).cause ?? (cause as { originalError?: unknown }).originalError;
  }
  return types;
}

interface NodeCert {
  readonly nodeId: string;
  readonly geozone: string;
  readonly principal: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** A node certificate from the broker's CA, made the way an operator makes one. */
function nodeCert(nodeId: string, geozone: string, outDir: string): NodeCert {
  const stdout = execFileSync(process.execPath, [kafkaScript, 'node-cert', '--node-id', nodeId, '--geozone', geozone, '--out', outDir], { encoding: 'utf8' });
  return JSON.parse(stdout) as NodeCert;
}

/** A client of the SSL listener with a certificate; `debugLog` collects kafkajs's debug lines (to see a broker's error kafkajs hides). */
function tlsClient(clientId: string, files: { caFile: string; certFile: string; keyFile: string }, options: { retries?: number; debugLog?: string[] } = {}): Kafka {
  const ssl: ConnectionOptions = kafkaTlsOptions(files);
  const debugLog = options.debugLog;
  return new Kafka({
    clientId,
    brokers: tlsBrokers,
    ssl,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { retries: options.retries ?? 8, initialRetryTime: 300, maxRetryTime: 5_000 },
    logLevel: debugLog === undefined ? logLevel.NOTHING : logLevel.DEBUG,
    logCreator: () => (entry) => {
      debugLog?.push(JSON.stringify(entry.log));
    },
  });
}

/** Consumes `topic` from the beginning in `groupId` until `count` messages arrived; rejects with the consumer's error. */
async function consume(kafka: Kafka, topic: string, groupId: string, count: number, timeoutMs = 60_000): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({ groupId, retry: { retries: 2 }, sessionTimeout: 30_000, allowAutoTopicCreation: false });
  const messages: KafkaMessage[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${messages.length} of ${count} messages from ${topic}`)), timeoutMs);
      consumer.on(consumer.events.CRASH, (event) => {
        clearTimeout(timer);
        reject(event.payload.error);
      });
      consumer
        .run({
          eachMessage: ({ message }) => {
            messages.push(message);
            if (messages.length >= count) {
              clearTimeout(timer);
              resolve();
            }
            return Promise.resolve();
          },
        })
        .catch((error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        });
    });
    return messages;
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}

function requestId(message: KafkaMessage | undefined): unknown {
  return (JSON.parse(message?.value?.toString() ?? '{}') as Record<string, unknown>)['request-id'];
}

/** The ACLs the broker holds for a principal on resources whose names start with `prefix`. */
async function aclsOnBroker(principal: string, prefix: string): Promise<string[]> {
  const admin = testKafka('acl-describe').admin();
  try {
    await admin.connect();
    const described = await admin.describeAcls({
      principal,
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ANY,
    });
    return described.resources
      .filter((r) => r.resourceName.startsWith(prefix))
      .flatMap((r) => r.acls.map((a) => `${a.principal} ${a.permissionType} ${a.operation} ${r.resourceType} ${r.resourcePatternType} ${r.resourceName}`))
      .sort();
  } finally {
    await admin.disconnect();
  }
}

const expectedOnBroker = (acls: readonly GeozoneAcl[]): string[] =>
  acls
    .map((a) => {
      const operation = { read: AclOperationTypes.READ, write: AclOperationTypes.WRITE, describe: AclOperationTypes.DESCRIBE }[a.operation];
      const resourceType = a.resourceType === 'topic' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP;
      const pattern = a.patternType === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED;
      return `${a.principal} ${AclPermissionTypes.ALLOW} ${operation} ${resourceType} ${pattern} ${a.resourceName}`;
    })
    .sort();

/**
 * Setup: kafkajs's createTopics with waitForLeaders gives up when a new topic's metadata still answers
 * UNKNOWN_TOPIC_OR_PARTITION (seen on a busy machine, with or without the authorizer); the topics are
 * created by then, so asking again finds them.
 */
async function createTopics(prefix: string, geozones: readonly string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureTopicsAt(brokers, topicSpecs(geozones, { prefix }));
      return;
    } catch (error) {
      if (attempt >= 5 || !errorTypes(error).includes('UNKNOWN_TOPIC_OR_PARTITION')) throw error;
      await sleep(500 * attempt);
    }
  }
}

async function removeAcls(acls: readonly GeozoneAcl[]): Promise<void> {
  const admin = testKafka('acl-cleanup').admin();
  try {
    await admin.connect();
    await deleteAcls(admin, acls);
  } catch {
    // best effort: leftovers name this run's prefix and grant nothing anyone else uses
  } finally {
    await admin.disconnect();
  }
}

aclTest('kafka:acls grants each geozone\'s node principal its ACLs and nothing else, once; over PLAINTEXT and over TLS with the region\'s certificate', async (t) => {
  const prefix = `acl-${randomUUID().slice(0, 8)}.`;
  const all = geozoneAcls(['CAISO', 'ERCOT', 'PJM'], { prefix });
  try {
    const first = await kafkaAclsCommand({ brokers, geozones: ['ERCOT', 'CAISO'], prefix });
    t.deepEqual(first.granted, geozoneAcls(['CAISO', 'ERCOT'], { prefix }));
    t.is(first.granted.length, 20);
    t.deepEqual(first.existing, []);

    const second = await kafkaAclsCommand({ brokers: tlsBrokers, ssl: kafkaTlsOptions(regionFiles), geozones: ['CAISO', 'ERCOT', 'PJM'], prefix });
    t.deepEqual(second.granted, geozoneAcls(['PJM'], { prefix }), 'only the new geozone is granted');
    t.is(second.existing.length, 20);
    t.regex(formatAclsResult(second), /^granted {3}User:node\.PJM +READ +topic acl-[0-9a-f]{8}\.arc\.command\.dispatch\.PJM$/m);
    t.regex(formatAclsResult(second), /10 granted, 20 already there\n$/);

    const third = await kafkaAclsCommand({ brokers, geozones: ['PJM', 'CAISO', 'ERCOT'], prefix });
    t.deepEqual(third.granted, []);
    t.is(third.existing.length, 30);

    for (const geozone of ['CAISO', 'ERCOT', 'PJM']) {
      const principal = nodePrincipal(geozone);
      t.deepEqual(await aclsOnBroker(principal, prefix), expectedOnBroker(all.filter((a) => a.principal === principal)), `exactly ${geozone}'s ACLs on the broker`);
    }
  } finally {
    await removeAcls(all);
  }
});

aclTest('arcnet kafka:acls prints what it granted, and nothing the second time', async (t) => {
  // The CLI names the real topics; a geozone of this run's own keeps its grants apart from anyone's.
  const geozone = `ACL${randomUUID().slice(0, 8).toUpperCase()}`;
  try {
    const run = (...extra: string[]) => spawnSync(process.execPath, [cli, 'kafka:acls', '--geozones', geozone, ...extra], { encoding: 'utf8', timeout: 120_000 });
    const first = run('--kafka', tlsBrokers.join(','), '--kafka-tls-ca', regionFiles.caFile, '--kafka-tls-cert', regionFiles.certFile, '--kafka-tls-key', regionFiles.keyFile);
    t.is(first.status, 0, first.stderr);
    t.regex(first.stdout, new RegExp(`^granted {3}User:node\\.${geozone} +READ +topic arc\\.command\\.dispatch\\.${geozone}$`, 'm'));
    t.regex(first.stdout, new RegExp(`^granted {3}User:node\\.${geozone} +WRITE +topic arc\\.telemetry\\.node$`, 'm'));
    t.regex(first.stdout, new RegExp(`^granted {3}User:node\\.${geozone} +READ +group arcnet-agent\\.${geozone}\\. \\(prefix\\)$`, 'm'));
    t.regex(first.stdout, /10 granted, 0 already there\n$/);
    const second = run('--kafka', brokers.join(','), '--json');
    t.is(second.status, 0, second.stderr);
    const json = JSON.parse(second.stdout) as { granted: unknown[]; existing: unknown[] };
    t.deepEqual(json.granted, []);
    t.is(json.existing.length, 10);
  } finally {
    await removeAcls(geozoneAcls([geozone]));
  }
});

aclTest('a CAISO node certificate reads CAISO dispatch and writes telemetry; it is refused ERCOT dispatch, other topics and other geozones\' groups; the region certificate still works', async (t) => {
  const run = randomUUID().slice(0, 8);
  const prefix = `acl-iso-${run}.`;
  const names = topicNames({ prefix });
  const geozones = ['CAISO', 'ERCOT'];
  const acls = geozoneAcls(geozones, { prefix });
  const { dir, cleanup } = tempDir('arcnet-acl-');
  try {
    await createTopics(prefix, geozones);
    await ensureGeozoneAclsAt(brokers, geozones, { prefix });
    const caiso = nodeCert(`caiso-${run}`, 'CAISO', join(dir, 'caiso'));
    const ercot = nodeCert(`ercot-${run}`, 'ERCOT', join(dir, 'ercot'));
    t.is(caiso.principal, 'User:node.CAISO');
    const caisoFiles = { caFile: caiso.ca, certFile: caiso.cert, keyFile: caiso.key };
    const ercotFiles = { caFile: ercot.ca, certFile: ercot.cert, keyFile: ercot.key };

    // The region (its client certificate, a super user) dispatches to both geozones over TLS.
    const region = tlsClient(`acl-region-${run}`, regionFiles);
    const regionProducer = region.producer({ allowAutoTopicCreation: false });
    await regionProducer.connect();
    try {
      for (const geozone of geozones) {
        await regionProducer.send({ topic: names.dispatch(geozone), acks: -1, messages: [{ key: geozone, value: JSON.stringify({ 'request-id': `r-${geozone}`, 'node-id': `n-${geozone}` }) }] });
      }
    } finally {
      await regionProducer.disconnect();
    }

    // CAISO's node reads its own dispatch topic in its own group.
    const caisoNode = tlsClient(`acl-caiso-${run}`, caisoFiles);
    const dispatched = await consume(caisoNode, names.dispatch('CAISO'), agentGroupId('CAISO', caiso.nodeId, { prefix }), 1);
    t.is(requestId(dispatched[0]), 'r-CAISO');

    // ... and writes signed telemetry; so does ERCOT's node, with telemetry that claims to be CAISO's.
    const telemetry = (nodeId: string) => JSON.stringify({ 'node-id': nodeId, geozone: 'CAISO', 'gpu-utilization': 0.5 });
    const send = async (kafka: Kafka, files: { certFile: string; keyFile: string }, nodeId: string): Promise<void> => {
      const identity = loadNodeIdentity(files);
      const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(geozones) });
      await producer.connect();
      try {
        const value = telemetry(nodeId);
        await producer.send({ topic: names.telemetry, acks: -1, messages: [{ key: 'CAISO', value, headers: signNodeMessage(identity, names.telemetry, 'CAISO', value) }] });
      } finally {
        await producer.disconnect();
      }
    };
    await send(caisoNode, caisoFiles, caiso.nodeId);
    await send(tlsClient(`acl-ercot-${run}`, ercotFiles), ercotFiles, ercot.nodeId);

    // The region reads both (Kafka let both in: the topic is shared) and checks who produced them.
    const verify = createInputIdentityVerifier({ caPem: readFileSync(regionFiles.caFile, 'utf8') });
    const received = await consume(region, names.telemetry, `acl-region-${run}`, 2);
    const verdicts = new Map<string, IdentityVerdict>();
    for (const message of received) {
      const body = JSON.parse(message.value?.toString() ?? '{}') as { 'node-id': string; geozone: string };
      verdicts.set(body['node-id'], verify(message.headers, names.telemetry, message.key, message.value, body.geozone, body['node-id']));
    }
    t.like(verdicts.get(caiso.nodeId), { ok: true, geozone: 'CAISO', nodeId: caiso.nodeId });
    t.like(verdicts.get(ercot.nodeId), { ok: false, code: 'ARC_ERR_PRODUCER_IDENTITY', reason: 'geozone-mismatch' });

    // What CAISO's certificate may not do: TOPIC_AUTHORIZATION_FAILED from the broker.
    const refused = tlsClient(`acl-caiso-refused-${run}`, caisoFiles, { retries: 1 });
    const refusal = async (what: string, attempt: () => Promise<unknown>): Promise<void> => {
      const error = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      t.true(errorTypes(error).includes('TOPIC_AUTHORIZATION_FAILED'), `${what}: expected TOPIC_AUTHORIZATION_FAILED, got ${error === undefined ? 'success' : `${errorTypes(error).join(' <- ')} ${error instanceof Error ? error.message : 'a non-Error'}`}`);
    };
    await refusal('read ERCOT dispatch', () => consume(refused, names.dispatch('ERCOT'), agentGroupId('CAISO', `${caiso.nodeId}-2`, { prefix }), 1, 30_000));
    const produceTo = async (topic: string): Promise<void> => {
      const producer = refused.producer({ allowAutoTopicCreation: false, createPartitioner: geozonePartitioner(geozones), retry: { retries: 1 } });
      await producer.connect();
      try {
        await producer.send({ topic, acks: -1, messages: [{ key: 'CAISO', value: '{}' }] });
      } finally {
        await producer.disconnect();
      }
    };
    await refusal('write CAISO dispatch', () => produceTo(names.dispatch('CAISO')));
    await refusal('write ERCOT dispatch', () => produceTo(names.dispatch('ERCOT')));
    await refusal('write inference requests', () => produceTo(names.inference));
    await refusal('read telemetry', () => consume(refused, names.telemetry, agentGroupId('CAISO', `${caiso.nodeId}-3`, { prefix }), 1, 30_000));
    await refusal('read the journal', () => consume(refused, names.journal('CAISO'), agentGroupId('CAISO', `${caiso.nodeId}-4`, { prefix }), 1, 30_000));

    // Its own dispatch topic in ERCOT's group: the broker answers GROUP_AUTHORIZATION_FAILED (kafkajs reports "coordinator not found").
    const debugLog: string[] = [];
    const groupRefused = await consume(tlsClient(`acl-caiso-group-${run}`, caisoFiles, { retries: 1, debugLog }), names.dispatch('CAISO'), agentGroupId('ERCOT', caiso.nodeId, { prefix }), 1, 30_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.truthy(groupRefused, 'joining an ERCOT group was refused');
    t.true(debugLog.some((line) => line.includes('GROUP_AUTHORIZATION_FAILED')), 'the broker said GROUP_AUTHORIZATION_FAILED');

    // The region's certificate still reads ERCOT dispatch (and anything else).
    const ercotDispatch = await consume(region, names.dispatch('ERCOT'), `acl-region-dispatch-${run}`, 1);
    t.is(requestId(ercotDispatch[0]), 'r-ERCOT');
  } finally {
    cleanup();
    await removeAcls(acls);
    await deleteTopicsWithPrefix(prefix);
  }
});
