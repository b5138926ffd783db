import type { Region } from '../actors/region.js';
import type { RegionEffect } from '../actors/region-io.js';
import { ConsoleFeed } from '../adapters/console/console-feed.js';
import { ConsoleHub, type ConsoleAuthorization } from '../adapters/console/console-hub.js';
import type { ConsoleMessage } from '../adapters/console/console-messages.js';
import { isRefusal, type Principal, type Refusal, type RefusalContext } from '../adapters/http/access.js';
import type { KeyGuard } from '../adapters/security/key-guard.js';
import type { JournalStore } from '../runtime/journal.js';
import { observeAppends } from '../runtime/observed-journal.js';

/**
 * The console feed of a live region: journal records become console messages
 * once their append is durable (the same write-ahead point as every other
 * effect), system effects as they are released, and the hub fans them out to
 * the WebSocket clients whose key and filter allow each one.
 */
export interface ConsoleWiring {
  readonly hub: ConsoleHub;
  /** The store, with every durable append turned into console messages. */
  feedFrom<S extends JournalStore>(store: S): S;
  /** The region's released effects (system events). */
  onEffects(effects: readonly RegionEffect[], geozone: string): void;
  /** Messages from outside the journal (refused requests, for instance). */
  publish(messages: readonly ConsoleMessage[]): void;
}

export function createConsoleWiring(options: {
  region: () => Region | undefined;
  guard: KeyGuard | undefined;
  onRefused: (refusal: Refusal, context: RefusalContext) => void;
  /** A journal record the feed could not turn into messages (logged; the region goes on). */
  onFeedError: (error: unknown) => void;
}): ConsoleWiring {
  const feed = new ConsoleFeed({
    // Actors spawned before a restart are looked up in their shard.
    lookup: (geozone, actorId) => {
      const snapshot = options.region()?.supervisor.shard(geozone).snapshotOf(actorId);
      return snapshot === undefined ? undefined : { context: snapshot.context as unknown, value: snapshot.value as unknown };
    },
  });
  const guard = options.guard;
  const hub = new ConsoleHub({
    authorize: (request): Promise<ConsoleAuthorization> => {
      if (guard === undefined) return Promise.resolve({ ok: true, geozones: 'all' });
      const admitted: Principal | Refusal = guard.admitUpgrade(request);
      if (!isRefusal(admitted)) return Promise.resolve({ ok: true, geozones: admitted.geozones });
      options.onRefused(admitted, { method: 'GET', path: '/telemetry' });
      return Promise.resolve({
        ok: false,
        status: admitted.status,
        code: admitted.code,
        message: admitted.message,
        ...(admitted.retryAfterMs === undefined ? {} : { retryAfterSeconds: Math.max(1, Math.ceil(admitted.retryAfterMs / 1000)) }),
      });
    },
  });
  return {
    hub,
    feedFrom<S extends JournalStore>(store: S): S {
      return observeAppends(store, (shardId, records) => (error) => {
        if (error !== undefined) return;
        // The append is durable whatever happens here: a console failure must not look like a journal failure.
        try {
          hub.publish(feed.fromRecords(shardId, records));
        } catch (failure) {
          options.onFeedError(failure);
        }
      });
    },
    onEffects: (effects, geozone) => {
      const messages = feed.fromEffects(geozone, effects);
      if (messages.length > 0) hub.publish(messages);
    },
    publish: (messages) => hub.publish(messages),
  };
}
