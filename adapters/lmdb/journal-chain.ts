import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { ChainHasher, ENTRY_FORMAT, LmdbStore, RECORD_PREFIX_HEX, genesisHead, parseEntryHeader, splitLines } from './lmdb-store.js';

/**
 * Verification of the hash-chained LMDB journal (format in lmdb-store.ts): every
 * shard's chain is recomputed from its genesis value over the bytes on disk, the
 * entries must hold consecutive, gap-free offsets, each entry's stored heads must
 * match, and so must the heads recorded with the snapshots (the anchors that
 * reveal a truncated tail or a rewritten and re-hashed stretch).
 */
export type ChainProblem = 'altered' | 'removed' | 'reordered' | 'format';

export interface ShardChainReport {
  readonly shardId: string;
  /** Records verified (all of them when intact; those before the first bad one otherwise). */
  readonly records: number;
  /** Entries (appends) verified. */
  readonly entries: number;
  /** Chain head after the last verified record, hex. */
  readonly head: string;
  /** Snapshot anchors the chain was checked against. */
  readonly anchors: number;
  readonly firstBadOffset?: number;
  readonly problem?: ChainProblem;
  readonly detail: string;
}

export interface JournalVerification {
  readonly ok: boolean;
  readonly shards: ShardChainReport[];
}

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
  const shards = (only ?? store.shardIds()).map((shardId) => verifyShard(store, shardId));
  return { ok: shards.every((s) => s.problem === undefined), shards };
}

function verifyShard(store: LmdbStore, shardId: string): ShardChainReport {
  const hasher = new ChainHasher();
  // Anchors are read before the entries: on a live store a newer snapshot can then only add records, never make the journal look truncated.
  const anchors = store.chainAnchors(shardId);
  let head = genesisHead(shardId);
  let next = 0;
  let entries = 0;
  let anchorIndex = 0;
  /** Offset after which the chain last agreed with an anchor. */
  let lastAnchored = -1;

  const report = (detail: string, problem?: ChainProblem, firstBadOffset?: number): ShardChainReport => ({
    shardId,
    records: next,
    entries,
    head: head.toString('hex'),
    anchors: anchorIndex,
    ...(problem === undefined ? {} : { problem, firstBadOffset }),
    detail,
  });
  /** Checks the anchors at `offset` against the head there; a problem report when one differs. */
  const checkAnchors = (offset: number): ShardChainReport | undefined => {
    for (let anchor = anchors[anchorIndex]; anchor !== undefined && anchor.offset <= offset; anchor = anchors[++anchorIndex]) {
      if (anchor.offset < offset) continue; // an anchor inside a stretch already reported
      if (anchor.head !== head.toString('hex')) {
        return report(
          `the chain head after offset ${offset} differs from the one recorded with the snapshot there: records ${lastAnchored + 1}..${offset} were rewritten and the chain re-hashed`,
          'altered',
          lastAnchored + 1,
        );
      }
      lastAnchored = offset;
    }
    return undefined;
  };

  const atGenesis = checkAnchors(-1);
  if (atGenesis !== undefined) return atGenesis;
  for (const { key, bytes } of store.rawJournalEntries(shardId)) {
    const lines = splitLines(bytes);
    const header = parseEntryHeader(Buffer.from(lines[0] ?? new Uint8Array()).toString('utf8'));
    if (header === undefined || header.count !== lines.length - 1) {
      return report(`the entry stored at offset ${key} is not a ${ENTRY_FORMAT} entry (header or record count unreadable)`, 'format', key);
    }
    if (header.first !== key) {
      return report(
        `the entry stored at offset ${key} holds records ${header.first}..${header.first + header.count - 1}: entries were moved or swapped`,
        'reordered',
        Math.min(key, header.first),
      );
    }
    if (key > next) return report(`records ${next}..${key - 1} are missing: an entry was removed`, 'removed', next);
    if (key < next) return report(`the entry stored at offset ${key} overlaps records up to ${next - 1}: an entry was copied or moved`, 'reordered', key);
    for (let i = 0; i < header.count; i++) {
      const offset = key + i;
      const nextHead = hasher.next(head, lines[i + 1] as Uint8Array);
      if (nextHead.toString('hex', 0, RECORD_PREFIX_HEX / 2) !== header.prefixes[i]) {
        return report(`record ${offset} does not hash to the chain value written with it: its bytes were altered`, 'altered', offset);
      }
      head = nextHead;
      next = offset + 1;
      const mismatch = checkAnchors(offset);
      if (mismatch !== undefined) return mismatch;
    }
    if (head.toString('hex') !== header.head) {
      return report(`the head stored with the entry at offset ${key} does not match its records: the entry was altered`, 'altered', key);
    }
    entries++;
  }
  const beyond = anchors[anchorIndex];
  if (beyond !== undefined) {
    return report(
      `the journal ends at offset ${next - 1}, but a snapshot recorded the chain head at offset ${beyond.offset}: records from ${next} on were removed from the tail`,
      'removed',
      next,
    );
  }
  const anchored = anchors.length === 0 ? 'no snapshot anchors, so a truncated tail would not show' : `matches ${anchors.length} snapshot anchor(s)`;
  return report(`intact: ${next} records in ${entries} entries chain from the genesis value; ${anchored}`);
}
