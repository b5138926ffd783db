import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { readRcCredentials } from '../../adapters/hpc/hpc-services.js';
import { RcClient } from '../../adapters/rclone/rc-client.js';
import { RcloneDataMover } from '../../adapters/rclone/rclone-data-mover.js';
import { isTerminalTransferState, transferDestination, type DataMover, type TransferRequest, type TransferStatus } from '../../runtime/data-mover.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { hpcFacts, hpcServices, rcloneTest } from '../helpers/hpc-services.js';

const run = `${process.pid.toString(36)}${Math.floor(performance.timeOrigin).toString(36)}`;
const root = mkdtempSync(join(tmpdir(), 'arcnet-rclone-'));
const WAIT_MS = 120_000;
/**
 * rcd's bandwidth limit while these tests run, so a copy of a few hundred MB takes seconds and its
 * progress and a cancel mid-way can be observed (local disks copy faster than anything can poll).
 * The limit is rcd-wide; the previous one is put back afterwards.
 */
const TEST_BWLIMIT = '60M';

/** A dataset folder: `big` files of `bigBytes` random bytes and 40 small ones in a sub-folder. */
function makeDataset(name: string, big: number, bigBytes: number): { dir: string; bytes: number; files: string[] } {
  const dir = join(root, name);
  mkdirSync(join(dir, 'shards'), { recursive: true });
  const chunk = 8 * 1024 * 1024;
  for (let i = 0; i < big; i++) {
    const fd = openSync(join(dir, `part-${i}.bin`), 'w');
    for (let written = 0; written < bigBytes; written += chunk) writeSync(fd, randomBytes(Math.min(chunk, bigBytes - written)));
    closeSync(fd);
  }
  for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'shards', `s${i}.json`), JSON.stringify({ shard: i, pad: randomBytes(2000).toString('hex') }));
  const files = listFiles(dir);
  return { dir, bytes: files.reduce((sum, f) => sum + statSync(join(dir, f)).size, 0), files };
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

function rc(): RcClient {
  return new RcClient({ url: hpcFacts.rcUrl, credentials: hpcFacts.rcCredentialsFile === null ? undefined : readRcCredentials(hpcFacts.rcCredentialsFile) });
}

async function withBandwidthLimit<T>(fn: () => Promise<T>): Promise<T> {
  const before = await rc().call<{ rate: string }>('core/bwlimit');
  await rc().call('core/bwlimit', { rate: TEST_BWLIMIT });
  try {
    return await fn();
  } finally {
    await rc().call('core/bwlimit', { rate: before.rate });
  }
}

async function pollUntil(mover: DataMover, id: string, done: (s: TransferStatus) => boolean, t: ExecutionContext, seen: TransferStatus[] = []): Promise<TransferStatus> {
  const deadline = performance.now() + WAIT_MS;
  while (performance.now() < deadline) {
    const status = await mover.status(id);
    seen.push(status);
    if (done(status)) return status;
    await sleep(100);
  }
  t.fail(`transfer ${id} not done after ${WAIT_MS} ms: ${JSON.stringify(seen.at(-1))}`);
  throw new Error('timed out');
}

rcloneTest('a generated dataset of 300 MB is copied with progress rising, verified by checksum, and found again by key', async (t) => {
  const dataset = makeDataset(`ds-${run}`, 3, 100 * 1024 * 1024);
  const request: TransferRequest = { key: `arcnet-test-${run}-copy`, sourceUri: `file://${dataset.dir}`, destinationUri: join(root, 'staging') };
  const mover = hpcServices().dataMover;
  const seen: TransferStatus[] = [];
  const final = await withBandwidthLimit(async () => {
    const started = await mover.start(request);
    t.is(started.key, request.key);
    t.is(started.state, 'running');
    return pollUntil(mover, started.transferId, (s) => isTerminalTransferState(s.state), t, seen);
  });
  t.is(final.state, 'succeeded', JSON.stringify(final));
  t.is(final.bytesDone, dataset.bytes);
  t.is(final.bytesTotal, dataset.bytes);
  t.is(final.error, null);
  const running = seen.filter((s) => s.state === 'running').map((s) => s.bytesDone);
  t.true(new Set(running.filter((b) => b > 0 && b < dataset.bytes)).size >= 3, `progress seen: ${running.join(',')}`);
  for (let i = 1; i < running.length; i++) t.true((running[i] ?? 0) >= (running[i - 1] ?? 0), `progress went back: ${running.join(',')}`);

  const destination = transferDestination(request);
  t.deepEqual(listFiles(destination), dataset.files);
  const verified = await mover.verify(request);
  t.true(verified.ok, verified.detail);
  t.regex(verified.detail, /^43 files, \d+ bytes, sha256 checksums identical$/);

  // A restarted caller (a new adapter) finds the finished transfer by its key, and starting it again
  // returns that same transfer instead of copying anew.
  const restarted = hpcServices().dataMover;
  const found = await restarted.find(request.key);
  t.is(found?.transferId, final.transferId);
  t.is(found?.state, 'succeeded');
  t.is((await restarted.start(request)).transferId, final.transferId);

  // One byte changed at the destination (same size, same name): verify names the file.
  const fd = openSync(join(destination, 'part-1.bin'), 'r+');
  writeSync(fd, Buffer.from([0x00, 0x01, 0x02, 0x03]), 0, 4, 1234);
  closeSync(fd);
  const corrupted = await mover.verify(request);
  t.false(corrupted.ok);
  t.is(corrupted.detail, '1 difference(s): part-1.bin: sha256 differs');
  rmSync(dataset.dir, { recursive: true, force: true });
  rmSync(destination, { recursive: true, force: true });
});

rcloneTest('cancel mid-transfer; a new adapter finds the live copy by key; started again, the destination ends identical with no duplicates', async (t) => {
  const dataset = makeDataset(`dc-${run}`, 3, 80 * 1024 * 1024);
  const request: TransferRequest = { key: `arcnet-test-${run}-cancel`, sourceUri: dataset.dir, destinationUri: `file://${join(root, 'staging')}` };
  const destination = join(root, 'staging', request.key);
  await withBandwidthLimit(async () => {
    const mover = hpcServices().dataMover;
    const started = await mover.start(request);
    const midway = await pollUntil(mover, started.transferId, (s) => s.bytesDone > 0 || s.state !== 'running', t);
    t.is(midway.state, 'running');

    // The caller restarts: a new adapter finds the live copy by its key and does not start a second.
    const restarted = hpcServices().dataMover;
    const found = await restarted.find(request.key);
    t.is(found?.transferId, started.transferId);
    t.is(found?.state, 'running');
    t.is((await restarted.start(request)).transferId, started.transferId);

    await restarted.cancel(started.transferId);
    const cancelled = await mover.status(started.transferId);
    t.is(cancelled.state, 'cancelled');
    t.truthy(cancelled.error);
    t.true(cancelled.bytesDone < dataset.bytes);
    const partial = await mover.verify(request);
    t.false(partial.ok, partial.detail);

    // Started again: a new copy (the cancelled one is not resumed in place) that skips what is complete.
    const again = await restarted.start(request);
    t.not(again.transferId, started.transferId);
    const final = await pollUntil(restarted, again.transferId, (s) => isTerminalTransferState(s.state), t);
    t.is(final.state, 'succeeded', JSON.stringify(final));
  });
  t.deepEqual(listFiles(destination), dataset.files);
  const verified = await hpcServices().dataMover.verify(request);
  t.true(verified.ok, verified.detail);
  rmSync(dataset.dir, { recursive: true, force: true });
  rmSync(destination, { recursive: true, force: true });
});

rcloneTest('unknown transfers, refused credentials and an unreachable rcd are coded errors that say what to do', async (t) => {
  const mover = hpcServices().dataMover;
  const unknown = await t.throwsAsync(mover.status(`999999999:arcnet-test-${run}-none`), { instanceOf: ArcError });
  t.is(unknown?.code, ErrorCodes.UNKNOWN_QUEUE_ITEM);
  t.is(await mover.find(`arcnet-test-${run}-never-started`), undefined);
  const badId = await t.throwsAsync(mover.status('not-an-id'), { instanceOf: ArcError });
  t.is(badId?.code, ErrorCodes.VALIDATION);
  const badUri = await t.throwsAsync(mover.start({ key: 'k', sourceUri: 'https://example.org/data', destinationUri: root }), { instanceOf: ArcError });
  t.is(badUri?.code, ErrorCodes.VALIDATION);

  const wrongPassword = new RcloneDataMover({ url: hpcFacts.rcUrl, credentials: { user: 'arcnet', password: 'wrong' } });
  const refused = await t.throwsAsync(wrongPassword.find('k'), { instanceOf: ArcError });
  t.is(refused?.code, ErrorCodes.DATA_MOVER);
  t.regex(refused?.message ?? '', /credentials/);

  const nowhere = new RcloneDataMover({ url: 'http://127.0.0.1:1/', requestTimeoutMs: 5_000 });
  const down = await t.throwsAsync(nowhere.find('k'), { instanceOf: ArcError });
  t.is(down?.code, ErrorCodes.DATA_MOVER);
  t.regex(down?.message ?? '', /npm run hpc:start/);
});
