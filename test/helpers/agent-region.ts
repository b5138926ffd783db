import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { nodeActorId } from '../../actors/node-actor.js';
import type { RegionConfig } from '../../actors/region-behaviour.js';
import { createRegion, type Region } from '../../actors/region.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { inferenceDispatchSchema } from '../../actors/wire-out.js';
import { parseWire } from '../../actors/wire.js';
import { AgentChannel, type AgentChannelOptions, type AgentRegionPort } from '../../adapters/agent/agent-channel.js';
import { effectToWire } from '../../adapters/bus/topics.js';
import { ConsoleHub } from '../../adapters/console/console-hub.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { realScheduler, WallClock } from '../../runtime/clock.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { SHARD_ACTOR_ID } from '../../runtime/journal.js';
import { LiveTimer } from '../../runtime/live-timer.js';
import { tempDir } from './fixtures.js';
import { inferenceBody } from './http-region.js';

/**
 * A live region (wall clock, LMDB in a temp folder) with the agent channel on
 * a real HTTP server, for one test. The channel's region port is built the way
 * the HTTP edge is: parseWire, the scope check on the input's geozone, submit,
 * and the shard's durability.
 */
export interface AgentRegion {
  readonly region: Region;
  readonly channel: AgentChannel;
  readonly server: Server;
  readonly clock: WallClock;
  /** Every effect the region released, in order. */
  readonly effects: RegionEffect[];
  /** ws://127.0.0.1:port/v1/agent plus the query given. */
  readonly url: (query?: string, path?: string) => string;
  /** Submits an inference request (the bus edge's way) and waits for its decision. */
  readonly infer: (requestId: string, modelId?: string) => Promise<Extract<RegionEffect, { type: 'decision' }>>;
  /** Waits until an effect matches. */
  readonly effect: <T extends RegionEffect['type']>(type: T, match: (effect: Extract<RegionEffect, { type: T }>) => boolean) => Promise<Extract<RegionEffect, { type: T }>>;
  /** Journal records applied to actors so far, all shards (shard-level ticks and summaries left out). */
  readonly actorRecords: () => number;
}

export interface AgentRegionOptions {
  readonly geozones?: readonly string[];
  readonly config?: Partial<Omit<RegionConfig, 'geozones'>>;
  readonly channel?: Partial<Omit<AgentChannelOptions, 'region' | 'scheduler'>>;
  /** Also serve the console feed (open) on the same server. */
  readonly console?: boolean;
}

export async function withAgentRegion(options: AgentRegionOptions, run: (ctx: AgentRegion) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('arcnet-agent-');
  const store = new LmdbStore(dir);
  const clock = new WallClock();
  const effects: RegionEffect[] = [];
  // The port reads the region, created below; it is first called once both exist.
  const geozoneOfNode = (nodeId: string): string | undefined => region.supervisor.all().find((shard) => shard.snapshotOf(nodeActorId(nodeId)) !== undefined)?.shardId;
  const port: AgentRegionPort = {
    ingest: async (kind, body, scope) => {
      if (kind === 'training-update') throw new ArcError(ErrorCodes.NOT_FOUND, 'this test region runs no federated jobs');
      const input = parseWire(kind, body);
      const geozone = input.type === 'telemetry' ? input.report.geozone : region.shardOf(input);
      if (!scope(geozone)) throw new ArcError(ErrorCodes.FORBIDDEN, 'this key may not act on that geozone');
      const shard = region.supervisor.shard(region.shardOf(input));
      region.supervisor.submit(input);
      await shard.whenDurable(shard.lastOffset);
    },
    geozoneOfNode,
    nowMs: () => clock.nowMs(),
  };
  const channel = new AgentChannel({ region: port, scheduler: realScheduler, ...options.channel });
  const region = createRegion({
    geozones: options.geozones ?? ['CAISO', 'ERCOT'],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    config: options.config,
    onEffects: (released) => {
      effects.push(...released);
      for (const effect of released) {
        if (effect.type !== 'dispatch') continue;
        // The wire form a consumer of arc.command.dispatch.{geozone} would get, checked against its schema.
        channel.onDispatch(inferenceDispatchSchema.parse(effectToWire(effect)?.message), effect.geozone);
      }
    },
  });
  region.supervisor.recover();
  let actorRecords = 0;
  for (const shard of region.supervisor.all()) shard.observe((record) => (actorRecords += record.actorId === SHARD_ACTOR_ID ? 0 : 1));
  // Logical time moves without input, as in `arcnet region`: deadlines (reservation expiry) fire.
  const timer = new LiveTimer({ clock, scheduler: realScheduler, everyMs: 20, advance: (nowMs) => region.supervisor.advanceTo(nowMs) });
  timer.start();

  const server = createServer((_request, response) => response.writeHead(404).end());
  const hub = options.console === true ? new ConsoleHub({ authorize: () => Promise.resolve({ ok: true, geozones: 'all' }) }) : undefined;
  hub?.attach(server);
  channel.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const portNumber = (server.address() as AddressInfo).port;

  const effect = async <T extends RegionEffect['type']>(type: T, match: (effect: Extract<RegionEffect, { type: T }>) => boolean): Promise<Extract<RegionEffect, { type: T }>> => {
    for (let i = 0; i < 3_000; i++) {
      const found = effects.find((e): e is Extract<RegionEffect, { type: T }> => e.type === type && match(e as Extract<RegionEffect, { type: T }>));
      if (found !== undefined) return found;
      await sleep(10);
    }
    throw new Error(`no ${type} effect matched within 30 s`);
  };

  try {
    await run({
      region,
      channel,
      server,
      clock,
      effects,
      url: (query = '', path = '/v1/agent') => `ws://127.0.0.1:${portNumber}${path}${query}`,
      infer: async (requestId, modelId) => {
        region.supervisor.submit(parseWire('inference', inferenceBody(requestId, modelId)));
        return effect('decision', (d) => d.requestId === requestId);
      },
      effect,
      actorRecords: () => actorRecords,
    });
  } finally {
    timer.stop();
    await channel.close();
    await hub?.close();
    server.close();
    server.closeAllConnections();
    await region.supervisor.whenIdle();
    await store.close();
    cleanup();
  }
}

/** A real ws client speaking the agent protocol, keeping every message it receives in order. */
export class AgentClient {
  readonly received: Record<string, unknown>[] = [];
  /** The close code and reason, once closed. */
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];
  private nextId = 1;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.received.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
      this.wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  static async open(url: string, key?: string): Promise<AgentClient> {
    const client = new AgentClient(new WebSocket(url, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } }));
    await once(client.ws, 'open');
    return client;
  }

  /** Opens a connection and says hello; resolves with the welcome. */
  static async hello(url: string, nodeId: string, key?: string, geozone?: string): Promise<AgentClient> {
    const client = await AgentClient.open(url, key);
    const welcome = await client.request({ type: 'hello', 'node-id': nodeId, ...(geozone === undefined ? {} : { geozone }) });
    if (welcome['type'] !== 'welcome') throw new Error(`hello refused: ${JSON.stringify(welcome)}`);
    return client;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  async until(done: () => boolean, what = 'a message'): Promise<void> {
    while (!done()) {
      if (this.closed !== undefined) throw new Error(`connection closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  of(type: string): Record<string, unknown>[] {
    return this.received.filter((m) => m['type'] === type);
  }

  send(message: Record<string, unknown> | string): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Sends with a fresh `id` and waits for the answer carrying it. */
  async request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = `m${this.nextId++}`;
    this.send({ ...message, id });
    const answer = (): Record<string, unknown> | undefined => this.received.find((m) => m['id'] === id);
    await this.until(() => answer() !== undefined, `the answer to ${id}`);
    return answer() as Record<string, unknown>;
  }

  /** Resolves with the close code and reason. */
  async whenClosed(): Promise<{ code: number; reason: string }> {
    if (this.closed === undefined) await once(this.ws, 'close');
    return this.closed as { code: number; reason: string };
  }

  async close(): Promise<void> {
    if (this.closed !== undefined) return;
    const done = once(this.ws, 'close');
    this.ws.close();
    await done;
  }
}

/** Connects expecting a refusal: the HTTP status and JSON body the server answered the upgrade with. */
export async function refusedUpgrade(url: string, key?: string): Promise<{ status: number; body: Record<string, unknown>; headers: IncomingMessage['headers'] }> {
  const ws = new WebSocket(url, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_request, response: IncomingMessage) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, headers: response.headers }));
    });
  });
}
