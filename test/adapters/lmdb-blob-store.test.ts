import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { LmdbBlobStore } from '../../adapters/lmdb/lmdb-blob-store.js';
import { MemoryBlobStore, sha256Hex, type BlobStore } from '../../runtime/blob-store.js';

async function contract(t: import('ava').ExecutionContext, store: BlobStore): Promise<void> {
  const bytes = new Uint8Array([1, 2, 3, 250]);
  const sha = await store.put(bytes);
  t.is(sha, sha256Hex(bytes));
  t.true(await store.has(sha));
  t.deepEqual([...((await store.get(sha)) ?? [])], [1, 2, 3, 250]);
  t.is(await store.put(Uint8Array.from(bytes)), sha, 'the same bytes, the same key');
  t.is(await store.get('0'.repeat(64)), undefined);
  t.false(await store.has('not-a-hash'));
}

test('the LMDB blob store keeps bytes by their SHA-256, across a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'arcnet-blobs-'));
  const store = new LmdbBlobStore(dir);
  await contract(t, store);
  const sha = await store.put(new Uint8Array(4096).fill(7));
  await store.close();
  const reopened = new LmdbBlobStore(dir);
  t.deepEqual(await reopened.get(sha), new Uint8Array(4096).fill(7));
  await reopened.close();
});

test('the in-memory blob store keeps the same contract and its byte limit', async (t) => {
  await contract(t, new MemoryBlobStore());
  const small = new MemoryBlobStore(8);
  await small.put(new Uint8Array(8));
  await t.throwsAsync(small.put(new Uint8Array(1).fill(1)), { message: /limit is 8/ });
});
