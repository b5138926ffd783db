#!/usr/bin/env node
// Local single-node Apache Kafka (KRaft, combined broker/controller) for development,
// tests and CI, assembled from the Maven Central jars named in scripts/kafka/pom.xml.
//
//   node scripts/kafka/kafka.mjs start    start (or find) the broker; prints "127.0.0.1:<port>" on stdout
//   node scripts/kafka/kafka.mjs stop     SIGTERM, wait up to 30 s, then SIGKILL; idempotent
//   node scripts/kafka/kafka.mjs status   prints "running ..." (exit 0) or "stopped" (exit 1)
//   node scripts/kafka/kafka.mjs tls-info prints JSON {address, ca, cert, key, listening} for the SSL listener
//                                         (exit 1 when there are no certificates yet: start makes them)
//   node scripts/kafka/kafka.mjs node-cert --node-id ID --geozone G --out DIR [--days N]
//                                         a compute node's certificate from the local CA into DIR (node.pem,
//                                         node-key.pem, ca.pem); prints JSON {nodeId, geozone, principal, subject, cert, key, ca, notAfter}
//
// Listeners, all on 127.0.0.1: PLAINTEXT (KAFKA_PORT, the one tests and the CLI use by default, also
// inter-broker), CONTROLLER (KRaft), and SSL (KAFKA_TLS_PORT): TLS 1.3 only, client certificate required.
// The SSL listener's certificates are made with openssl into .kafka/tls on the first start and reused
// afterwards: ca.pem (trust it), client.pem + client-key.pem (a client certificate that CA signed),
// and the broker's own broker.pem/broker-key.pem (SAN 127.0.0.1 and localhost). Without an openssl
// binary (and no usable certificates from before) the broker starts without the SSL listener.
//
// Authorization: KRaft's StandardAuthorizer with ACLs (see writeServerProperties for who is a super
// user). On the SSL listener a compute node's certificate (subject CN=<node-id>,OU=<GEOZONE>,O=arcnet-node,
// made by node-cert) is the principal User:node.<GEOZONE>, so ACLs are granted per geozone
// (`arcnet kafka:acls`), not per node.
//
// Everything lives in <repo>/.kafka: libs/ (the classpath), server.properties,
// log4j2.properties, cluster-id, data/ (log.dirs), tls/, broker.log (+ .1, the previous run's), broker.pid,
// start.lock (held while a start is in progress).
// Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_TLS_PORT (9094), JAVA_HOME,
// KAFKA_START_TIMEOUT_MS (120000).
// Exit codes: 0 ok, 1 failure, 2 usage, 3 Java 17+ or Maven not available here.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CliError,
  EXIT_FAILURE,
  EXIT_NOT_AVAILABLE,
  EXIT_USAGE,
  infoFor,
  isAlive,
  logTail as fileLogTail,
  portFromEnv,
  readPid as readPidFile,
  runMain,
  terminate as terminatePid,
  withStartLock as withLockFile,
} from '../lib/daemons.mjs';

const HOST = '127.0.0.1';
const SCRIPT_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(SCRIPT_DIR, '..', '..');
const POM = join(SCRIPT_DIR, 'pom.xml');
const CACHE = join(REPO_ROOT, '.kafka');
const LIBS = join(CACHE, 'libs');
const LIBS_STAMP = join(LIBS, '.pom-sha256');
const DATA = join(CACHE, 'data');
const SERVER_PROPERTIES = join(CACHE, 'server.properties');
const LOG4J_PROPERTIES = join(CACHE, 'log4j2.properties');
const CLUSTER_ID_FILE = join(CACHE, 'cluster-id');
const BROKER_LOG = join(CACHE, 'broker.log');
const PID_FILE = join(CACHE, 'broker.pid');
const START_LOCK = join(CACHE, 'start.lock');
const TLS_DIR = join(CACHE, 'tls');
/** What a TLS client of the SSL listener needs, plus the broker's own key store (key + chain, one PEM file). */
const TLS_FILES = {
  ca: join(TLS_DIR, 'ca.pem'),
  clientCert: join(TLS_DIR, 'client.pem'),
  clientKey: join(TLS_DIR, 'client-key.pem'),
  brokerCert: join(TLS_DIR, 'broker.pem'),
  brokerKeyStore: join(TLS_DIR, 'broker-keystore.pem'),
};
/** Local certificates are long-lived (nothing rotates them); they are made again when less than a day is left. */
const TLS_DAYS = 3650;
const TLS_RENEW_BEFORE_MS = 24 * 3_600_000;
/** The region's own identity on the SSL listener: the subject of client.pem, a super user (see writeServerProperties). */
const CLIENT_COMMON_NAME = 'arcnet-local-client';
const CLIENT_SUBJECT = `CN=${CLIENT_COMMON_NAME}`;
/**
 * Compute node certificates: the organisation that marks them, and what their subject fields may hold.
 * These patterns are the ones adapters/security/node-identity.ts checks and adapters/kafka/acls.ts
 * names principals by. A node id is at most 64 characters (X.509's limit for a CN); neither field may hold
 * a character that RFC 2253 escapes (comma, plus, quote, backslash, angle brackets, semicolon), so the
 * DN Kafka sees is exactly CN=<node-id>,OU=<GEOZONE>,O=arcnet-node.
 */
const NODE_ORGANIZATION = 'arcnet-node';
const NODE_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,64}$/;
const GEOZONE_PATTERN = /^[A-Z0-9_-]{1,32}$/;
const NODE_CERT_DAYS = 365;
const NODE_CERT_MAX_DAYS = TLS_DAYS;
const READY_LINE = 'Kafka Server started';
const MIN_JAVA = 17;

const info = infoFor('kafka');

function config() {
  const port = portFromEnv('KAFKA_PORT', 9092);
  const controllerPort = portFromEnv('KAFKA_CONTROLLER_PORT', 9093);
  const tlsPort = portFromEnv('KAFKA_TLS_PORT', 9094);
  if (port === controllerPort) throw new CliError(`KAFKA_PORT and KAFKA_CONTROLLER_PORT are both ${port}`, EXIT_USAGE);
  if (tlsPort === port || tlsPort === controllerPort) throw new CliError(`KAFKA_TLS_PORT ${tlsPort} is also KAFKA_PORT or KAFKA_CONTROLLER_PORT`, EXIT_USAGE);
  const timeoutRaw = Number(process.env.KAFKA_START_TIMEOUT_MS ?? '');
  const startTimeoutMs = Number.isFinite(timeoutRaw) && timeoutRaw > 0 ? timeoutRaw : 120_000;
  return { port, controllerPort, tlsPort, startTimeoutMs, address: `${HOST}:${port}`, tlsAddress: `${HOST}:${tlsPort}` };
}

// ---------------------------------------------------------------- Java and Maven

/** Major version of a `java` binary (8 for "1.8.0_x"), or undefined when it does not run. */
function javaMajor(javaBin) {
  const r = spawnSync(javaBin, ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  if (!m) return undefined;
  const first = Number(m[1]);
  return first === 1 && m[2] !== undefined ? Number(m[2]) : first;
}

/** JAVA_HOME if set, else `java` on PATH, else a JDK under /usr/lib/jvm; the first that is 17+. */
function findJava() {
  const tried = [];
  const candidates = [];
  if (process.env.JAVA_HOME) candidates.push(join(process.env.JAVA_HOME, 'bin', 'java'));
  candidates.push('java');
  const jvmRoot = '/usr/lib/jvm';
  if (existsSync(jvmRoot)) {
    const jdks = readdirSync(jvmRoot)
      .map((name) => join(jvmRoot, name, 'bin', 'java'))
      .filter((bin) => existsSync(bin))
      .sort();
    candidates.push(...jdks);
  }
  for (const bin of candidates) {
    const major = javaMajor(bin);
    tried.push(`${bin}: ${major === undefined ? 'not runnable' : `Java ${major}`}`);
    if (major !== undefined && major >= MIN_JAVA) {
      if (tried.length > 1) info(`using ${bin} (Java ${major}); skipped ${tried.slice(0, -1).join(', ')}`);
      return { bin, major, home: bin === 'java' ? undefined : dirname(dirname(bin)) };
    }
  }
  throw new CliError(
    `no Java ${MIN_JAVA}+ found (Kafka 4.x needs it). Tried: ${tried.join('; ')}. ` +
      'Install a JDK (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME.',
    EXIT_NOT_AVAILABLE,
  );
}

function requireMaven(java) {
  const env = java.home ? { ...process.env, JAVA_HOME: java.home } : process.env;
  const r = spawnSync('mvn', ['-v'], { encoding: 'utf8', env });
  if (r.error || r.status !== 0) {
    throw new CliError(
      `Maven (mvn) is not available (${r.error ? r.error.message : `mvn -v exited ${r.status}`}); it is needed once to fetch the Kafka jars ` +
        'into .kafka/libs. Install it (e.g. apt-get install maven).',
      EXIT_NOT_AVAILABLE,
    );
  }
  return env;
}

function pomHash() {
  return createHash('sha256').update(readFileSync(POM)).digest('hex');
}

/** Copies the broker's runtime classpath into .kafka/libs unless a copy for this very pom.xml is there. */
function ensureLibs(java) {
  const hash = pomHash();
  if (existsSync(LIBS_STAMP) && readFileSync(LIBS_STAMP, 'utf8').trim() === hash) return false;
  const env = requireMaven(java);
  const staging = `${LIBS}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  info(`fetching the Kafka classpath with Maven (${POM}) ...`);
  const r = spawnSync(
    'mvn',
    ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'],
    { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.error || r.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
    throw new CliError(`Maven could not copy the Kafka jars (exit ${r.status ?? r.error?.message}):\n${out}`);
  }
  const jars = readdirSync(staging).filter((f) => f.endsWith('.jar'));
  if (!jars.some((f) => /^kafka_2\.13-.*\.jar$/.test(f))) {
    rmSync(staging, { recursive: true, force: true });
    throw new CliError(`Maven finished but no kafka_2.13 jar is in ${staging}`);
  }
  writeFileSync(join(staging, '.pom-sha256'), `${hash}\n`);
  rmSync(LIBS, { recursive: true, force: true });
  renameSync(staging, LIBS);
  info(`${jars.length} jars in ${LIBS}`);
  return true;
}

// ---------------------------------------------------------------- TLS certificates

function opensslAvailable() {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

function openssl(cwd, args) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new CliError(`openssl ${args[0]} failed (exit ${r.status ?? r.error?.message}):\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim()}`);
  }
}

/**
 * True when .kafka/tls holds a complete set made by this script: every file there, the broker and
 * client certificates issued by ca.pem, none of them expiring within a day.
 */
function tlsMaterialUsable() {
  if (!Object.values(TLS_FILES).every((file) => existsSync(file))) return false;
  try {
    const ca = new X509Certificate(readFileSync(TLS_FILES.ca));
    const leaves = [TLS_FILES.brokerCert, TLS_FILES.clientCert].map((file) => new X509Certificate(readFileSync(file)));
    const renewAt = Date.now() + TLS_RENEW_BEFORE_MS;
    return [ca, ...leaves].every((c) => Date.parse(c.validTo) > renewAt) && leaves.every((c) => c.checkIssued(ca) && c.verify(ca.publicKey));
  } catch {
    return false;
  }
}

/** A CA, the broker's certificate (127.0.0.1, localhost) and one client certificate, all EC P-256, into dir. */
function makeTlsMaterial(dir) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', String(TLS_DAYS),
    '-subj', '/CN=ArcNet local Kafka CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (name, commonName, extensions) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(dir, ['req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${commonName}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial',
      '-out', `${name}.pem`, '-days', String(TLS_DAYS), '-extfile', `${name}.ext`]);
    rmSync(join(dir, `${name}.csr`));
    rmSync(join(dir, `${name}.ext`));
  };
  leaf('broker', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('client', CLIENT_COMMON_NAME, 'extendedKeyUsage=clientAuth\n');
  // Kafka's file-based PEM key store is one file: the (PKCS#8, here unencrypted) key, then the chain.
  const keyStore = ['broker-key.pem', 'broker.pem', 'ca.pem'].map((f) => readFileSync(join(dir, f), 'utf8').trimEnd()).join('\n');
  writeFileSync(join(dir, 'broker-keystore.pem'), `${keyStore}\n`, { mode: 0o600 });
}

/**
 * Makes sure .kafka/tls holds usable certificates: reuses them, or makes a new set with openssl.
 * False (and says why) when there are none and openssl is missing: the broker starts without SSL.
 */
function ensureTlsMaterial() {
  if (tlsMaterialUsable()) return true;
  if (!opensslAvailable()) {
    info('openssl is not available here and .kafka/tls holds no usable certificates: starting WITHOUT the SSL listener');
    return false;
  }
  const staging = `${TLS_DIR}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    makeTlsMaterial(staging);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  rmSync(TLS_DIR, { recursive: true, force: true });
  renameSync(staging, TLS_DIR);
  info(`made a CA, a broker and a client certificate in ${TLS_DIR}`);
  return true;
}

/** The CA's certificate and key, for signing node certificates; a CliError saying what to do when they are not there. */
function localCa() {
  const caKey = join(TLS_DIR, 'ca-key.pem');
  if (!tlsMaterialUsable() || !existsSync(caKey)) {
    throw new CliError(`no usable local CA in ${TLS_DIR}: \`node scripts/kafka/kafka.mjs start\` makes it (it needs openssl)`);
  }
  if (!opensslAvailable()) throw new CliError('openssl is not available here: it is needed to make a node certificate');
  return { cert: TLS_FILES.ca, key: caKey };
}

/**
 * A compute node's certificate signed by the local CA: EC P-256, client authentication only, subject
 * O=arcnet-node, OU=<geozone>, CN=<node-id> (which Kafka and Java print as CN=..,OU=..,O=arcnet-node).
 * A random serial instead of -CAcreateserial: two node-cert runs at once must not share ca.srl.
 */
function makeNodeCertificate({ nodeId, geozone, outDir, days }) {
  const ca = localCa();
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const staging = join(outDir, `.node-cert-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  try {
    writeFileSync(join(staging, 'node.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    openssl(staging, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'node-key.pem', '-out', 'node.csr',
      '-subj', `/O=${NODE_ORGANIZATION}/OU=${geozone}/CN=${nodeId}`]);
    openssl(staging, ['x509', '-req', '-in', 'node.csr', '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-out', 'node.pem', '-days', String(days), '-extfile', 'node.ext']);
    const files = { cert: join(outDir, 'node.pem'), key: join(outDir, 'node-key.pem'), ca: join(outDir, 'ca.pem') };
    writeFileSync(files.key, readFileSync(join(staging, 'node-key.pem')), { mode: 0o600 });
    chmodSync(files.key, 0o600);
    writeFileSync(files.cert, readFileSync(join(staging, 'node.pem')));
    writeFileSync(files.ca, readFileSync(ca.cert));
    return files;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function tlsInfoLine(cfg) {
  return `SSL listener at ${cfg.tlsAddress} (TLS 1.3, client certificate required): ` +
    `CA ${TLS_FILES.ca}, client certificate ${TLS_FILES.clientCert}, key ${TLS_FILES.clientKey}`;
}

// ---------------------------------------------------------------- configuration and storage

function writeServerProperties({ port, controllerPort, tlsPort }, tls) {
  const listeners = [`PLAINTEXT://${HOST}:${port}`, ...(tls ? [`SSL://${HOST}:${tlsPort}`] : [])];
  const lines = [
    '# Generated by scripts/kafka/kafka.mjs on every start; edits are overwritten.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${HOST}:${controllerPort}`,
    `listeners=${listeners.join(',')},CONTROLLER://${HOST}:${controllerPort}`,
    `advertised.listeners=${listeners.join(',')}`,
    `listener.security.protocol.map=PLAINTEXT:PLAINTEXT,${tls ? 'SSL:SSL,' : ''}CONTROLLER:PLAINTEXT`,
    // Broker-to-controller and inter-broker traffic stays on plaintext loopback; SSL is for clients.
    'inter.broker.listener.name=PLAINTEXT',
    'controller.listener.names=CONTROLLER',
    `log.dirs=${DATA}`,
    'num.partitions=1',
    // One node: every internal topic must have replication factor 1, or groups and transactions never start.
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=4',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // Authorization: KRaft's StandardAuthorizer (ACLs live in the metadata log, so they survive restarts),
    // and nothing is allowed without an ACL. Super users, who bypass ACLs:
    //  - User:ANONYMOUS is every PLAINTEXT connection, which here means the PLAINTEXT listener (tests, CI,
    //    the CLI and the region on this machine) and the CONTROLLER listener (the broker talking to its own
    //    controller; inter-broker traffic is PLAINTEXT too). Both are bound to 127.0.0.1: "anonymous" is
    //    a process on this machine, which could read .kafka/data directly anyway. A deployment where nodes
    //    can reach the brokers must not offer them a PLAINTEXT listener.
    //    It is also why ssl.client.auth=required below matters: an SSL client without a certificate
    //    would be ANONYMOUS, and so a super user.
    //  - The region's client certificate (client.pem, User:${CLIENT_SUBJECT}): the region creates topics,
    //    owns every consumer group and transactional id and runs kafka:acls (ALTER on the cluster); its ACL
    //    set would be "everything", so it is a super user, said plainly rather than spelled out in ACLs.
    // The authorizer is on even without the SSL listener, so that kafka:acls works the same either way.
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'allow.everyone.if.no.acl.found=false',
    `super.users=User:ANONYMOUS;User:${CLIENT_SUBJECT}`,
    ...(tls
      ? [
          // Only the SSL listener uses these. TLS 1.3 only, and a client without a certificate from ca.pem is refused.
          'ssl.client.auth=required',
          'ssl.protocol=TLSv1.3',
          'ssl.enabled.protocols=TLSv1.3',
          'ssl.keystore.type=PEM',
          `ssl.keystore.location=${TLS_FILES.brokerKeyStore}`,
          'ssl.truststore.type=PEM',
          `ssl.truststore.location=${TLS_FILES.ca}`,
          // A node certificate (CN=<node-id>,OU=<GEOZONE>,O=arcnet-node, as Java prints the DN) is the principal
          // User:node.<GEOZONE>: ACLs are per geozone, and a new node needs a certificate, not an ACL change.
          // Anything else keeps its whole DN (DEFAULT), e.g. User:CN=arcnet-local-client. The character classes
          // are node-cert's; a DN with an escaped character does not match and gets no node ACLs.
          `ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9._:@-]+),OU=([A-Z0-9_-]+),O=${NODE_ORGANIZATION}$/node.$2/,DEFAULT`,
        ]
      : []),
    '',
  ];
  writeFileSync(SERVER_PROPERTIES, lines.join('\n'));
}

function writeLog4jProperties() {
  const lines = [
    '# Generated by scripts/kafka/kafka.mjs: INFO to stdout, which start sends to .kafka/broker.log.',
    'status = warn',
    'appender.stdout.type = Console',
    'appender.stdout.name = STDOUT',
    'appender.stdout.layout.type = PatternLayout',
    'appender.stdout.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = INFO',
    'rootLogger.appenderRef.stdout.ref = STDOUT',
    'logger.request.name = kafka.request.logger',
    'logger.request.level = WARN',
    'logger.statechange.name = state.change.logger',
    'logger.statechange.level = WARN',
    '',
  ];
  writeFileSync(LOG4J_PROPERTIES, lines.join('\n'));
}

function javaArgs(mainClass, args) {
  return [
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-Djava.awt.headless=true',
    // Without this, log4j's own shutdown hook races Kafka's and the controlled-shutdown log is cut short.
    '-Dlog4j2.shutdownHookEnabled=false',
    `-Dlog4j2.configurationFile=${LOG4J_PROPERTIES}`,
    '-cp',
    `${LIBS}/*`,
    mainClass,
    ...args,
  ];
}

function runStorageTool(java, args) {
  const r = spawnSync(java.bin, javaArgs('kafka.tools.StorageTool', args), { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw new CliError(`kafka.tools.StorageTool ${args[0]} failed (exit ${r.status ?? r.error?.message}):\n${`${r.stdout}${r.stderr}`.trim()}`);
  }
  return r.stdout;
}

function readMetaClusterId() {
  const meta = join(DATA, 'meta.properties');
  if (!existsSync(meta)) return undefined;
  const m = /^cluster\.id=(.+)$/m.exec(readFileSync(meta, 'utf8'));
  return m?.[1]?.trim();
}

/** Formats .kafka/data once; the cluster id is kept in .kafka/cluster-id. */
function ensureFormatted(java) {
  const formattedId = readMetaClusterId();
  let clusterId = existsSync(CLUSTER_ID_FILE) ? readFileSync(CLUSTER_ID_FILE, 'utf8').trim() : '';
  if (formattedId) {
    // Already formatted: the storage's id wins (the cluster-id file may have been lost or edited).
    if (clusterId !== formattedId) writeFileSync(CLUSTER_ID_FILE, `${formattedId}\n`);
    return formattedId;
  }
  if (!clusterId) {
    clusterId = runStorageTool(java, ['random-uuid']).trim().split('\n').pop()?.trim() ?? '';
    if (!/^[A-Za-z0-9_-]{22}$/.test(clusterId)) throw new CliError(`StorageTool random-uuid printed an unexpected id: ${clusterId}`);
    writeFileSync(CLUSTER_ID_FILE, `${clusterId}\n`);
  }
  mkdirSync(DATA, { recursive: true });
  info(`formatting ${DATA} for cluster ${clusterId}`);
  runStorageTool(java, ['format', '-t', clusterId, '-c', SERVER_PROPERTIES, '--ignore-formatted']);
  return clusterId;
}

// ---------------------------------------------------------------- process helpers

function readPid() {
  return readPidFile(PID_FILE);
}

/** True when pid is alive and, where /proc can tell, is our broker (guards against a reused pid). */
function isOurBroker(pid) {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(SERVER_PROPERTIES);
  } catch {
    return true;
  }
}

function runningBrokerPid() {
  const pid = readPid();
  if (pid === undefined) return undefined;
  if (isOurBroker(pid)) return pid;
  rmSync(PID_FILE, { force: true });
  return undefined;
}

function portAnswers(port, timeoutMs = 1_000) {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolvePromise(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function logTail(lines = 40) {
  return fileLogTail(BROKER_LOG, lines);
}

function logSaysReady() {
  return existsSync(BROKER_LOG) && readFileSync(BROKER_LOG, 'utf8').includes(READY_LINE);
}

function terminate(pid, graceMs) {
  return terminatePid(info, 'the broker', pid, graceMs);
}

/** Waits for the port to answer and the log to say "Kafka Server started"; fails if the broker dies. */
async function waitReady(pid, cfg) {
  const deadline = performance.now() + cfg.startTimeoutMs;
  while (performance.now() < deadline) {
    if (!isAlive(pid)) {
      throw new CliError(`the broker (pid ${pid}) exited during startup. Last lines of ${BROKER_LOG}:\n${logTail()}`);
    }
    if (logSaysReady() && (await portAnswers(cfg.port))) return;
    await sleep(250);
  }
  throw new CliError(
    `the broker (pid ${pid}) was not ready within ${Math.round(cfg.startTimeoutMs / 1000)} s ` +
      `(port ${cfg.port} answering and "${READY_LINE}" in the log). Last lines of ${BROKER_LOG}:\n${logTail()}`,
  );
}

/** Runs fn holding .kafka/start.lock: two concurrent `start`s never both launch a broker. */
function withStartLock(timeoutMs, fn) {
  return withLockFile(info, START_LOCK, timeoutMs, fn);
}

// ---------------------------------------------------------------- commands

async function start() {
  const cfg = config();
  mkdirSync(CACHE, { recursive: true });
  // Cold starts include a Maven download: give the lock holder that long plus the start timeout.
  await withStartLock(cfg.startTimeoutMs + 600_000, () => startLocked(cfg));
}

async function startLocked(cfg) {
  const existing = runningBrokerPid();
  if (existing !== undefined) {
    // Ours is running: ready already, or still starting (e.g. a concurrent `start`): wait for it.
    if (!(logSaysReady() && (await portAnswers(cfg.port)))) {
      info(`broker pid ${existing} is running but not ready yet; waiting`);
      await waitReady(existing, cfg);
    }
    info(`broker already running (pid ${existing})`);
    if (runningConfigHasTls()) info(tlsInfoLine(cfg));
    else info(`the running broker has no SSL listener (started without one): stop and start it to get one on ${cfg.tlsAddress}`);
    if (!runningConfigHasAuthorizer()) info('the running broker has no ACL authorizer (started by an older kafka.mjs): stop and start it to get one');
    process.stdout.write(`${cfg.address}\n`);
    return;
  }

  const tls = ensureTlsMaterial();
  for (const port of [cfg.port, cfg.controllerPort, ...(tls ? [cfg.tlsPort] : [])]) {
    if (await portAnswers(port)) {
      throw new CliError(
        `${HOST}:${port} is already in use by a process this script did not start (no live pid in ${PID_FILE}). ` +
          'Stop it, or choose other ports with KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_TLS_PORT.',
      );
    }
  }

  const java = findJava();
  const t0 = performance.now();
  ensureLibs(java);
  writeServerProperties(cfg, tls);
  writeLog4jProperties();
  ensureFormatted(java);

  if (existsSync(BROKER_LOG)) renameSync(BROKER_LOG, `${BROKER_LOG}.1`);
  const logFd = openSync(BROKER_LOG, 'a');
  let child;
  try {
    child = spawn(java.bin, javaArgs('kafka.Kafka', [SERVER_PROPERTIES]), {
      cwd: CACHE,
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise((r) => child.once('error', r));
    throw new CliError(`could not start ${java.bin}: ${err?.message ?? 'unknown error'}`);
  }
  child.unref();
  writeFileSync(PID_FILE, `${pid}\n`);
  info(`broker starting (pid ${pid}, Java ${java.major}, log ${BROKER_LOG})`);

  try {
    await waitReady(pid, cfg);
  } catch (err) {
    if (isAlive(pid)) await terminate(pid, 10_000);
    if (readPid() === pid) rmSync(PID_FILE, { force: true });
    throw err;
  }
  info(`broker ready at ${cfg.address} after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (tls) info(tlsInfoLine(cfg));
  process.stdout.write(`${cfg.address}\n`);
}

/** Whether the server.properties of the running broker (the last start's) has the SSL listener. */
function runningConfigHasTls() {
  return existsSync(SERVER_PROPERTIES) && /^listeners=.*\bSSL:\/\//m.test(readFileSync(SERVER_PROPERTIES, 'utf8'));
}

/** Whether the running broker's server.properties (the last start's) enables the ACL authorizer. */
function runningConfigHasAuthorizer() {
  return existsSync(SERVER_PROPERTIES) && /^authorizer\.class\.name=\S/m.test(readFileSync(SERVER_PROPERTIES, 'utf8'));
}

/** Where the SSL listener and its client certificates are, as JSON; exit 1 when there are no certificates yet. */
async function tlsInfo() {
  const cfg = config();
  if (!tlsMaterialUsable()) {
    process.stderr.write(`kafka: no usable certificates in ${TLS_DIR} yet; \`node scripts/kafka/kafka.mjs start\` makes them (it needs openssl)\n`);
    return EXIT_FAILURE;
  }
  const listening = runningBrokerPid() !== undefined && runningConfigHasTls() && (await portAnswers(cfg.tlsPort));
  const out = { address: cfg.tlsAddress, ca: TLS_FILES.ca, cert: TLS_FILES.clientCert, key: TLS_FILES.clientKey, listening };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}

const NODE_CERT_USAGE = 'usage: node scripts/kafka/kafka.mjs node-cert --node-id ID --geozone G --out DIR [--days N]';

/** `node-cert --node-id ID --geozone G --out DIR [--days N]`: see makeNodeCertificate. */
async function nodeCert() {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(3),
      strict: true,
      options: { 'node-id': { type: 'string' }, geozone: { type: 'string' }, out: { type: 'string' }, days: { type: 'string' } },
    }));
  } catch (err) {
    throw new CliError(`${err.message}\n${NODE_CERT_USAGE}`, EXIT_USAGE);
  }
  const nodeId = values['node-id'] ?? '';
  const geozone = values.geozone ?? '';
  if (!NODE_ID_PATTERN.test(nodeId)) throw new CliError(`--node-id '${nodeId}': 1 to 64 letters, digits or . _ : @ -\n${NODE_CERT_USAGE}`, EXIT_USAGE);
  if (!GEOZONE_PATTERN.test(geozone)) throw new CliError(`--geozone '${geozone}': 1 to 32 upper-case letters, digits, _ or -\n${NODE_CERT_USAGE}`, EXIT_USAGE);
  if (values.out === undefined || values.out === '') throw new CliError(`missing --out DIR\n${NODE_CERT_USAGE}`, EXIT_USAGE);
  const days = values.days === undefined ? NODE_CERT_DAYS : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > NODE_CERT_MAX_DAYS) throw new CliError(`--days must be a whole number from 1 to ${NODE_CERT_MAX_DAYS}`, EXIT_USAGE);
  const files = makeNodeCertificate({ nodeId, geozone, outDir: resolve(values.out), days });
  const cert = new X509Certificate(readFileSync(files.cert));
  const out = {
    nodeId,
    geozone,
    principal: `User:node.${geozone}`,
    subject: `CN=${nodeId},OU=${geozone},O=${NODE_ORGANIZATION}`,
    ...files,
    notAfter: new Date(cert.validTo).toISOString(),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}

async function stop() {
  const pid = runningBrokerPid();
  if (pid === undefined) {
    rmSync(PID_FILE, { force: true });
    info('no broker running');
    return;
  }
  await terminate(pid, 30_000);
  if (isAlive(pid)) throw new CliError(`broker pid ${pid} survived SIGKILL`);
  rmSync(PID_FILE, { force: true });
  info('broker stopped');
}

async function status() {
  const cfg = config();
  const pid = runningBrokerPid();
  if (pid === undefined) {
    process.stdout.write('stopped\n');
    return EXIT_FAILURE;
  }
  const ready = logSaysReady() && (await portAnswers(cfg.port));
  process.stdout.write(`running (pid ${pid}, ${cfg.address}${ready ? '' : ', not ready yet'})\n`);
  return 0;
}

const commands = { start, stop, status, 'tls-info': tlsInfo, 'node-cert': nodeCert };

async function main() {
  const name = process.argv[2];
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    process.stderr.write('usage: node scripts/kafka/kafka.mjs start|stop|status|tls-info|node-cert\n');
    return EXIT_USAGE;
  }
  return (await command()) ?? 0;
}

runMain('kafka', main);
