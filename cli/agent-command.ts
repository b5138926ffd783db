import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { destination, pino } from 'pino';
import { geozone as geozoneSchema, geohash as geohashSchema, id as idSchema } from '../actors/wire.js';
import { geozoneReferenceGeohash } from '../adapters/console/console-feed.js';
import { loadNodeIdentity } from '../adapters/security/node-identity.js';
import { kafkaTlsOptions } from '../adapters/security/tls-options.js';
import { defaultAgentLimits, type AgentUplink, type NodeAgentOptions } from '../agent/agent-options.js';
import { NodeAgent } from '../agent/node-agent.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { parseDurationMs } from '../simulations/duration.js';

export const agentUsage = `arcnet agent: the node agent (one per compute node)

  arcnet agent --region URL --node-id ID --geozone G [--key-file FILE] [--ca FILE] [--tls-cert F --tls-key F] [options]
  arcnet agent --kafka BROKERS --node-id ID --geozone G [--kafka-geozones A,B,C] [--kafka-tls-ca F]
               [--node-cert F --node-key F] [options]

  --region URL            the region's address (http://host:8080, https://..., or ws(s)://host/v1/agent);
                          the agent key comes from ARCNET_AGENT_KEY or --key-file (a file holding the key)
  --kafka BROKERS         host:port,... ; --kafka-geozones: the cluster's geozones as given to kafka:topics
                          (default: --geozone alone); --node-cert/--node-key sign what it produces (and are
                          its TLS client certificate with --kafka-tls-ca)
  --geohash H             where the node is (default: the geozone's reference point when it has one)
  --node-name NAME
  --energy-source cogen|grid|battery (default grid)   --battery-level 0..1 (default 1)
  --battery-file FILE     re-read before each report: a number 0..1, or {"battery-level":..,"energy-source":..}
  --gpu-count N (default 8)   --gpu-utilization 0..1 (default 0)   used when nvidia-smi is absent
  --nvidia-smi PATH|off   (default nvidia-smi)
  --model-server URL      an OpenAI-compatible server (POST /v1/completions, GET /v1/models)
  --models a,b            models to advertise, among those the server lists (default: all it lists);
                          without a model server the node advertises none
  --max-tokens N          per completion (default 16)
  --report-every 10s      telemetry period
  --max-concurrent 4      model-server calls at once      --max-in-hand 64   dispatches held (past it: failed)
  --max-owed 4096         results kept until accepted     --request-timeout 60s   per model-server call
  --drain-timeout 30s     on SIGTERM, for dispatches in hand   --flush-timeout 10s   then for owed results
  --reconnect-max 30s     longest wait between reconnects (exponential backoff, jitter)
  --max-trainings 1       federated trainings at once (each on its own worker thread, one core)

  Federated training: takes the region's train tasks for this node, trains on a worker thread and
  sends each update until the region accepts it (no model server needed).

  SIGTERM or SIGINT: stops taking dispatches, finishes or fails those in hand, ends trainings, flushes
  owed results and updates, prints one JSON line and exits 0.
`;

const options = {
  region: { type: 'string' },
  kafka: { type: 'string' },
  'node-id': { type: 'string' },
  geozone: { type: 'string' },
  geohash: { type: 'string' },
  'node-name': { type: 'string' },
  'key-file': { type: 'string' },
  ca: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'kafka-geozones': { type: 'string' },
  'kafka-tls-ca': { type: 'string' },
  'node-cert': { type: 'string' },
  'node-key': { type: 'string' },
  'energy-source': { type: 'string' },
  'battery-level': { type: 'string' },
  'battery-file': { type: 'string' },
  'gpu-count': { type: 'string' },
  'gpu-utilization': { type: 'string' },
  'nvidia-smi': { type: 'string' },
  'model-server': { type: 'string' },
  models: { type: 'string' },
  'max-tokens': { type: 'string' },
  'report-every': { type: 'string' },
  'max-concurrent': { type: 'string' },
  'max-in-hand': { type: 'string' },
  'max-owed': { type: 'string' },
  'request-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'flush-timeout': { type: 'string' },
  'reconnect-max': { type: 'string' },
  'max-trainings': { type: 'string' },
  help: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; strict: true }>>['values'];

function usage(message: string): ArcError {
  return new ArcError(ErrorCodes.USAGE, `${message}\n\n${agentUsage}`);
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw usage(`missing --${flag}`);
  return value;
}

function wholeNumber(value: string | undefined, flag: string, fallback: number, min = 1, max = 1_000_000): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw usage(`--${flag} must be a whole number from ${min} to ${max}, got '${value}'`);
  return n;
}

function fractionFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw usage(`--${flag} must be a number from 0 to 1, got '${value}'`);
  return n;
}

function duration(value: string | undefined, flag: string, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = parseDurationMs(value);
  if (ms <= 0) throw usage(`--${flag} must be longer than 0`);
  return ms;
}

function checked<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } } }, value: string, flag: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw usage(`--${flag} '${value}': ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw usage(`--${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** The channel's URL from what the operator gives: the region's http(s) address or the ws(s) channel itself. */
export function agentChannelUrl(region: string): string {
  let url: URL;
  try {
    url = new URL(region);
  } catch {
    throw usage(`--region ${region} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (scheme === undefined) throw usage(`--region must be http(s):// or ws(s)://, got ${url.protocol}`);
  url.protocol = scheme;
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/agent';
  return url.href;
}

function list(value: string | undefined): string[] | undefined {
  return value
    ?.split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function uplinkFrom(values: Values, geozone: string): AgentUplink {
  if ((values.region === undefined) === (values.kafka === undefined)) throw usage('give --region URL or --kafka BROKERS (one of them)');
  if (values.region !== undefined) {
    for (const flag of ['kafka-geozones', 'kafka-tls-ca', 'node-cert', 'node-key'] as const) if (values[flag] !== undefined) throw usage(`--${flag} applies to --kafka only`);
    if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw usage('--tls-cert and --tls-key go together');
    const keyFromFile = values['key-file'] === undefined ? undefined : readText(values['key-file'], 'key-file').trim();
    const apiKey = keyFromFile ?? process.env['ARCNET_AGENT_KEY'];
    return {
      kind: 'region',
      url: agentChannelUrl(values.region),
      apiKey: apiKey === '' ? undefined : apiKey,
      caPem: values.ca === undefined ? undefined : readText(values.ca, 'ca'),
      certPem: values['tls-cert'] === undefined ? undefined : readText(values['tls-cert'], 'tls-cert'),
      keyPem: values['tls-key'] === undefined ? undefined : readText(values['tls-key'], 'tls-key'),
    };
  }
  for (const flag of ['key-file', 'ca', 'tls-cert', 'tls-key'] as const) if (values[flag] !== undefined) throw usage(`--${flag} applies to --region only`);
  const brokers = list(values.kafka) ?? [];
  if (brokers.length === 0) throw usage('--kafka needs at least one broker (host:port)');
  const clusterGeozones = (list(values['kafka-geozones']) ?? [geozone]).map((g) => checked(geozoneSchema, g.toUpperCase(), 'kafka-geozones'));
  if (!clusterGeozones.includes(geozone)) throw usage(`--kafka-geozones must include the node's geozone ${geozone}`);
  if ((values['node-cert'] === undefined) !== (values['node-key'] === undefined)) throw usage('--node-cert and --node-key go together');
  const identity = values['node-cert'] === undefined || values['node-key'] === undefined ? undefined : loadNodeIdentity({ certFile: values['node-cert'], keyFile: values['node-key'] });
  if (identity !== undefined && identity.geozone !== geozone) throw usage(`the node certificate is of geozone ${identity.geozone}, not ${geozone}`);
  const caFile = values['kafka-tls-ca'];
  return {
    kind: 'kafka',
    brokers,
    clusterGeozones,
    ssl: caFile === undefined ? undefined : kafkaTlsOptions({ caFile, certFile: values['node-cert'], keyFile: values['node-key'] }),
    identity,
  };
}

export function agentOptionsFrom(args: string[], logger: NodeAgentOptions['logger']): NodeAgentOptions | undefined {
  let values: Values;
  try {
    values = parseArgs({ args, options, strict: true }).values;
  } catch (error) {
    throw usage(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) return undefined;
  const nodeId = checked(idSchema, required(values['node-id'], 'node-id'), 'node-id');
  const geozone = checked(geozoneSchema, required(values.geozone, 'geozone').toUpperCase(), 'geozone');
  const geohash = values.geohash ?? geozoneReferenceGeohash[geozone];
  if (geohash === undefined) throw usage(`--geohash is needed: geozone ${geozone} has no reference point`);
  const energySource = values['energy-source'] ?? 'grid';
  if (energySource !== 'cogen' && energySource !== 'grid' && energySource !== 'battery') throw usage(`--energy-source takes cogen, grid or battery, got '${energySource}'`);
  const models = list(values.models)?.map((model) => checked(idSchema, model, 'models'));
  return {
    nodeId,
    geozone,
    geohash: checked(geohashSchema, geohash, 'geohash'),
    nodeName: values['node-name'],
    uplink: uplinkFrom(values, geozone),
    energy: { energySource, batteryLevel: fractionFlag(values['battery-level'], 'battery-level', 1), batteryFile: values['battery-file'] },
    gpu: {
      nvidiaSmi: values['nvidia-smi'] === 'off' ? undefined : (values['nvidia-smi'] ?? 'nvidia-smi'),
      gpuCount: wholeNumber(values['gpu-count'], 'gpu-count', 8, 1, 64),
      gpuUtilization: fractionFlag(values['gpu-utilization'], 'gpu-utilization', 0),
    },
    models,
    modelServerUrl: values['model-server'],
    maxTokens: wholeNumber(values['max-tokens'], 'max-tokens', 16, 1, 32_768),
    reportEveryMs: duration(values['report-every'], 'report-every', 10_000),
    limits: {
      ...defaultAgentLimits,
      maxConcurrentRuns: wholeNumber(values['max-concurrent'], 'max-concurrent', defaultAgentLimits.maxConcurrentRuns, 1, 1024),
      maxDispatchesInHand: wholeNumber(values['max-in-hand'], 'max-in-hand', defaultAgentLimits.maxDispatchesInHand, 1, 100_000),
      maxOwedResults: wholeNumber(values['max-owed'], 'max-owed', defaultAgentLimits.maxOwedResults, 1, 1_000_000),
      requestTimeoutMs: duration(values['request-timeout'], 'request-timeout', defaultAgentLimits.requestTimeoutMs),
      drainTimeoutMs: duration(values['drain-timeout'], 'drain-timeout', defaultAgentLimits.drainTimeoutMs),
      flushTimeoutMs: duration(values['flush-timeout'], 'flush-timeout', defaultAgentLimits.flushTimeoutMs),
      maxConcurrentTrainings: wholeNumber(values['max-trainings'], 'max-trainings', defaultAgentLimits.maxConcurrentTrainings, 1, 64),
      reconnectMaxMs: Math.max(defaultAgentLimits.reconnectMinMs, duration(values['reconnect-max'], 'reconnect-max', defaultAgentLimits.reconnectMaxMs)),
    },
    logger,
  };
}

/**
 * `arcnet agent`: flags to options, the agent started, SIGTERM/SIGINT to stop it,
 * the final JSON line on stdout. Exit 0 on a signal, 1 when the agent could not
 * go on (a refused key, another agent with this node id).
 */
export async function runAgentCommand(args: string[]): Promise<void> {
  const logger = pino({ name: 'arcnet-agent', level: process.env['LOG_LEVEL'] ?? 'info' }, destination(2));
  const agentOptions = agentOptionsFrom(args, logger);
  if (agentOptions === undefined) {
    process.stdout.write(agentUsage);
    return;
  }
  const agent = new NodeAgent(agentOptions);
  let exitCode = 0;
  const reason = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    agent.onFatal((error) => {
      exitCode = 1;
      resolve(error instanceof ArcError ? error.code : 'fatal');
    });
    agent.start();
    logger.info({ nodeId: agentOptions.nodeId, geozone: agentOptions.geozone, uplink: agentOptions.uplink.kind }, 'agent started');
  });
  const line = await agent.stop(reason);
  process.stdout.write(`${JSON.stringify(line)}\n`);
  // kafkajs may keep sockets open for a while after disconnecting: the line is out, so leave now.
  process.exit(exitCode);
}
