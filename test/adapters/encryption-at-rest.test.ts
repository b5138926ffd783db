// Encryption at rest: the same data written to a plain and an encrypted store;
// only the plain file shows it. The encrypted store opens only with its key.
import test, { type ExecutionContext } from 'ava';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDataKey, DATA_KEY_ENV, KEY_CHECK_SUFFIX, loadDataKey } from '../../adapters/lmdb/data-key.js';
import { LmdbBlobStore } from '../../adapters/lmdb/lmdb-blob-store.js';
import { verifyJournal } from '../../adapters/lmdb/journal-chain.js';
import { LmdbStore, type LmdbStoreOptions } from '../../adapters/lmdb/lmdb-store.js';
import { ErrorCodes } from '../../runtime/errors.js';
import type { JournalRecord } from '../../runtime/journal.js';
import type { ShardSnapshot } from '../../runtime/snapshot-store.js';
import { tempDir } from '../helpers/fixtures.js';

const SHARD = 'ERCOT';
const NODE_ID = 'gpu-node-houston-7731';
const MODEL = 'llama-3-70b-instruct';

function records(): JournalRecord[] {
  return Array.from({ length: 40 }, (_, offset) => ({
    offset,
    atMs: 1_000 + offset,
    actorId: `node/${NODE_ID}`,
    kind: 'node',
    event: { type: 'telemetry', nodeId: NODE_ID, modelsLoaded: [MODEL], gpuUtilization: offset / 40 },
    state: 'online',
  }));
}

const snapshot: ShardSnapshot = {
  shardId: SHARD,
  offset: 39,
  atMs: 1_039,
  actors: [{ id: `node/${NODE_ID}`, kind: 'node', snapshot: { value: 'online', context: { modelsLoaded: [MODEL] } } }],
  behaviourState: { lastModel: MODEL },
};

async function writeStore(dir: string, options: LmdbStoreOptions = {}): Promise<void> {
  const store = new LmdbStore(dir, options);
  const journal = store.journal(SHARD);
  const all = records();
  for (let i = 0; i < all.length; i += 8) await journal.append(all.slice(i, i + 8));
  await store.save(snapshot);
  await store.putMeta('simulation', { firstNode: NODE_ID });
  await store.close();
}

function fileHolds(dir: string, text: string): boolean {
  return readFileSync(join(dir, LmdbStore.fileName)).includes(Buffer.from(text, 'utf8'));
}

function dataKeyError(t: ExecutionContext, fn: () => unknown, message: RegExp): void {
  const error = t.throws(fn);
  t.is((error as { code?: string } | undefined)?.code, ErrorCodes.DATA_KEY, error?.message);
  t.regex(error?.message ?? '', message);
}

test('with a key the file holds none of the plaintext a plain store shows, and reopening with the key reads it all back', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-enc-');
  try {
    const plainDir = join(dir, 'plain');
    const encryptedDir = join(dir, 'encrypted');
    const key = createDataKey();
    await writeStore(plainDir);
    await writeStore(encryptedDir, { encryptionKey: key });
    for (const text of [NODE_ID, MODEL, `journal:${SHARD}`]) {
      t.true(fileHolds(plainDir, text), `the plain store shows '${text}'`);
      t.false(fileHolds(encryptedDir, text), `the encrypted store hides '${text}'`);
    }

    const store = new LmdbStore(encryptedDir, { encryptionKey: key });
    t.true(store.encrypted);
    t.deepEqual([...store.journal(SHARD).read()], records());
    t.deepEqual(store.latest(SHARD), snapshot);
    t.deepEqual(store.shardIds(), [SHARD]);
    t.deepEqual(store.getMeta('simulation'), { firstNode: NODE_ID });
    await store.journal(SHARD).append([{ ...(records()[0] as JournalRecord), offset: 40 }]);
    await store.close();

    const verified = await verifyJournal(encryptedDir, { encryptionKey: key });
    t.true(verified.ok);
    t.is(verified.shards[0]?.records, 41);
  } finally {
    cleanup();
  }
});

test('an encrypted store without its key or with a wrong key, and a plain store with a key, fail with ARC_ERR_DATA_KEY', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-enc-');
  try {
    const encryptedDir = join(dir, 'encrypted');
    const plainDir = join(dir, 'plain');
    const key = createDataKey();
    await writeStore(encryptedDir, { encryptionKey: key });
    await writeStore(plainDir);
    const before = readFileSync(join(encryptedDir, LmdbStore.fileName));

    dataKeyError(t, () => new LmdbStore(encryptedDir), /is encrypted: give its data key/);
    dataKeyError(t, () => new LmdbStore(encryptedDir, { readOnly: true }), /is encrypted/);
    dataKeyError(t, () => new LmdbStore(encryptedDir, { encryptionKey: createDataKey() }), /cannot be read with this data key/);
    dataKeyError(t, () => new LmdbStore(plainDir, { encryptionKey: key }), /is not encrypted/);
    dataKeyError(t, () => new LmdbStore(encryptedDir, { encryptionKey: key.subarray(0, 16) }), /32 bytes/);
    await t.throwsAsync(() => verifyJournal(encryptedDir), { code: ErrorCodes.DATA_KEY });
    t.deepEqual(readFileSync(join(encryptedDir, LmdbStore.fileName)), before, 'failed opens changed nothing in the file');

    // The right key still works after the failed attempts in the same process.
    const store = new LmdbStore(encryptedDir, { encryptionKey: key });
    t.deepEqual([...store.journal(SHARD).read()], records());
    await store.close();
  } finally {
    cleanup();
  }
});

test('loadDataKey reads a hex or raw key file or ARCNET_DATA_KEY, and refuses world-readable files and wrong lengths', (t) => {
  const { dir, cleanup } = tempDir('arcnet-key-');
  try {
    const key = createDataKey();
    t.is(key.length, 32);
    t.notDeepEqual(createDataKey(), key, 'keys are random');

    const hexFile = join(dir, 'hex.key');
    writeFileSync(hexFile, `${key.toString('hex')}\n`, { mode: 0o600 });
    t.deepEqual(loadDataKey({ file: hexFile }), key);
    const rawFile = join(dir, 'raw.key');
    writeFileSync(rawFile, key, { mode: 0o600 });
    t.deepEqual(loadDataKey({ file: rawFile }), key);
    t.deepEqual(loadDataKey({ env: { [DATA_KEY_ENV]: key.toString('hex') } }), key);
    t.deepEqual(loadDataKey({ file: hexFile, env: { [DATA_KEY_ENV]: createDataKey().toString('hex') } }), key, 'the file wins over the environment');
    t.is(loadDataKey({ env: {} }), undefined);
    t.is(loadDataKey(), undefined);

    const open = join(dir, 'open.key');
    writeFileSync(open, key.toString('hex'));
    chmodSync(open, 0o644);
    dataKeyError(t, () => loadDataKey({ file: open }), /readable or writable by every user \(mode 644\): run chmod 600/);
    const short = join(dir, 'short.key');
    writeFileSync(short, 'abcd', { mode: 0o600 });
    dataKeyError(t, () => loadDataKey({ file: short }), /must hold 64 hex characters or exactly 32 raw bytes/);
    dataKeyError(t, () => loadDataKey({ env: { [DATA_KEY_ENV]: 'abcd' } }), /ARCNET_DATA_KEY must be 64 hex characters/);
    dataKeyError(t, () => loadDataKey({ env: { [DATA_KEY_ENV]: 'z'.repeat(64) } }), /must be 64 hex characters/);
    dataKeyError(t, () => loadDataKey({ file: join(dir, 'missing.key') }), /cannot read the data key file/);
  } finally {
    cleanup();
  }
});

test('a wrong key is told by the key check beside the file, before LMDB reads a page; a store without a check gets one on its next open', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-enc-');
  try {
    const key = createDataKey();
    await writeStore(dir, { encryptionKey: key });
    const checkFile = join(dir, `${LmdbStore.fileName}${KEY_CHECK_SUFFIX}`);
    t.true(existsSync(checkFile), 'an encrypted store is created with its key check');
    t.false(readFileSync(checkFile, 'latin1').includes(key.toString('hex')), 'the check does not hold the key');
    // lmdb-js has no authenticated cipher: a wrong key used to walk garbage pages and, now and then, crash the
    // process (SIGSEGV). With the check nothing is read: many wrong keys in a row, and the process stands.
    for (let i = 0; i < 200; i++) dataKeyError(t, () => new LmdbStore(dir, { encryptionKey: createDataKey() }), /cannot be read with this data key/);

    // A store made before key checks existed: opened with its key, it gains one.
    rmSync(checkFile);
    const store = new LmdbStore(dir, { encryptionKey: key });
    t.deepEqual([...store.journal(SHARD).read()], records());
    await store.close();
    t.true(existsSync(checkFile));
    dataKeyError(t, () => new LmdbStore(dir, { encryptionKey: createDataKey() }), /cannot be read with this data key/);
    // A read-only open of a store without a check writes nothing.
    rmSync(checkFile);
    const reader = new LmdbStore(dir, { encryptionKey: key, readOnly: true });
    await reader.close();
    t.false(existsSync(checkFile));
  } finally {
    cleanup();
  }
});

test('the blob store beside the journal refuses a missing, wrong or unexpected key with ARC_ERR_DATA_KEY', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-enc-');
  try {
    const key = createDataKey();
    const encryptedDir = join(dir, 'encrypted');
    const plainDir = join(dir, 'plain');
    const blobs = new LmdbBlobStore(encryptedDir, { encryptionKey: key });
    const sha = await blobs.put(Buffer.from(MODEL));
    await blobs.close();
    await new LmdbBlobStore(plainDir).close();

    dataKeyError(t, () => new LmdbBlobStore(encryptedDir), /is encrypted/);
    dataKeyError(t, () => new LmdbBlobStore(encryptedDir, { encryptionKey: createDataKey() }), /cannot be read with this data key/);
    dataKeyError(t, () => new LmdbBlobStore(plainDir, { encryptionKey: key }), /is not encrypted/);
    const again = new LmdbBlobStore(encryptedDir, { encryptionKey: key });
    t.deepEqual(Buffer.from((await again.get(sha)) ?? []), Buffer.from(MODEL));
    await again.close();
  } finally {
    cleanup();
  }
});
