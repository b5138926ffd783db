// The hash-chained LMDB journal: a clean journal verifies, and each kind of
// tampering done behind the store's back (straight through lmdb-js) is caught
// with the offset where it starts.
import test from 'ava';
import { open } from 'lmdb';
import { join } from 'node:path';
import { journalHead, verifyJournal } from '../../adapters/lmdb/journal-chain.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ErrorCodes } from '../../runtime/errors.js';
import { verifyEntries } from '../../runtime/journal-chain.js';
import { EntryEncoder, genesisHead, type EncodedEntry } from '../../runtime/journal-entry.js';
import type { JournalRecord } from '../../runtime/journal.js';
import type { ShardSnapshot } from '../../runtime/snapshot-store.js';
import { makeRecords } from '../contract/journal-contract.js';
import { tempDir } from '../helpers/fixtures.js';

const S = 'CAISO';
/** Append sizes: entries start at offsets 0, 3, 6, 7, 11, 14 (17 records). */
const SIZES = [3, 3, 1, 4, 3, 3];
const ENTRY_KEYS = [0, 3, 6, 7, 11, 14];

async function writeJournal(dir: string, shardId = S, sizes = SIZES, records?: (from: number, count: number) => JournalRecord[]): Promise<LmdbStore> {
  const store = new LmdbStore(dir);
  const journal = store.journal(shardId);
  for (const size of sizes) await journal.append((records ?? makeRecords)(journal.nextOffset(), size));
  return store;
}

function snapshotAt(offset: number, shardId = S): ShardSnapshot {
  return { shardId, offset, atMs: offset * 10, actors: [], behaviourState: { offset } };
}

/** Edits a shard's journal entries directly in the LMDB file, as someone with access to the disk would. */
async function tamper(dir: string, edit: (entries: { get(key: number): Buffer; put(key: number, value: Buffer): Promise<boolean>; remove(key: number): Promise<boolean> }) => Promise<void>, shardId = S): Promise<void> {
  const root = open({ path: join(dir, LmdbStore.fileName), maxDbs: 256, pageSize: 8192 });
  const db = root.openDB<Buffer, number>({ name: `journal:${shardId}`, encoding: 'binary' });
  await edit({
    get: (key) => {
      const value = db.get(key);
      if (value === undefined) throw new Error(`no entry at ${key}`);
      return Buffer.from(value);
    },
    put: (key, value) => db.put(key, value),
    remove: (key) => db.remove(key),
  });
  await root.close();
}

async function verifyDir(dir: string): Promise<Awaited<ReturnType<typeof verifyJournal>>> {
  return verifyJournal(dir);
}

test('a clean journal verifies, and its head is kept across a reopen without re-hashing', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    const store = await writeJournal(dir);
    const head = journalHead(store, S);
    t.is(head.offset, 16);
    t.regex(head.head, /^[0-9a-f]{64}$/);
    const result = await verifyJournal(store);
    t.true(result.ok);
    t.deepEqual(result.shards.map((s) => [s.shardId, s.records, s.entries, s.head, s.problem]), [[S, 17, SIZES.length, head.head, undefined]]);
    await store.close();

    const reopened = new LmdbStore(dir);
    t.deepEqual(journalHead(reopened, S), head, 'the head comes back from the last entry');
    const more = makeRecords(17, 2);
    await reopened.journal(S).append(more);
    const after = journalHead(reopened, S);
    t.not(after.head, head.head, 'every append moves the head');
    await reopened.close();
    const again = await verifyDir(dir);
    t.true(again.ok, 'appends after a reopen continue the chain');
    t.is(again.shards[0]?.head, after.head);
  } finally {
    cleanup();
  }
});

test('the chain starts from a per-shard genesis: the same records in two shards give different heads, and a journal moved to another shard fails', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    const store = await writeJournal(dir, S);
    const other = store.journal('ERCOT');
    for (const size of SIZES) await other.append(makeRecords(other.nextOffset(), size));
    t.not(journalHead(store, S).head, journalHead(store, 'ERCOT').head);
    await store.close();

    // Copy CAISO's entries over ERCOT's, byte for byte.
    const caiso: Buffer[] = [];
    await tamper(dir, async (entries) => {
      for (const key of ENTRY_KEYS) caiso.push(entries.get(key));
      await Promise.resolve();
    });
    await tamper(dir, async (entries) => {
      for (const [i, key] of ENTRY_KEYS.entries()) await entries.put(key, caiso[i] as Buffer);
    }, 'ERCOT');
    const result = await verifyDir(dir);
    t.false(result.ok);
    const ercot = result.shards.find((s) => s.shardId === 'ERCOT');
    t.is(ercot?.problem, 'altered');
    t.is(ercot?.firstBadOffset, 0);
    t.is(result.shards.find((s) => s.shardId === S)?.problem, undefined, 'CAISO itself is intact');
  } finally {
    cleanup();
  }
});

test('one record altered in place is caught at its offset, even inside a multi-record entry', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    await (await writeJournal(dir)).close();
    // Offset 9 is the third record of the entry at 7: its state 'held.waiting' becomes 'held.release' (same length, still valid JSON).
    await tamper(dir, async (entries) => {
      const text = entries.get(7).toString('utf8');
      const lines = text.split('\n');
      t.true(lines[3]?.includes('"held.waiting"'), 'the record to alter');
      lines[3] = (lines[3] as string).replace('"held.waiting"', '"held.release"');
      await entries.put(7, Buffer.from(lines.join('\n'), 'utf8'));
    });
    const reopened = new LmdbStore(dir);
    t.is([...reopened.journal(S).read(9)][0]?.state, 'held.release', 'the store itself reads the altered record');
    await reopened.close();
    const result = await verifyDir(dir);
    t.false(result.ok);
    const shard = result.shards[0];
    t.is(shard?.problem, 'altered');
    t.is(shard?.firstBadOffset, 9);
    t.is(shard?.records, 9, 'records 0..8 verified');
  } finally {
    cleanup();
  }
});

test('a removed entry is caught at the first missing offset', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    await (await writeJournal(dir)).close();
    await tamper(dir, async (entries) => {
      await entries.remove(6);
    });
    const shard = (await verifyDir(dir)).shards[0];
    t.is(shard?.problem, 'removed');
    t.is(shard?.firstBadOffset, 6);

    const { dir: dir2, cleanup: cleanup2 } = tempDir('arcnet-chain-');
    try {
      await (await writeJournal(dir2)).close();
      await tamper(dir2, async (entries) => {
        await entries.remove(0);
      });
      const first = (await verifyDir(dir2)).shards[0];
      t.is(first?.problem, 'removed', 'also the very first entry');
      t.is(first?.firstBadOffset, 0);
    } finally {
      cleanup2();
    }
  } finally {
    cleanup();
  }
});

test('two swapped entries are caught as reordered at the first of them', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    await (await writeJournal(dir)).close();
    // Entries at 11 and 14 both hold 3 records, so the offsets still line up after the swap.
    await tamper(dir, async (entries) => {
      const [a, b] = [entries.get(11), entries.get(14)];
      await entries.put(11, b);
      await entries.put(14, a);
    });
    const shard = (await verifyDir(dir)).shards[0];
    t.is(shard?.problem, 'reordered');
    t.is(shard?.firstBadOffset, 11);
    t.is(shard?.records, 11);
  } finally {
    cleanup();
  }
});

test('a truncated tail is caught against the chain head recorded with a snapshot', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    const store = await writeJournal(dir);
    await store.save(snapshotAt(16));
    t.deepEqual(store.chainAnchors(S), [{ offset: 16, head: journalHead(store, S).head }]);
    await store.close();
    t.true((await verifyDir(dir)).ok);
    await tamper(dir, async (entries) => {
      await entries.remove(14);
    });
    const shard = (await verifyDir(dir)).shards[0];
    t.is(shard?.problem, 'removed');
    t.is(shard?.firstBadOffset, 14);
    t.regex(shard?.detail ?? '', /snapshot/);
  } finally {
    cleanup();
  }
});

test('a stretch rewritten with a recomputed chain is caught against a snapshot anchor', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  const { dir: forged, cleanup: cleanupForged } = tempDir('arcnet-chain-forged-');
  try {
    const store = await writeJournal(dir);
    await store.save(snapshotAt(4)); // inside the entry at 3 (offsets 3..5): its anchor is hashed up to the middle of an entry
    await store.save(snapshotAt(16));
    await store.close();
    t.true((await verifyDir(dir)).ok, 'anchors inside and at the end of entries agree with the chain');

    // The same journal with record 8 changed, written with a valid chain of its own.
    const altered = (from: number, count: number): JournalRecord[] =>
      makeRecords(from, count).map((r) => (r.offset === 8 ? { ...r, state: 'forged' } : r));
    await (await writeJournal(forged, S, SIZES, altered)).close();
    const forgedEntries: Buffer[] = [];
    await tamper(forged, async (entries) => {
      for (const key of ENTRY_KEYS) forgedEntries.push(entries.get(key));
      await Promise.resolve();
    });
    await tamper(dir, async (entries) => {
      for (const [i, key] of ENTRY_KEYS.entries()) await entries.put(key, forgedEntries[i] as Buffer);
    });
    const shard = (await verifyDir(dir)).shards[0];
    t.is(shard?.problem, 'altered');
    t.is(shard?.firstBadOffset, 5, 'somewhere after the last anchor that still agrees (4)');
  } finally {
    cleanup();
    cleanupForged();
  }
});

test('an entry in an unknown format is a clear error when read and a format problem when verified', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    await (await writeJournal(dir)).close();
    // What the store wrote before the chain: the records as one JSON array.
    await tamper(dir, async (entries) => {
      await entries.put(6, Buffer.from(JSON.stringify([[1, 'node/n0', 'node', { type: 'x' }, 'online']])));
    });
    const store = new LmdbStore(dir);
    const error = t.throws(() => [...store.journal(S).read()]);
    t.is((error as { code?: string }).code, ErrorCodes.JOURNAL_TAMPERED);
    t.regex(error?.message ?? '', /offset 6 .*not in the J1 format/);
    await store.close();
    const shard = (await verifyDir(dir)).shards[0];
    t.is(shard?.problem, 'format');
    t.is(shard?.firstBadOffset, 6);
  } finally {
    cleanup();
  }
});

test('snapshot anchors follow snapshot retention', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-chain-');
  try {
    await (await writeJournal(dir)).close();
    const store = new LmdbStore(dir, { keepSnapshots: 2 });
    for (const offset of [2, 9, 16]) await store.save(snapshotAt(offset));
    t.deepEqual(store.offsets(S), [9, 16]);
    t.deepEqual(store.chainAnchors(S).map((a) => a.offset), [9, 16]);
    const result = await verifyJournal(store);
    t.true(result.ok);
    t.is(result.shards[0]?.anchors, 2);
    await store.close();
  } finally {
    cleanup();
  }
});

test('the shared entry format: an append split over several entries chains to the head of one entry, and a journal placed by order alone (Kafka) tells removed from reordered', (t) => {
  const encoder = new EntryEncoder();
  const records = makeRecords(0, 50);
  const [whole] = encoder.encode(records, genesisHead(S));
  const parts = encoder.encode(records, genesisHead(S), 1_500);
  t.true(parts.length > 3, `${parts.length} entries`);
  t.true(parts.every((p) => p.bytes.length <= 1_500));
  t.is(parts[parts.length - 1]?.head.toString('hex'), whole?.head.toString('hex'), 'splitting an append does not change the chain');
  t.deepEqual(parts.map((p) => p.first), parts.map((_, i) => parts.slice(0, i).reduce((n, p) => n + p.count, 0)));
  const ordered = (entries: readonly EncodedEntry[]) => entries.map((e, i) => ({ where: `message ${i}`, bytes: e.bytes }));
  const intact = verifyEntries(S, ordered(parts), []);
  t.is(intact.problem, undefined, intact.detail);
  t.is(intact.records, 50);
  t.is(intact.entries, parts.length);

  const [a, b, c, d] = parts as [EncodedEntry, EncodedEntry, EncodedEntry, EncodedEntry];
  const swapped = verifyEntries(S, ordered([a, c, b, d]), []);
  t.deepEqual([swapped.problem, swapped.firstBadOffset], ['reordered', b.first], swapped.detail);
  const left = verifyEntries(S, ordered([a, c, d]), []);
  t.deepEqual([left.problem, left.firstBadOffset], ['removed', b.first], left.detail);
  const repeated = verifyEntries(S, ordered([a, b, a]), []);
  t.deepEqual([repeated.problem, repeated.firstBadOffset, repeated.records], ['reordered', 0, b.first + b.count], repeated.detail);

  const big = makeRecords(0, 1).map((r) => ({ ...r, event: { type: 'big', blob: 'x'.repeat(2_000) } }));
  t.throws(() => encoder.encode(big, genesisHead(S), 1_500), { instanceOf: RangeError, message: /more than a journal message may hold/ });
});
