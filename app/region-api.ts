import type { AnyMachineSnapshot } from 'xstate';
import { NODE_KIND } from '../actors/node-actor.js';
import type { Region } from '../actors/region.js';
import type { RegionEffect } from '../actors/region-io.js';
import { RESERVATION_KIND } from '../actors/reservation-actor.js';
import { summarize } from '../actors/summary.js';
import { parseWire } from '../actors/wire.js';
import type { DecisionView, RegionApi, TrainingApi } from '../adapters/http/http-api.js';
import type { RegionInput } from '../actors/region-io.js';
import type { JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { nodeHistoryService } from './node-history-view.js';
import type { NodeContext, NodeStatus } from '../machines/node.js';
import type { RegionMetrics, RegionMetricsSource } from '../adapters/metrics/prometheus.js';
import { monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

/**
 * The region behind the HTTP API: requests go in through the same edge
 * validation as the bus, and an inference request is answered with its routing
 * decision, which the region releases only once it is durable.
 */
export function createRegionApi(
  region: Region,
  options: {
    decisionTimeoutMs: number;
    ready: () => boolean;
    /** Why not ready (no geozone names); the owned geozones default to every shard, ready. */
    notReadyReason?: () => string | undefined;
    ownership?: () => { journal: 'lmdb' | 'kafka'; geozones: { geozone: string; ready: boolean }[] };
    metrics: RegionMetrics;
    /** Where the shards' journals and snapshots are (node history reads them). */
    store: JournalStore & SnapshotStore;
    /** The federated path's routes (POST /v1/training, updates, GET /v1/training/:id). */
    training?: TrainingApi;
  },
): { api: RegionApi; onEffects: (effects: readonly RegionEffect[]) => void } {
  // Callers waiting for a decision, by requester geozone and request id: the same id sent from two
  // geozones is two requests, and neither caller may be handed the other's answer.
  const waiting = new Map<string, ((decision: DecisionView) => void)[]>();
  const waitKey = (requesterGeozone: string, requestId: string): string => `${requesterGeozone}\u0000${requestId}`;

  const onEffects = (effects: readonly RegionEffect[]): void => {
    for (const effect of effects) {
      if (effect.type !== 'decision') continue;
      const key = waitKey(effect.requesterGeozone, effect.requestId);
      const waiters = waiting.get(key);
      if (waiters === undefined) continue;
      waiting.delete(key);
      for (const resolve of waiters) resolve(effect);
    }
  };

  const nodeDoc = (geozone: string, snapshot: AnyMachineSnapshot): Record<string, unknown> & { geozone: string } => {
    const c = snapshot.context as NodeContext;
    return {
      id: c.nodeId,
      name: c.nodeName ?? null,
      geozone,
      geohash: c.geohash,
      energySource: c.energySource,
      batteryLevel: c.batteryLevel,
      gpuUtilization: c.gpuUtilization,
      gpuCount: c.gpuCount,
      modelsLoaded: c.modelsLoaded,
      status: snapshot.value as NodeStatus,
      lastSeenAtMs: c.lastSeenAtMs,
      reservations: c.reservations,
    };
  };

  const history = nodeHistoryService(options.store, (geozone, snapshot) => nodeDoc(geozone, snapshot));

  const find = (actorId: string): { geozone: string; snapshot: AnyMachineSnapshot } | undefined => {
    for (const shard of region.supervisor.all()) {
      const snapshot = shard.snapshotOf(actorId);
      if (snapshot !== undefined) return { geozone: shard.shardId, snapshot };
    }
    return undefined;
  };

  const api: RegionApi = {
    ...(options.training === undefined ? {} : { training: options.training }),
    ready: options.ready,
    notReadyReason: () => options.notReadyReason?.(),
    ownership: () => options.ownership?.() ?? { journal: 'lmdb', geozones: region.supervisor.shardIds.map((geozone) => ({ geozone, ready: true })) },
    infer: (body, scope) => {
      const input = parseWire('inference', body);
      if (input.type !== 'inference') throw new ArcError(ErrorCodes.INVARIANT, 'parsed inference is not an inference');
      if (!scope(input.request.requesterGeozone)) throw forbidden();
      const requestId = input.request.requestId;
      const key = waitKey(input.request.requesterGeozone, requestId);
      return new Promise<DecisionView>((resolve, reject) => {
        const waiter = (decision: DecisionView): void => {
          cancel();
          resolve(decision);
        };
        /** Stops waiting (this caller only: another caller of the same request keeps its place). */
        const leave = (): void => {
          const rest = (waiting.get(key) ?? []).filter((w) => w !== waiter);
          if (rest.length === 0) waiting.delete(key);
          else waiting.set(key, rest);
        };
        const cancel = realScheduler.after(options.decisionTimeoutMs, () => {
          leave();
          reject(new ArcError(ErrorCodes.OVERLOADED, `no routing decision for ${requestId} within ${options.decisionTimeoutMs} ms; retry with the same request-id`));
        });
        waiting.set(key, [...(waiting.get(key) ?? []), waiter]);
        try {
          const started = monotonicNowMs();
          region.supervisor.submit(input);
          options.metrics.routingSeconds.observe((monotonicNowMs() - started) / 1000);
        } catch (error) {
          cancel();
          leave();
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
    ingest: async (kind, body, scope) => {
      const input = parseWire(kind, body);
      if (!scope(geozoneOfIngest(input))) throw forbidden();
      const shard = region.supervisor.shard(region.shardOf(input));
      region.supervisor.submit(input);
      await shard.whenDurable(shard.lastOffset);
    },
    nodes: (filter, scope) => {
      const matches: [string, string, AnyMachineSnapshot][] = [];
      for (const shard of region.supervisor.all()) {
        if (!scope(shard.shardId) || (filter.geozone !== undefined && filter.geozone !== shard.shardId)) continue;
        for (const [, kind, snapshot] of shard.actors()) {
          if (kind.name !== NODE_KIND) continue;
          const context = snapshot.context as NodeContext;
          if (filter.after !== undefined && context.nodeId <= filter.after) continue;
          if (filter.status !== undefined && snapshot.value !== filter.status) continue;
          if (filter.model !== undefined && !context.modelsLoaded.includes(filter.model)) continue;
          matches.push([context.nodeId, shard.shardId, snapshot]);
        }
      }
      // Plain code-unit order, so that `after` pages through exactly.
      matches.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const page = matches.slice(0, filter.limit);
      const last = page[page.length - 1];
      return { nodes: page.map(([, geozone, snapshot]) => nodeDoc(geozone, snapshot)), next: matches.length > filter.limit && last !== undefined ? last[0] : null };
    },
    nodeHistory: async (nodeId, query, scope) => {
      // Nodes are never removed from their shard, so a node this region ever saw is found live.
      const geozone = find(`node/${nodeId}`)?.geozone;
      if (geozone === undefined || !scope(geozone)) return undefined;
      return history(geozone, nodeId, query);
    },
    node: (nodeId) => {
      const found = find(`node/${nodeId}`);
      return found === undefined ? undefined : nodeDoc(found.geozone, found.snapshot);
    },
    reservation: (requestId) => {
      const found = find(`reservation/${requestId}`);
      return found === undefined ? undefined : { ...(found.snapshot.context as Record<string, unknown>), geozone: found.geozone, state: found.snapshot.value as string };
    },
    drain: async (nodeId, drain, scope) => {
      const found = find(`node/${nodeId}`);
      if (found === undefined || !scope(found.geozone)) return false;
      const shard = region.supervisor.shard(found.geozone);
      region.supervisor.submit({ type: drain ? 'drain' : 'resume', nodeId });
      await shard.whenDurable(shard.lastOffset);
      return true;
    },
    metrics: () => options.metrics.exposition(),
    summary: () =>
      region.supervisor.all().map((shard) => {
        const nodes: { status: NodeStatus; context: NodeContext }[] = [];
        let open = 0;
        for (const [, kind, snapshot] of shard.actors()) {
          if (kind.name === NODE_KIND) nodes.push({ status: snapshot.value as NodeStatus, context: snapshot.context as NodeContext });
          else if (kind.name === RESERVATION_KIND) open++;
        }
        return summarize(shard.shardId, shard.nowMs, nodes, open);
      }),
  };
  /** The result's geozone is its reservation's (a result for an unknown reservation is ignored by the shard). */
  function geozoneOfIngest(input: RegionInput): string {
    if (input.type === 'telemetry') return input.report.geozone;
    if (input.type === 'result') return find(`reservation/${input.requestId}`)?.geozone ?? region.shardOf(input);
    return region.shardOf(input);
  }

  return { api, onEffects };
}

const forbidden = (): ArcError => new ArcError(ErrorCodes.FORBIDDEN, 'this key may not act on that geozone');

/** What the metrics read from a region when scraped. */
export function regionMetricsSource(region: Region, backlog: () => number): RegionMetricsSource {
  return {
    counters: () => ({ ...region.stats }),
    nodesByStatus: () => {
      const rows: { geozone: string; status: string; count: number }[] = [];
      for (const shard of region.supervisor.all()) {
        const counts = new Map<string, number>([
          ['online', 0],
          ['draining', 0],
          ['offline', 0],
        ]);
        for (const [, kind, snapshot] of shard.actors()) {
          if (kind.name === NODE_KIND) counts.set(snapshot.value as string, (counts.get(snapshot.value as string) ?? 0) + 1);
        }
        for (const [status, count] of counts) rows.push({ geozone: shard.shardId, status, count });
      }
      return rows;
    },
    inputBacklog: backlog,
  };
}
