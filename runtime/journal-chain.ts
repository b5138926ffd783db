import { ChainHasher, RECORD_PREFIX_HEX, decodeEntry, genesisHead, peekEntryHeader } from './journal-entry.js';

/**
 * Verification of a hash-chained journal (format in journal-entry.ts), whatever
 * store holds it: the chain is recomputed from the shard's genesis value over
 * the stored bytes, the entries must hold consecutive, gap-free offsets, each
 * entry's stored heads must match, and so must the heads recorded with the
 * snapshots (the anchors that reveal a truncated tail or a rewritten and
 * re-hashed stretch). Stores feed their entries in stored order, one at a time,
 * so a journal of any length is checked in constant memory.
 */
export type ChainProblem = 'altered' | 'removed' | 'reordered' | 'format';

export interface ShardChainReport {
  readonly shardId: string;
  /** Records verified (all of them when intact; those before the first bad one otherwise). */
  readonly records: number;
  /** Entries (appends, or Kafka messages) verified. */
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

/** The chain head a snapshot recorded after `offset` (-1: the genesis value). */
export interface ChainAnchor {
  readonly offset: number;
  readonly head: string;
}

/** One stored entry, as the store holds it. */
export interface StoredEntry {
  /** The first offset the store files the entry under, when it keys entries by offset (LMDB); absent when only order places it (Kafka). */
  readonly key?: number;
  /** How a report names it: 'the entry stored at offset 7', 'the message at Kafka offset 12'. */
  readonly where: string;
  readonly bytes: Uint8Array;
}

/** Checks one shard's journal entry by entry; `add` each stored entry in order, then `finish`. */
export class ChainVerifier {
  private readonly hasher = new ChainHasher();
  private readonly anchors: readonly ChainAnchor[];
  private head: Buffer;
  private next = 0;
  private entries = 0;
  private anchorIndex = 0;
  /** Offset after which the chain last agreed with an anchor. */
  private lastAnchored = -1;
  private result: ShardChainReport | undefined;
  /** Records missing where they belong: 'removed', unless a later entry holds them ('reordered'). */
  private gap: { readonly from: number; readonly to: number } | undefined;

  constructor(
    readonly shardId: string,
    anchors: readonly ChainAnchor[],
  ) {
    this.anchors = [...anchors].sort((a, b) => a.offset - b.offset);
    this.head = genesisHead(shardId);
    this.result = this.checkAnchors(-1);
  }

  /** Feeds the next stored entry; false once the outcome is known and later entries cannot change it. */
  add(entry: StoredEntry): boolean {
    if (this.result !== undefined) return this.lookAhead(entry);
    const decoded = decodeEntry(entry.bytes);
    const at = entry.key ?? this.next;
    if (decoded === undefined) {
      this.result = this.report(`${entry.where} is not a J1 entry (header or record count unreadable)`, 'format', at);
      return false;
    }
    const { header, records } = decoded;
    const last = header.first + header.count - 1;
    if (entry.key !== undefined && header.first !== entry.key) {
      this.result = this.report(`${entry.where} holds records ${header.first}..${last}: entries were moved or swapped`, 'reordered', Math.min(entry.key, header.first));
      return false;
    }
    if (header.first > this.next) {
      this.gap = { from: this.next, to: header.first - 1 };
      this.result = this.report(`records ${this.next}..${header.first - 1} are missing: an entry was removed`, 'removed', this.next);
      return true;
    }
    if (header.first < this.next) {
      this.result = this.report(`${entry.where} repeats records ${header.first}..${Math.min(last, this.next - 1)}: an entry was copied or moved`, 'reordered', header.first);
      return false;
    }
    for (let i = 0; i < header.count; i++) {
      const offset = header.first + i;
      const nextHead = this.hasher.next(this.head, records[i] as Uint8Array);
      if (nextHead.toString('hex', 0, RECORD_PREFIX_HEX / 2) !== header.prefixes[i]) {
        this.result = this.report(`record ${offset} does not hash to the chain value written with it: its bytes were altered`, 'altered', offset);
        return false;
      }
      this.head = nextHead;
      this.next = offset + 1;
      this.result = this.checkAnchors(offset);
      if (this.result !== undefined) return false;
    }
    if (this.head.toString('hex') !== header.head) {
      this.result = this.report(`the head stored with ${entry.where} does not match its records: the entry was altered`, 'altered', header.first);
      return false;
    }
    this.entries++;
    return true;
  }

  finish(): ShardChainReport {
    if (this.result !== undefined) return this.result;
    const beyond = this.anchors[this.anchorIndex];
    if (beyond !== undefined) {
      return this.report(
        `the journal ends at offset ${this.next - 1}, but a snapshot recorded the chain head at offset ${beyond.offset}: records from ${this.next} on were removed from the tail`,
        'removed',
        this.next,
      );
    }
    const anchored = this.anchors.length === 0 ? 'no snapshot anchors, so a truncated tail would not show' : `matches ${this.anchors.length} snapshot anchor(s)`;
    return this.report(`intact: ${this.next} records in ${this.entries} entries chain from the genesis value; ${anchored}`);
  }

  /** After a gap: a later entry holding the missing records makes it a reordering rather than a removal. */
  private lookAhead(entry: StoredEntry): boolean {
    const gap = this.gap;
    if (gap === undefined) return false;
    const header = peekEntryHeader(entry.bytes);
    if (header === undefined || header.first > gap.to || header.first + header.count - 1 < gap.from) return true;
    this.gap = undefined;
    this.result = this.report(
      `records ${gap.from}..${gap.to} are not where they belong: ${entry.where} holds records ${header.first}..${header.first + header.count - 1}, later than entries after them: entries were moved or swapped`,
      'reordered',
      gap.from,
    );
    return false;
  }

  /** Checks the anchors at `offset` against the head there; a problem report when one differs. */
  private checkAnchors(offset: number): ShardChainReport | undefined {
    for (let anchor = this.anchors[this.anchorIndex]; anchor !== undefined && anchor.offset <= offset; anchor = this.anchors[++this.anchorIndex]) {
      if (anchor.offset < offset) continue; // an anchor inside a stretch already reported
      if (anchor.head !== this.head.toString('hex')) {
        return this.report(
          `the chain head after offset ${offset} differs from the one recorded with the snapshot there: records ${this.lastAnchored + 1}..${offset} were rewritten and the chain re-hashed`,
          'altered',
          this.lastAnchored + 1,
        );
      }
      this.lastAnchored = offset;
    }
    return undefined;
  }

  private report(detail: string, problem?: ChainProblem, firstBadOffset?: number): ShardChainReport {
    return {
      shardId: this.shardId,
      records: this.next,
      entries: this.entries,
      head: this.head.toString('hex'),
      anchors: this.anchorIndex,
      ...(problem === undefined ? {} : { problem, firstBadOffset }),
      detail,
    };
  }
}

/** Verifies one shard's stored entries (in stored order) against its snapshot anchors. */
export function verifyEntries(shardId: string, entries: Iterable<StoredEntry>, anchors: readonly ChainAnchor[]): ShardChainReport {
  const verifier = new ChainVerifier(shardId, anchors);
  for (const entry of entries) if (!verifier.add(entry)) break;
  return verifier.finish();
}
