import { replayBehaviours } from '../actors/central/central-journal.js';
import { createRegion } from '../actors/region.js';
import type { RegionStats } from '../actors/region-stats.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LmdbBlobStore } from '../adapters/lmdb/lmdb-blob-store.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { ManualClock, monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { journalDigest } from '../runtime/journal-digest.js';
import type { JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { countActors, type KindStateCounts } from '../inspector/counts.js';
import { PointInTimeStore, resolvePoint, type ResolvedPoint, type TimePoint } from '../inspector/point-in-time.js';
import { InvariantChecker, type InvariantReport } from './invariants.js';

export interface ReplayResult extends RegionStats {
  readonly geozones: string[];
  readonly seed?: number;
  readonly nodes?: number;
  readonly durationMs?: number;
  readonly fromSnapshot: boolean;
  readonly replayedRecords: number;
  /** Records of actors born and ended in the replayed range, not re-run (with skipEphemeral). */
  readonly skippedRecords: number;
  readonly inFlight: number;
  readonly invariantViolations: number;
  readonly violationsByRule: InvariantReport['byRule'];
  readonly stateHash: string;
  readonly journalDigest: string;
  readonly wallMs: number;
  /** With `until`: the point replayed to (each shard's last included offset) and the actors by state there. */
  readonly until?: ResolvedPoint;
  readonly counts?: Readonly<Record<string, KindStateCounts>>;
}

export interface ReplayOptions {
  readonly useSnapshots?: boolean;
  readonly skipEphemeral?: boolean;
  /**
   * Replay only up to a point: a logical time (every shard at its last record
   * with atMs <= it) or one geozone's offset (the others at their last record
   * no later than that record). Stats, digest and hash then cover the journal
   * up to the point, as if it ended there; invariants still cover all of it.
   */
  readonly until?: TimePoint;
  /** The data key of an encrypted store. */
  readonly encryptionKey?: Buffer | undefined;
}

/**
 * Rebuilds a region's state from a data folder: by default from the journal
 * alone (every record from offset 0), or from the latest snapshot plus the tail.
 * Every record's recorded state is checked as it is applied.
 */
export async function replayJournal(dir: string, options: ReplayOptions = {}): Promise<ReplayResult> {
  const wallStart = monotonicNowMs();
  if (!LmdbStore.exists(dir)) {
    throw new ArcError(ErrorCodes.NO_JOURNAL, `no journal at '${dir}': pass the folder a sim or region run wrote (--journal DIR)`);
  }
  const lmdb = new LmdbStore(dir, { encryptionKey: options.encryptionKey });
  try {
    const until = options.until === undefined ? undefined : resolvePoint(lmdb, options.until);
    const store: JournalStore & SnapshotStore = until === undefined ? lmdb : new PointInTimeStore(lmdb, until.offsets);
    const geozones = store.shardIds();
    if (geozones.length === 0) throw new ArcError(ErrorCodes.NO_JOURNAL, `'${dir}' holds no journal`);
    const region = createRegion({
      geozones,
      store,
      behaviour: replayBehaviours(lmdb, geozones),
      clock: new ManualClock(0),
      scheduler: realScheduler,
      deliverForwards: false,
      onEffects: () => undefined,
    });
    const recovered = region.supervisor.recover(options.useSnapshots === true, { skipEphemeral: options.skipEphemeral === true });
    const meta = lmdb.getMeta('simulation') as { seed?: number; nodes?: number; durationMs?: number } | undefined;
    // Invariants are checked over the whole journal even with a point: a journal cut short mid-forward
    // would look like a request left unrouted, which says nothing about the journal itself.
    const weights = await storedWeights(dir, lmdb, geozones, options.encryptionKey);
    const checker = new InvariantChecker(weights === undefined ? {} : { blobs: (sha) => weights.get(sha) });
    for (const shardId of geozones) checker.checkShard(shardId, lmdb.journal(shardId).read(0));
    const report = checker.finish();
    return {
      geozones,
      ...(meta?.seed === undefined ? {} : { seed: meta.seed }),
      ...(meta?.nodes === undefined ? {} : { nodes: meta.nodes }),
      ...(meta?.durationMs === undefined ? {} : { durationMs: meta.durationMs }),
      ...region.stats,
      fromSnapshot: options.useSnapshots === true,
      replayedRecords: recovered.reduce((sum, r) => sum + r.replayed, 0),
      skippedRecords: recovered.reduce((sum, r) => sum + r.skipped, 0),
      inFlight: report.inFlight,
      invariantViolations: report.violations,
      violationsByRule: report.byRule,
      stateHash: region.supervisor.stateHash(),
      journalDigest: journalDigest(store).digest,
      wallMs: Math.round(monotonicNowMs() - wallStart),
      ...(until === undefined
        ? {}
        : { until, counts: Object.fromEntries(region.supervisor.all().map((shard) => [shard.shardId, countActors(shard.actors())])) }),
    };
  } finally {
    await lmdb.close();
  }
}

/** Beyond this many referenced weight vectors, aggregates are not recomputed (memory stays bounded). */
const MAX_WEIGHTS_CHECKED = 50_000;

/**
 * The training weights the journal names (counted updates and aggregates), read
 * from the data folder's blob store, so the checker can recompute every
 * aggregate; undefined when the folder has no blob store or names too many.
 */
async function storedWeights(dir: string, lmdb: LmdbStore, geozones: readonly string[], encryptionKey: Buffer | undefined): Promise<Map<string, Uint8Array> | undefined> {
  if (!existsSync(join(dir, LmdbBlobStore.fileName))) return undefined;
  const wanted = new Set<string>();
  for (const shardId of geozones) {
    for (const record of lmdb.journal(shardId).read(0)) {
      const sha = record.event['weightsSha256'];
      if (typeof sha === 'string' && record.event.type.startsWith('training.')) wanted.add(sha);
      if (wanted.size > MAX_WEIGHTS_CHECKED) return undefined;
    }
  }
  if (wanted.size === 0) return undefined;
  const blobs = new LmdbBlobStore(dir, { encryptionKey });
  try {
    const found = new Map<string, Uint8Array>();
    for (const sha of wanted) {
      const bytes = await blobs.get(sha);
      if (bytes !== undefined) found.set(sha, bytes);
    }
    return found;
  } finally {
    await blobs.close();
  }
}
