import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { Journal, JournalRecord, JournalStore } from '../../runtime/journal.js';
import { ChainHasher, decodeRecord, ENTRY_FORMAT, EntryEncoder, genesisHead, parseEntryHeader, type EncodedEntry, type EntryHeader } from '../../runtime/journal-entry.js';
import { jsonInSlices, Slicer } from '../../runtime/sliced-work.js';
import type { PersistedActor, ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';
import { assertDataKey, lmdbFileEncrypted, lmdbPageKey, matchesKeyCheck, writeKeyCheck } from './data-key.js';

/**
 * The embedded default store: one LMDB environment per data folder, holding each
 * shard's journal and the shards' snapshots.
 *
 * Durability: the environment is opened with overlappingSync off, so a write
 * promise resolves only after LMDB's commit has been synced to disk. That promise
 * is the write-ahead point: the shard releases no effect before it.
 *
 * Layout: the journal of shard S is the database `journal:S`, one entry per
 * append (group commit), keyed by the first offset. Snapshots are in
 * `snapshots`, keyed [shardId, offset]; the journal's chain head at each
 * snapshot's offset is in `chain-anchors` under the same key.
 *
 * Tamper evidence: each entry is a hash-chained J1 entry (the format shared
 * with the Kafka store, in runtime/journal-entry.ts): every record is chained to
 * the one before it from a per-shard genesis value, and the entry holds the
 * head after its last record. The running head is kept in memory and taken
 * from the last entry on open (no re-hash of the journal). `verifyJournal` in
 * journal-chain.ts walks the chain.
 *
 * Encryption at rest (`encryptionKey`): lmdb-js encrypts every data page with
 * ChaCha8, which covers the journal records, snapshots, chain anchors, metadata
 * and the database names (shard ids). Not encrypted: LMDB's two meta pages at
 * the start of the file (page size, map size, transaction id, root page numbers,
 * the encryption flag), the lock file `arcnet.mdb-lock`, the key check
 * `arcnet.mdb-keycheck` (an HMAC of a fixed label: see data-key.ts), the file's size and
 * growth, and anything written outside the store (effects logs, process logs,
 * command output). Encryption gives confidentiality only: tampering is caught by
 * the hash chain, not by the cipher.
 */
export interface LmdbStoreOptions {
  /** Snapshots kept per shard (older ones are deleted when a new one lands). */
  readonly keepSnapshots?: number;
  /** Skip the fsync on commit (simulation scratch runs only: a power cut may lose the tail). */
  readonly noSync?: boolean;
  readonly readOnly?: boolean;
  /**
   * The 32-byte data key (see data-key.ts): a new store is created encrypted
   * with it, and an existing store opens only if it was created with the same key.
   */
  readonly encryptionKey?: Buffer;
}

const NEWLINE = 0x0a;

/** lmdb-js's openDB option (missing from its typings) to return undefined rather than create a missing database. */
const MUST_EXIST = { create: false } as const;

/** Stored in `meta` when an encrypted store is created; reading it back proves the key. */
const DATA_KEY_CHECK_KEY = 'data-key-check';
const DATA_KEY_CHECK_VALUE = 'arcnet data key check 1';

function unknownFormat(shardId: string, key: number): ArcError {
  return new ArcError(
    ErrorCodes.JOURNAL_TAMPERED,
    `journal entry at offset ${key} of shard ${shardId} is not in the ${ENTRY_FORMAT} format: it was written by another version or altered (run arcnet audit verify)`,
    { shardId, offset: key },
  );
}

/** Splits a stored entry into its header and record lines, refusing unknown formats. */
function decodeEntry(value: unknown, shardId: string, key: number): { header: EntryHeader; lines: string[] } {
  if (!Buffer.isBuffer(value)) throw unknownFormat(shardId, key);
  const lines = value.toString('utf8').split('\n');
  const header = parseEntryHeader(lines[0] ?? '');
  if (header === undefined || lines.length !== header.count + 1) throw unknownFormat(shardId, key);
  return { header, lines };
}

/** Actors per stored snapshot part: encoding one (~110 KB) takes about a millisecond. */
const SNAPSHOT_PART_ACTORS = 256;

/**
 * A snapshot as stored: its actors in `actorParts` parts of their own and its
 * behaviour state as JSON text (both absent: inline, the format before parts).
 */
type StoredSnapshotHead = ShardSnapshot & { readonly actorParts?: number; readonly behaviourStateJson?: string };

export class LmdbStore implements JournalStore, SnapshotStore {
  static readonly fileName = 'arcnet.mdb';

  /** Whether a data folder holds a store. */
  static exists(dir: string): boolean {
    return existsSync(join(dir, LmdbStore.fileName));
  }

  readonly path: string;
  /** Whether the store's pages are encrypted with a data key. */
  readonly encrypted: boolean;
  private readonly root: RootDatabase;
  private readonly journals = new Map<string, LmdbJournal>();
  private readonly snapshotDb: Database<StoredSnapshotHead, [string, number]>;
  private readonly anchorDb: Database<string, [string, number]>;
  /** The actors of a snapshot saved in parts, keyed [shardId, offset, part] (see save). */
  private readonly snapshotPartDb: Database<PersistedActor[], [string, number, number]>;
  private readonly metaDb: Database<unknown, string>;
  private readonly keepSnapshots: number;
  private readonly readOnly: boolean;
  /** Snapshot saves under way: close() waits for them (a sliced save spans many turns of the loop). */
  private readonly savesInFlight = new Set<Promise<void>>();
  private closing = false;

  constructor(path: string, options: LmdbStoreOptions = {}) {
    this.path = path;
    this.readOnly = options.readOnly === true;
    this.keepSnapshots = Math.max(1, options.keepSnapshots ?? 4);
    const key = options.encryptionKey;
    if (key !== undefined) assertDataKey(key);
    const file = join(path, LmdbStore.fileName);
    const isNew = !existsSync(file);
    // lmdb-js crashes the process on a key/file mismatch, so it is checked here first.
    const fileEncrypted = lmdbFileEncrypted(file);
    if (fileEncrypted === true && key === undefined) {
      throw new ArcError(ErrorCodes.DATA_KEY, `the store at '${path}' is encrypted: give its data key (--data-key-file FILE or ARCNET_DATA_KEY)`);
    }
    if (fileEncrypted === false && key !== undefined) {
      throw new ArcError(ErrorCodes.DATA_KEY, `the store at '${path}' is not encrypted, but a data key was given: open it without one`);
    }
    const wrongKey = (): ArcError =>
      new ArcError(ErrorCodes.DATA_KEY, `the store at '${path}' cannot be read with this data key: it is the wrong key, or the store is damaged`);
    // Told by the key check beside the file, before LMDB reads a page with a key that may be wrong.
    const keyCheck = key === undefined || isNew ? undefined : matchesKeyCheck(file, key);
    if (keyCheck === false) throw wrongKey();
    this.encrypted = key !== undefined;
    if (!this.readOnly) mkdirSync(path, { recursive: true });
    this.root = open({
      path: file,
      maxDbs: 256,
      overlappingSync: false,
      noSync: options.noSync === true,
      readOnly: this.readOnly,
      // Journals grow large; let the map grow in big steps instead of many remaps.
      pageSize: 8192,
      ...(key === undefined ? {} : { encryptionKey: lmdbPageKey(key) }),
    });
    try {
      this.metaDb = this.openMeta(isNew);
      this.snapshotDb = this.root.openDB<StoredSnapshotHead, [string, number]>({ name: 'snapshots' });
      this.anchorDb = this.root.openDB<string, [string, number]>({ name: 'chain-anchors', encoding: 'string' });
      this.snapshotPartDb = this.root.openDB<PersistedActor[], [string, number, number]>({ name: 'snapshot-parts' });
    } catch (error) {
      // Close now: lmdb-js shares an open environment by path, so a later open with the right key would get this one.
      void this.root.close().catch(() => undefined);
      if (key === undefined || error instanceof ArcError) throw error;
      throw wrongKey();
    }
    // A new store, or one made before key checks were written whose key just read back right.
    if (key !== undefined && keyCheck === undefined && !this.readOnly) writeKeyCheck(file, key);
  }

  /**
   * Opens `meta`. On an encrypted store it comes first and is never created on an
   * existing file: with a wrong key nothing else is read or written, and the key
   * check stored at creation must read back exactly.
   */
  private openMeta(isNew: boolean): Database<unknown, string> {
    const meta = this.root.openDB<unknown, string>({ name: 'meta', ...(this.encrypted && !isNew ? MUST_EXIST : {}) }) as Database<unknown, string> | undefined;
    if (meta === undefined) throw new Error('no meta database');
    if (!this.encrypted) return meta;
    const check = meta.get(DATA_KEY_CHECK_KEY);
    if (check === undefined && isNew && !this.readOnly) meta.putSync(DATA_KEY_CHECK_KEY, DATA_KEY_CHECK_VALUE);
    else if (check !== DATA_KEY_CHECK_VALUE) throw new Error('data key check does not match');
    return meta;
  }

  journal(shardId: string): LmdbJournal {
    let journal = this.journals.get(shardId);
    if (journal === undefined) {
      journal = new LmdbJournal(this.journalDb(shardId), shardId);
      this.journals.set(shardId, journal);
      if (!this.readOnly && this.metaDb.get(`shard:${shardId}`) === undefined) this.metaDb.putSync(`shard:${shardId}`, true);
    }
    return journal;
  }

  private journalDb(shardId: string): Database<Buffer, number> {
    return this.root.openDB<Buffer, number>({ name: `journal:${shardId}`, encoding: 'binary' });
  }

  /**
   * The stored entries of a shard's journal as raw bytes, in key order, for
   * verification (the bytes hashed are the bytes on disk).
   */
  *rawJournalEntries(shardId: string): Generator<{ key: number; bytes: Buffer }> {
    const db = this.root.openDB<Buffer, number>({ name: `journal:${shardId}`, encoding: 'binary', ...MUST_EXIST }) as Database<Buffer, number> | undefined;
    if (db === undefined) return;
    for (const { key, value } of db.getRange({ start: 0 })) yield { key, bytes: value };
  }

  /** The chain heads recorded with the stored snapshots of a shard, by ascending offset. */
  chainAnchors(shardId: string): { offset: number; head: string }[] {
    const anchors: { offset: number; head: string }[] = [];
    for (const { key, value } of this.anchorDb.getRange({ start: [shardId, -1], end: [shardId, Number.MAX_SAFE_INTEGER] })) {
      anchors.push({ offset: key[1], head: value });
    }
    return anchors;
  }

  shardIds(): string[] {
    const ids: string[] = [];
    for (const key of this.metaDb.getKeys({ start: 'shard:', end: 'shard;' })) ids.push(key.slice('shard:'.length));
    return ids.sort();
  }

  /** Free-form metadata (the run parameters of a simulation, for instance). */
  getMeta(key: string): unknown {
    return this.metaDb.get(key);
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    await this.metaDb.put(key, value);
  }

  /**
   * Stores a snapshot. A large one is stored in parts of SNAPSHOT_PART_ACTORS
   * actors, each encoded in its own turn of the loop: encoding is synchronous
   * and a 10,000-node snapshot encoded at once held input up for tens of
   * milliseconds. The parts are written first and the snapshot's head (the
   * snapshot without its actors, with their part count) last, in order, so a
   * head is never visible without its parts; parts a crash left without a head
   * are removed by the next save.
   */
  save(snapshot: ShardSnapshot): Promise<void> {
    if (this.closing) return Promise.reject(this.closedForSaves());
    const saving = this.saveInParts(snapshot).finally(() => this.savesInFlight.delete(saving));
    this.savesInFlight.add(saving);
    return saving;
  }

  /** A periodic snapshot still being written when the store closes is given up (the journal holds everything it would). */
  private closedForSaves(): ArcError {
    return new ArcError(ErrorCodes.SHARD_STOPPED, `the store at '${this.path}' is closing: the snapshot was not saved`);
  }

  private async saveInParts(snapshot: ShardSnapshot): Promise<void> {
    const key: [string, number] = [snapshot.shardId, snapshot.offset];
    const head = this.chainHeadAt(snapshot.shardId, snapshot.offset);
    this.removeOrphanParts(snapshot.shardId);
    const writes: Promise<unknown>[] = [];
    const slicer = new Slicer();
    const parts = Math.ceil(snapshot.actors.length / SNAPSHOT_PART_ACTORS);
    for (let part = 0; part < parts; part++) {
      const actors = snapshot.actors.slice(part * SNAPSHOT_PART_ACTORS, (part + 1) * SNAPSHOT_PART_ACTORS);
      writes.push(this.snapshotPartDb.put([snapshot.shardId, snapshot.offset, part], actors));
      // A part is encoded synchronously by put(): let input in between parts once the slice is spent.
      if (slicer.spent()) await slicer.pause();
      // Parts without their head are orphans the next save removes; no write may follow close().
      if (this.closing) {
        await Promise.allSettled(writes);
        throw this.closedForSaves();
      }
    }
    // The behaviour's state (a region's remembered request ids: thousands) goes as JSON text, built in slices too.
    const behaviourStateJson = (await jsonInSlices(snapshot.behaviourState, slicer)) ?? 'null';
    if (this.closing) {
      await Promise.allSettled(writes);
      throw this.closedForSaves();
    }
    const stored: StoredSnapshotHead = { ...snapshot, actors: [], behaviourState: null, actorParts: parts, behaviourStateJson };
    // Issued together, the two puts land in the same LMDB transaction (after the parts: writes commit in order).
    writes.push(this.snapshotDb.put(key, stored), head === undefined ? Promise.resolve() : this.anchorDb.put(key, head));
    await Promise.all(writes);
    const offsets = this.offsets(snapshot.shardId);
    const excess = offsets.length - this.keepSnapshots;
    for (let i = 0; i < excess; i++) await this.removeSnapshot(snapshot.shardId, offsets[i] as number);
  }

  private async removeSnapshot(shardId: string, offset: number): Promise<void> {
    const key: [string, number] = [shardId, offset];
    const removals: Promise<unknown>[] = [this.snapshotDb.remove(key), this.anchorDb.remove(key)];
    for (const partKey of this.snapshotPartDb.getKeys({ start: [shardId, offset, -1], end: [shardId, offset, Number.MAX_SAFE_INTEGER] })) {
      removals.push(this.snapshotPartDb.remove(partKey));
    }
    await Promise.all(removals);
  }

  /** Parts whose head never landed (the process stopped between them): nothing reads them. */
  private removeOrphanParts(shardId: string): void {
    if (this.readOnly) return;
    for (const [, offset, part] of this.snapshotPartDb.getKeys({ start: [shardId, -2, -1], end: [shardId, Number.MAX_SAFE_INTEGER, 0] })) {
      if (this.snapshotDb.doesExist([shardId, offset])) continue;
      void this.snapshotPartDb.remove([shardId, offset, part]);
    }
  }

  /** The chain head after `offset` of a shard's journal, when the journal holds it. */
  private chainHeadAt(shardId: string, offset: number): string | undefined {
    if (offset < 0) return genesisHead(shardId).toString('hex');
    const known = this.journals.get(shardId) ?? (this.metaDb.get(`shard:${shardId}`) === undefined ? undefined : this.journal(shardId));
    return known?.headAt(offset);
  }

  latest(shardId: string, maxOffset = Number.MAX_SAFE_INTEGER): ShardSnapshot | undefined {
    for (const { value } of this.snapshotDb.getRange({ start: [shardId, maxOffset], end: [shardId, -2], reverse: true, limit: 1 })) {
      return this.withActors(value);
    }
    return undefined;
  }

  /** A stored snapshot whole: its actors from its parts (or inline, as snapshots were stored before parts). */
  private withActors(stored: StoredSnapshotHead): ShardSnapshot {
    if (stored.actorParts === undefined) return stored;
    const { actorParts, behaviourStateJson, ...head } = stored;
    const snapshot: ShardSnapshot = { ...head, behaviourState: behaviourStateJson === undefined ? head.behaviourState : JSON.parse(behaviourStateJson) };
    const actors: PersistedActor[] = [];
    for (let part = 0; part < actorParts; part++) {
      const slice = this.snapshotPartDb.get([snapshot.shardId, snapshot.offset, part]);
      if (slice === undefined) {
        throw new ArcError(ErrorCodes.JOURNAL_TAMPERED, `snapshot of shard ${snapshot.shardId} at offset ${snapshot.offset} lacks part ${part} of ${actorParts}: the store was altered`, {
          shardId: snapshot.shardId,
          offset: snapshot.offset,
        });
      }
      for (const actor of slice) actors.push(actor);
    }
    return { ...snapshot, actors };
  }

  offsets(shardId: string): number[] {
    const offsets: number[] = [];
    for (const key of this.snapshotDb.getKeys({ start: [shardId, -1], end: [shardId, Number.MAX_SAFE_INTEGER] })) offsets.push(key[1]);
    return offsets;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.savesInFlight]);
    await this.root.close();
  }
}

export class LmdbJournal implements Journal {
  readonly shardId: string;
  private readonly db: Database<Buffer, number>;
  /** Re-hashes records for headAt (a snapshot inside an entry). */
  private readonly hasher = new ChainHasher();
  private readonly encoder = new EntryEncoder();
  private next: number;
  /** Chain head after the last durable record. */
  private headBytes: Buffer;

  constructor(db: Database<Buffer, number>, shardId: string) {
    this.db = db;
    this.shardId = shardId;
    this.next = 0;
    this.headBytes = genesisHead(shardId);
    for (const { key, value } of db.getRange({ reverse: true, limit: 1 })) {
      const header = parseEntryHeader(Buffer.isBuffer(value) ? value.toString('utf8', 0, Math.max(0, value.indexOf(NEWLINE))) : '');
      if (header === undefined) throw unknownFormat(shardId, key);
      this.next = key + header.count;
      this.headBytes = Buffer.from(header.head, 'hex');
    }
  }

  nextOffset(): number {
    return this.next;
  }

  /** The chain head after the last durable record (the genesis value of an empty journal), hex. */
  head(): string {
    return this.headBytes.toString('hex');
  }

  /** The chain head after `offset`, hex; undefined past the end of the journal. */
  headAt(offset: number): string | undefined {
    if (offset < 0) return genesisHead(this.shardId).toString('hex');
    if (offset >= this.next) return undefined;
    if (offset === this.next - 1) return this.head();
    for (const { key, value } of this.db.getRange({ start: offset, end: -1, reverse: true, limit: 1 })) {
      const { header, lines } = decodeEntry(value, this.shardId, key);
      if (offset === key + header.count - 1) return header.head;
      let head = genesisHead(this.shardId);
      for (const { key: before, value: previous } of this.db.getRange({ start: key - 1, end: -1, reverse: true, limit: 1 })) {
        head = Buffer.from(decodeEntry(previous, this.shardId, before).header.head, 'hex');
      }
      for (let i = 1; i <= offset - key + 1; i++) head = this.hasher.next(head, lines[i] as string);
      return head.toString('hex');
    }
    return undefined;
  }

  append(records: readonly JournalRecord[]): Promise<void> {
    const first = records[0];
    if (first === undefined) return Promise.resolve();
    if (first.offset !== this.next) {
      return Promise.reject(new Error(`append at offset ${first.offset}, journal expects ${this.next}`));
    }
    let entry: EncodedEntry;
    let written: Promise<boolean>;
    try {
      entry = this.encoder.encode(records, this.headBytes)[0] as EncodedEntry;
      written = this.db.put(first.offset, entry.bytes);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    // The journal moves on only once the entry is durable: a failed write leaves no gap behind.
    return written.then((ok) => {
      if (!ok) throw new Error(`journal entry at offset ${first.offset} was not written`);
      this.next = first.offset + records.length;
      this.headBytes = entry.head;
    });
  }

  /** The journal as it was appended: one array of records per append (group commit). */
  *appends(): Generator<JournalRecord[]> {
    for (const { key, value } of this.db.getRange({ start: 0 })) {
      const { lines } = decodeEntry(value, this.shardId, key);
      const records: JournalRecord[] = [];
      for (let i = 1; i < lines.length; i++) records.push(decodeRecord(key + i - 1, lines[i] as string));
      yield records;
    }
  }

  *read(fromOffset = 0): Generator<JournalRecord> {
    // The entry holding fromOffset starts at or before it: find it, then scan forward.
    let start = fromOffset;
    for (const key of this.db.getKeys({ start: fromOffset, end: -1, reverse: true, limit: 1 })) start = key;
    for (const { key, value } of this.db.getRange({ start })) {
      const { lines } = decodeEntry(value, this.shardId, key);
      for (let i = Math.max(1, fromOffset - key + 1); i < lines.length; i++) yield decodeRecord(key + i - 1, lines[i] as string);
    }
  }
}
