import type { Logger } from 'pino';
import type { NodeIdentity } from '../adapters/security/node-identity.js';
import type { ConnectionOptions } from 'node:tls';

/** Where the agent reports and takes dispatches from. */
export type AgentUplink =
  | {
      readonly kind: 'region';
      /** ws(s)://host:port/v1/agent (the channel path; node-id and geozone are added to the query). */
      readonly url: string;
      readonly apiKey?: string | undefined;
      readonly caPem?: string | undefined;
      readonly certPem?: string | undefined;
      readonly keyPem?: string | undefined;
    }
  | {
      readonly kind: 'kafka';
      readonly brokers: readonly string[];
      /** Every geozone of the cluster (as given to kafka:topics and the region): their sorted order numbers the partitions. */
      readonly clusterGeozones: readonly string[];
      readonly ssl?: ConnectionOptions | undefined;
      /** Signs what the agent produces (a region with --node-ca refuses unsigned input). */
      readonly identity?: NodeIdentity | undefined;
    };

/** What the agent says about its power: fixed, or read from a file the site updates. */
export interface EnergyOptions {
  readonly energySource: 'cogen' | 'grid' | 'battery';
  /** 0..1 */
  readonly batteryLevel: number;
  /** Re-read before each report: a number (the battery level, 0..1) or JSON `{"battery-level", "energy-source"}`. */
  readonly batteryFile?: string | undefined;
}

export interface GpuOptions {
  /** nvidia-smi's path or name; undefined: never run it (configuration only). */
  readonly nvidiaSmi?: string | undefined;
  /** Used when nvidia-smi is absent. */
  readonly gpuCount: number;
  /** 0..1, used when nvidia-smi is absent. */
  readonly gpuUtilization: number;
}

/**
 * Every bound the agent keeps, in one place (TigerBeetle's habit: put a limit
 * on everything, and say what happens at it).
 */
export interface AgentLimits {
  /** Model-server calls at once; more dispatches wait in hand. */
  readonly maxConcurrentRuns: number;
  /** Dispatches in hand (running or waiting); one past it is answered `failed` at once. */
  readonly maxDispatchesInHand: number;
  /** Results kept until the region accepted them; past it the oldest is dropped (and counted). */
  readonly maxOwedResults: number;
  /** Request ids remembered to tell a redelivered dispatch from a new one. */
  readonly maxRememberedRequests: number;
  /** One model-server call (ms); a slower one is a `failed` result. */
  readonly requestTimeoutMs: number;
  /** Reconnect backoff: first and largest wait (ms), full jitter. */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Local trainings at once (each a worker thread using one core); more `train` tasks wait. */
  readonly maxConcurrentTrainings: number;
  /** Training tasks waiting for a slot; one past it is dropped (the region's round goes on without this node). */
  readonly maxQueuedTrainings: number;
  /** Training updates kept until the region accepted them; past it the oldest is dropped (and counted). */
  readonly maxOwedUpdates: number;
  /** On SIGTERM: time for dispatches in hand to finish, then time to flush owed results (ms each). */
  readonly drainTimeoutMs: number;
  readonly flushTimeoutMs: number;
}

export const defaultAgentLimits: AgentLimits = {
  maxConcurrentRuns: 4,
  maxDispatchesInHand: 64,
  maxOwedResults: 4096,
  maxRememberedRequests: 16_384,
  requestTimeoutMs: 60_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 30_000,
  maxConcurrentTrainings: 1,
  maxQueuedTrainings: 16,
  maxOwedUpdates: 256,
  drainTimeoutMs: 30_000,
  flushTimeoutMs: 10_000,
};

export interface NodeAgentOptions {
  readonly nodeId: string;
  readonly geozone: string;
  readonly geohash: string;
  readonly nodeName?: string | undefined;
  readonly uplink: AgentUplink;
  readonly energy: EnergyOptions;
  readonly gpu: GpuOptions;
  /** Models to advertise (those the model server serves); undefined: all it serves. */
  readonly models?: readonly string[] | undefined;
  /** OpenAI-compatible base URL; undefined: no model server, no models advertised. */
  readonly modelServerUrl?: string | undefined;
  /** max_tokens of each completion. */
  readonly maxTokens: number;
  readonly reportEveryMs: number;
  readonly limits: AgentLimits;
  readonly logger: Logger;
}
