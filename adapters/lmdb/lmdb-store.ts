import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { Journal, JournalRecord, JournalStore } from '../../runtime/journal.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';

/**
 * The embedded default store: one LMDB environment per data folder, holding each
 * shard's journal and the shards' snapshots.
 *
 * Durability: the environment is opened with overlappingSync off, so a write
 * promise resolves only after LMDB's commit has been synced to disk. That promise
 * is the write-ahead point: the shard releases no effect before it.
 *
 * Layout: the journal of shard S is the database `journal:S`, one entry per
 * append (group commit), keyed by the first offset, holding the records as
 * compact tuples. Snapshots are in `snapshots`, keyed [shardId, offset].
 */
type StoredRecord = [atMs: number, actorId: string, kind: string, event: JournalRecord['event'], state: string];

export interface LmdbStoreOptions {
  /** Snapshots kept per shard (older ones are deleted when a new one lands). */
  readonly keepSnapshots?: number;
  /** Skip the fsync on commit (simulation scratch runs only: a power cut may lose the tail). */
  readonly noSync?: boolean;
  readonly readOnly?: boolean;
}

export class LmdbStore implements JournalStore, SnapshotStore {
  static readonly fileName = 'arcnet.mdb';

  /** Whether a data folder holds a store. */
  static exists(dir: string): boolean {
    return existsSync(join(dir, LmdbStore.fileName));
  }

  readonly path: string;
  private readonly root: RootDatabase;
  private readonly journals = new Map<string, LmdbJournal>();
  private readonly snapshotDb: Database<ShardSnapshot, [string, number]>;
  private readonly metaDb: Database<unknown, string>;
  private readonly keepSnapshots: number;
  private readonly readOnly: boolean;

  constructor(path: string, options: LmdbStoreOptions = {}) {
    this.path = path;
    if (options.readOnly !== true) mkdirSync(path, { recursive: true });
    this.root = open({
      path: join(path, LmdbStore.fileName),
      maxDbs: 256,
      overlappingSync: false,
      noSync: options.noSync === true,
      readOnly: options.readOnly === true,
      // Journals grow large; let the map grow in big steps instead of many remaps.
      pageSize: 8192,
    });
    this.snapshotDb = this.root.openDB<ShardSnapshot, [string, number]>({ name: 'snapshots' });
    this.metaDb = this.root.openDB<unknown, string>({ name: 'meta' });
    this.keepSnapshots = Math.max(1, options.keepSnapshots ?? 4);
    this.readOnly = options.readOnly === true;
  }

  journal(shardId: string): LmdbJournal {
    let journal = this.journals.get(shardId);
    if (journal === undefined) {
      const db = this.root.openDB<StoredRecord[], number>({ name: `journal:${shardId}`, encoding: 'json' });
      journal = new LmdbJournal(db);
      this.journals.set(shardId, journal);
      if (!this.readOnly && this.metaDb.get(`shard:${shardId}`) === undefined) this.metaDb.putSync(`shard:${shardId}`, true);
    }
    return journal;
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

  async save(snapshot: ShardSnapshot): Promise<void> {
    await this.snapshotDb.put([snapshot.shardId, snapshot.offset], snapshot);
    const offsets = this.offsets(snapshot.shardId);
    const excess = offsets.length - this.keepSnapshots;
    for (let i = 0; i < excess; i++) await this.snapshotDb.remove([snapshot.shardId, offsets[i] as number]);
  }

  latest(shardId: string, maxOffset = Number.MAX_SAFE_INTEGER): ShardSnapshot | undefined {
    for (const { value } of this.snapshotDb.getRange({ start: [shardId, maxOffset], end: [shardId, -2], reverse: true, limit: 1 })) {
      return value;
    }
    return undefined;
  }

  offsets(shardId: string): number[] {
    const offsets: number[] = [];
    for (const key of this.snapshotDb.getKeys({ start: [shardId, -1], end: [shardId, Number.MAX_SAFE_INTEGER] })) offsets.push(key[1]);
    return offsets;
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

export class LmdbJournal implements Journal {
  private readonly db: Database<StoredRecord[], number>;
  private next: number;

  constructor(db: Database<StoredRecord[], number>) {
    this.db = db;
    this.next = 0;
    for (const { key, value } of db.getRange({ reverse: true, limit: 1 })) this.next = key + value.length;
  }

  nextOffset(): number {
    return this.next;
  }

  append(records: readonly JournalRecord[]): Promise<void> {
    const first = records[0];
    if (first === undefined) return Promise.resolve();
    if (first.offset !== this.next) {
      return Promise.reject(new Error(`append at offset ${first.offset}, journal expects ${this.next}`));
    }
    const stored: StoredRecord[] = records.map((r) => [r.atMs, r.actorId, r.kind, r.event, r.state]);
    let written: Promise<boolean>;
    try {
      written = this.db.put(first.offset, stored);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    // The journal moves on only once the entry is durable: a failed write leaves no gap behind.
    return written.then((ok) => {
      if (!ok) throw new Error(`journal entry at offset ${first.offset} was not written`);
      this.next = first.offset + records.length;
    });
  }

  /** The journal as it was appended: one array of records per append (group commit). */
  *appends(): Generator<JournalRecord[]> {
    for (const { key, value } of this.db.getRange({ start: 0 })) {
      yield value.map(([atMs, actorId, kind, event, state], i) => ({ offset: key + i, atMs, actorId, kind, event, state }));
    }
  }

  *read(fromOffset = 0): Generator<JournalRecord> {
    // The entry holding fromOffset starts at or before it: find it, then scan forward.
    let start = fromOffset;
    for (const key of this.db.getKeys({ start: fromOffset, end: -1, reverse: true, limit: 1 })) start = key;
    for (const { key, value } of this.db.getRange({ start })) {
      for (let i = 0; i < value.length; i++) {
        const offset = key + i;
        if (offset < fromOffset) continue;
        const [atMs, actorId, kind, event, state] = value[i] as StoredRecord;
        yield { offset, atMs, actorId, kind, event, state };
      }
    }
  }
}
