import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { verifyEntries, type JournalVerification, type StoredEntry } from '../../runtime/journal-chain.js';
import { genesisHead } from '../../runtime/journal-entry.js';
import { LmdbStore } from './lmdb-store.js';

/**
 * Verification of the hash-chained LMDB journal: the entries of each shard,
 * as stored (keyed by their first offset), and the chain heads recorded with
 * its snapshots, go through the store-independent check of
 * runtime/journal-chain.ts.
 */
export type { ChainProblem, JournalVerification, ShardChainReport } from '../../runtime/journal-chain.js';

export interface VerifyOptions {
  /** The data key of an encrypted store (when a folder is given). */
  readonly encryptionKey?: Buffer;
  /** Only these shards (default: every shard with a journal). */
  readonly shards?: readonly string[];
}

/** Verifies every shard journal of a store, or of the store in a data folder (opened read-only). */
export async function verifyJournal(source: LmdbStore | string, options: VerifyOptions = {}): Promise<JournalVerification> {
  if (typeof source !== 'string') return verifyStore(source, options.shards);
  if (!LmdbStore.exists(source)) {
    throw new ArcError(ErrorCodes.NO_JOURNAL, `no journal at '${source}': pass the folder a sim or region run wrote (--journal DIR)`);
  }
  const store = new LmdbStore(source, { readOnly: true, ...(options.encryptionKey === undefined ? {} : { encryptionKey: options.encryptionKey }) });
  try {
    return verifyStore(store, options.shards);
  } finally {
    await store.close();
  }
}

/** The chain head of a shard's journal now: after `offset`, the last record (-1 and the genesis value when empty). */
export function journalHead(store: LmdbStore, shardId: string): { offset: number; head: string } {
  if (!store.shardIds().includes(shardId)) return { offset: -1, head: genesisHead(shardId).toString('hex') };
  const journal = store.journal(shardId);
  return { offset: journal.nextOffset() - 1, head: journal.head() };
}

function verifyStore(store: LmdbStore, only: readonly string[] | undefined): JournalVerification {
  const shards = (only ?? store.shardIds()).map((shardId) => {
    // Anchors are read before the entries: on a live store a newer snapshot can then only add records, never make the journal look truncated.
    const anchors = store.chainAnchors(shardId);
    return verifyEntries(shardId, storedEntries(store, shardId), anchors);
  });
  return { ok: shards.every((s) => s.problem === undefined), shards };
}

function* storedEntries(store: LmdbStore, shardId: string): Generator<StoredEntry> {
  for (const { key, bytes } of store.rawJournalEntries(shardId)) yield { key, where: `the entry stored at offset ${key}`, bytes };
}
