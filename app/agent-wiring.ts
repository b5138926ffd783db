import type { Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { RESERVATION_KIND } from '../actors/reservation-actor.js';
import { inferenceDispatchSchema } from '../actors/wire-out.js';
import { AgentChannel } from '../adapters/agent/agent-channel.js';
import { effectToWire } from '../adapters/bus/topics.js';
import type { RegionApi } from '../adapters/http/http-api.js';
import type { Refusal, RefusalContext } from '../adapters/http/access.js';
import type { KeyGuard } from '../adapters/security/key-guard.js';
import type { ReservationContext } from '../machines/reservation.js';
import { realScheduler, type Clock } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { Shard } from '../runtime/shard.js';

/**
 * The agent channel of a region process: node agents connect to /v1/agent,
 * send telemetry and results through the same edge as the HTTP API, and get
 * the dispatches of the reservations made on their node, at least once.
 *
 * Pending dispatches live in the channel's memory; what a restart (or a
 * takeover of a geozone) would lose is rebuilt from the recovered shards: every
 * reservation dispatched and not yet ended is offered to its node again.
 */
export function createAgentWiring(options: {
  region: Region;
  api: RegionApi;
  clock: Clock;
  guard: KeyGuard | undefined;
  onRefused: (refusal: Refusal, context: RefusalContext) => void;
  /** Where an agent's training-update goes (the federated path); refused as unknown without it. */
  trainingUpdate?: (body: string, scope: (geozone: string) => boolean) => Promise<void>;
}): { channel: AgentChannel; onEffects: (effects: readonly RegionEffect[]) => void } {
  const { region, api, clock } = options;
  const channel = new AgentChannel({
    region: {
      ingest: (kind, body, scope) => {
        if (kind !== 'training-update') return api.ingest(kind, body, scope);
        const update = options.trainingUpdate;
        return update === undefined ? Promise.reject(new ArcError(ErrorCodes.NOT_FOUND, 'this region runs no federated training')) : update(body, scope);
      },
      geozoneOfNode: (nodeId) => api.node(nodeId)?.geozone,
      nowMs: () => clock.nowMs(),
    },
    scheduler: realScheduler,
    guard: options.guard,
    onRefused: options.onRefused,
  });
  const offer = (effect: Extract<RegionEffect, { type: 'dispatch' }>): void => {
    const wire = effectToWire(effect);
    if (wire === undefined) return;
    channel.onDispatch(inferenceDispatchSchema.parse(wire.message), effect.geozone);
  };
  const offerOpen = (shard: Shard<RegionInput, RegionEffect>): void => {
    for (const [, kind, snapshot] of shard.actors()) {
      if (kind.name !== RESERVATION_KIND || snapshot.value !== 'dispatched') continue;
      const c = snapshot.context as ReservationContext;
      if (c.nodeId === null || c.expiresAtMs === null) continue;
      offer({ type: 'dispatch', geozone: shard.shardId, atMs: c.reservedAtMs ?? c.expiresAtMs, requestId: c.requestId, nodeId: c.nodeId, modelId: c.modelId, contextWindow: c.contextWindow, priority: c.priority, expiresAtMs: c.expiresAtMs });
    }
  };
  region.onShardAdded((shard) => {
    // Recovery runs after this call: offer once the shard holds its recovered actors.
    realScheduler.soon(() => offerOpen(shard));
  });
  return {
    channel,
    onEffects: (effects) => {
      for (const effect of effects) if (effect.type === 'dispatch') offer(effect);
    },
  };
}
