import type { AnyMachineSnapshot } from 'xstate';
import { nodeAsOf, nodeChanges, offsetAtTime, type HistoryScanOptions } from '../actors/node-history.js';
import type { HistoryQuery } from '../adapters/http/api-schemas.js';
import type { JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

/**
 * A live region answers history between its shards' work: the scan yields to
 * the event loop often, reads at most `maxScan` records, and only one history
 * query runs at a time (others are told to retry), so that no number of
 * readers can hold the shards up.
 */
const liveScan: HistoryScanOptions = {
  maxScan: 500_000,
  pauseEvery: 2_000,
  pause: () => new Promise((resolve) => setImmediate(resolve)),
};


const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * GET /v1/nodes/:id/history: the node's document as of `at` / `offset`, and its
 * changes between `from`/`from-offset` and `to`/`to-offset` (the whole journal
 * when neither is given and no as-of point was asked for). Times are the
 * journal's logical times, mapped to offsets by binary search.
 */
export function nodeHistoryService(
  store: JournalStore & SnapshotStore,
  toDocument: (geozone: string, snapshot: AnyMachineSnapshot) => Record<string, unknown>,
): (geozone: string, nodeId: string, query: HistoryQuery) => Promise<Record<string, unknown>> {
  let running = false;
  return async (geozone, nodeId, query) => {
    if (running) throw new ArcError(ErrorCodes.OVERLOADED, 'another node history query is running; retry in a moment');
    running = true;
    try {
      return await answer(store, geozone, nodeId, query, toDocument);
    } finally {
      running = false;
    }
  };
}

async function answer(
  store: JournalStore & SnapshotStore,
  geozone: string,
  nodeId: string,
  query: HistoryQuery,
  toDocument: (geozone: string, snapshot: AnyMachineSnapshot) => Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const journal = store.journal(geozone);
  const answer: Record<string, unknown> = { nodeId, geozone };
  const asOfOffset = query.offset ?? (query.at === undefined ? undefined : offsetAtTime(journal, Date.parse(query.at)));
  if (asOfOffset !== undefined) {
    const asOf = await nodeAsOf(journal, store, geozone, nodeId, asOfOffset, liveScan);
    answer['asOf'] = {
      offset: asOf.offset,
      time: asOf.offset < 0 ? null : iso(asOf.atMs),
      node: asOf.snapshot === undefined ? null : toDocument(geozone, asOf.snapshot),
    };
  }
  const rangeAsked = [query.from, query['from-offset'], query.to, query['to-offset']].some((v) => v !== undefined);
  if (rangeAsked || asOfOffset === undefined) {
    // A time bound maps to the first offset at or after `from` and the last at or before `to`.
    const from = query['from-offset'] ?? (query.from === undefined ? 0 : offsetAtTime(journal, Date.parse(query.from) - 1) + 1);
    const to = query['to-offset'] ?? (query.to === undefined ? Number.MAX_SAFE_INTEGER : offsetAtTime(journal, Date.parse(query.to)));
    const changes = await nodeChanges(journal, nodeId, from, to, query.limit, liveScan);
    answer['changes'] = {
      items: changes.changes.map((c) => ({ offset: c.offset, time: iso(c.atMs), event: c.event, status: c.status, details: c.details })),
      next: changes.next,
    };
  }
  return answer;
}
