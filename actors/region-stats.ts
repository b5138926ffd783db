import { SPAWN_EVENT, type JournalRecord } from '../runtime/journal.js';
import type { ReservationInput } from '../machines/reservation.js';
import { NODE_KIND } from './node-actor.js';
import { RESERVATION_KIND } from './reservation-actor.js';

/**
 * Counters folded from journal records alone, so a live run, a simulation and a
 * replay of the same journal report the same figures.
 */
export interface RegionStats {
  /** Journal records (all shards). */
  events: number;
  /** New inference requests (forwarded copies not counted again). */
  requests: number;
  /** Reservations made (re-routes after node loss included). */
  routed: number;
  forwarded: number;
  completed: number;
  failed: number;
  expired: number;
  released: number;
  rejected: number;
  /** Reservations sent back to routing because their node went offline. */
  rerouted: number;
  nodeTimeouts: number;
  summaries: number;
}

export function emptyStats(): RegionStats {
  return {
    events: 0,
    requests: 0,
    routed: 0,
    forwarded: 0,
    completed: 0,
    failed: 0,
    expired: 0,
    released: 0,
    rejected: 0,
    rerouted: 0,
    nodeTimeouts: 0,
    summaries: 0,
  };
}

const outcomeCounters = { completed: 'completed', failed: 'failed', expired: 'expired', released: 'released', rejected: 'rejected' } as const;

export function countRecord(stats: RegionStats, record: JournalRecord): void {
  stats.events++;
  const type = record.event.type;
  if (record.kind === RESERVATION_KIND) {
    if (type === SPAWN_EVENT) {
      if ((record.event['input'] as ReservationInput).triedGeozones.length === 0) stats.requests++;
      return;
    }
    if (type === 'route.reserved') stats.routed++;
    else if (type === 'node.lost' && record.state === 'requested') stats.rerouted++;
    if (record.state === 'forwarded') stats.forwarded++;
    const counter = outcomeCounters[record.state as keyof typeof outcomeCounters] as keyof RegionStats | undefined;
    if (counter !== undefined) stats[counter]++;
    return;
  }
  if (record.kind === NODE_KIND) {
    if (type === 'timeout' && record.state === 'offline') stats.nodeTimeouts++;
    return;
  }
  if (type === 'summary') stats.summaries++;
}

export function addStats(into: RegionStats, from: RegionStats): void {
  for (const key of Object.keys(into) as (keyof RegionStats)[]) into[key] += from[key];
}
