import type { AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from '../runtime/actor-kind.js';
import { stateString } from '../runtime/actor-kind.js';

/** How many actors of each kind are in each state: { node: { online: 950, offline: 50 } }. */
export type KindStateCounts = Record<string, Record<string, number>>;

/** Counts one shard's actors by kind and flattened state (the state names journal records use). */
export function countActors(actors: Iterable<[string, ActorKind, AnyMachineSnapshot]>): KindStateCounts {
  const counts: KindStateCounts = {};
  for (const [, kind, snapshot] of actors) {
    const byState = (counts[kind.name] ??= {});
    const state = stateString(snapshot.value);
    byState[state] = (byState[state] ?? 0) + 1;
  }
  return counts;
}
