import test from 'ava';
import { copyFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { verifyJournal } from '../../adapters/lmdb/journal-chain.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { replayJournal } from '../../simulations/replay.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * A journal written by an earlier version (entry format J1, JSON record lines)
 * must still replay to the hashes recorded when it was written: data folders
 * outlive the code that wrote them. The fixture is copied first, since opening
 * a store may write to it.
 */
const fixtureDir = fileURLToPath(new URL('../../../test/fixtures/journal-j1/', import.meta.url));

interface Expected {
  readonly stateHash: string;
  readonly journalDigest: string;
  readonly events: number;
  readonly requests: number;
  readonly completed: number;
  readonly shards: Record<string, { records: number; head: string; snapshotOffsets: number[] }>;
}

const expected = JSON.parse(readFileSync(`${fixtureDir}expected.json`, 'utf8')) as Expected;

function copyFixture(): { dir: string; cleanup: () => void } {
  const temp = tempDir();
  copyFileSync(`${fixtureDir}${LmdbStore.fileName}`, `${temp.dir}/${LmdbStore.fileName}`);
  return temp;
}

test('a J1 journal replays, record by record, to the state hash and digest recorded when it was written', async (t) => {
  const { dir, cleanup } = copyFixture();
  try {
    const full = await replayJournal(dir);
    t.is(full.stateHash, expected.stateHash);
    t.is(full.journalDigest, expected.journalDigest);
    t.is(full.replayedRecords, expected.events);
    t.is(full.requests, expected.requests);
    t.is(full.completed, expected.completed);
    t.is(full.invariantViolations, 0);

    const recovered = await replayJournal(dir, { useSnapshots: true, skipEphemeral: true });
    t.true(recovered.fromSnapshot);
    t.true(recovered.replayedRecords > 0 && recovered.replayedRecords < expected.events, 'a snapshot and a tail');
    t.is(recovered.stateHash, expected.stateHash);
  } finally {
    cleanup();
  }
});

test('a J1 journal still verifies: the same chain heads and snapshot anchors', async (t) => {
  const { dir, cleanup } = copyFixture();
  try {
    const verification = await verifyJournal(dir);
    t.true(verification.ok, JSON.stringify(verification.shards));
    const store = new LmdbStore(dir);
    try {
      t.deepEqual(store.shardIds(), Object.keys(expected.shards).sort());
      for (const [shardId, shard] of Object.entries(expected.shards)) {
        t.is(store.journal(shardId).nextOffset(), shard.records, shardId);
        t.is(store.journal(shardId).head(), shard.head, shardId);
        t.deepEqual(store.offsets(shardId), shard.snapshotOffsets, shardId);
      }
    } finally {
      await store.close();
    }
  } finally {
    cleanup();
  }
});
