import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import type { GuardedRoutes } from '../adapters/http/guard-hook.js';
import type { TopicSpec } from '../adapters/kafka/topics.js';
import type { RegionMetrics } from '../adapters/metrics/prometheus.js';
import type { Clock, Scheduler } from '../runtime/clock.js';
import type { ShardBehaviour } from '../runtime/shard.js';
import { regionInputTopics, type InputTopic } from './bus-edge.js';
import type { RegionStore } from './ownership.js';

/** What a role's routes and attachments get from the process that hosts them. */
export interface RoleHost {
  readonly region: Region;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly log: Logger;
  /** Journals and snapshots of the shards owned here (history read from the journal). */
  readonly stores: RegionStore;
  /** An input into the process, as if it had arrived at the edge (validated already). */
  submit(input: RegionInput): void;
}

/** Process-side work a role drives from its released effects (e.g. the HPC driver), for the life of the process. */
export interface RoleAttachment {
  /** Effects released by a shard (after their records are durable). */
  onEffects(effects: readonly RegionEffect[], shardId: string): void;
  /** Stops polling and waits for work in flight (before the shards drain). */
  stop(): Promise<void>;
}

/**
 * A role of a process: what its shards run and what it adds to the one process
 * assembly (app/region-process.ts). The store, the edge, ownership (LMDB or a
 * Kafka consumer group), the HTTP API with OpenAPI, console, inspector with
 * time travel, metrics, keys, TLS, rate limits and the final line are the same
 * for every role; a role only says what differs.
 */
export interface Role {
  readonly name: 'region' | 'central';
  /** The shards the process runs, from the geozones the operator named (a region: those geozones). */
  shards(geozones: readonly string[]): readonly string[];
  /** The behaviour of a shard that is not a region geozone's (undefined: RegionBehaviour). */
  behaviour?(shardId: string): ShardBehaviour<RegionInput, RegionEffect> | undefined;
  /** The shard of an input of this role's own (undefined: the region's routing decides). */
  shardOf?(input: RegionInput): string | undefined;
  /** Input topics and their edge decoders (the bus; Kafka consumes the same topics). */
  readonly inputs: readonly InputTopic[];
  /** On Kafka: one shard owns every partition of the input topics (one shard for the whole federation). */
  readonly wholeTopics?: boolean;
  /** On Kafka: the topics it creates and uses, of the standard table made for its shards (default: all). */
  kafkaTopics?(specs: readonly TopicSpec[]): TopicSpec[];
  /** Routes of its own on the same server, guarded the same way (each declares its permission). */
  routes?(host: RoleHost): (routes: FastifyInstance, guarded: GuardedRoutes) => void;
  /** Work driven by released effects, started once the shards have recovered. */
  attach?(host: RoleHost): RoleAttachment;
  /** Families of its own on the process's /metrics (registered once, read when scraped). */
  metrics?(metrics: RegionMetrics, host: RoleHost): void;
  /** Its counters for the status line (the region's request counters otherwise). */
  status?(): string;
}

/** The region role: geozone shards running RegionBehaviour, the seed's three input topics. */
export const regionRole: Role = {
  name: 'region',
  shards: (geozones) => geozones,
  inputs: regionInputTopics,
};
