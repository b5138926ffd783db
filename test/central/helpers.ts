import { createHash } from 'node:crypto';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CentralBehaviour, defaultCentralConfig, type CentralConfig } from '../../actors/central/central-behaviour.js';
import { CENTRAL_SHARD } from '../../actors/central/central-io.js';
import { createRegion } from '../../actors/region.js';
import { FsDataMover } from '../../adapters/local-hpc/fs-data-mover.js';
import { ProcessBatchQueue } from '../../adapters/local-hpc/process-batch-queue.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { centralRole, DEFAULT_TRAIN_COMMAND } from '../../app/central-role.js';
import { createRegionProcess, type RegionProcess } from '../../app/region-process.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';

export const quiet = pino({ level: 'silent' });

/** A dataset of random bytes (not compressible, so nothing short-cuts the copy). */
export function makeDataset(path: string, bytes: number): void {
  const chunk = Buffer.alloc(1024 * 1024);
  const parts: Buffer[] = [];
  for (let done = 0; done < bytes; done += chunk.length) {
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, i);
    parts.push(Buffer.from(chunk.subarray(0, Math.min(chunk.length, bytes - done))));
  }
  writeFileSync(path, Buffer.concat(parts));
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface EmbeddedCentral {
  readonly process: RegionProcess;
  readonly origin: string;
  readonly queue: ProcessBatchQueue;
  readonly mover: FsDataMover;
  readonly released: import('../../actors/region-io.js').RegionEffect[];
}

/** `arcnet central --data DIR` as the library assembles it, with the local data mover and batch queue in `dir`. */
export async function startEmbeddedCentral(
  dir: string,
  options: { bytesPerSec?: number; trainCommand?: string; config?: Partial<CentralConfig>; apiKeysFile?: string } = {},
): Promise<EmbeddedCentral> {
  const mover = new FsDataMover({ stateDir: join(dir, 'hpc', 'transfers'), bytesPerSec: options.bytesPerSec });
  const queue = new ProcessBatchQueue({ stateDir: join(dir, 'hpc', 'queue') });
  const role = centralRole({
    config: { stagingUri: `file://${join(dir, 'hpc', 'staging')}`, ...options.config },
    mover,
    queue,
    trainCommand: ['/bin/sh', '-c', options.trainCommand ?? DEFAULT_TRAIN_COMMAND],
    jobWorkDir: join(dir, 'hpc'),
    pollEveryMs: 100,
  });
  const process = await createRegionProcess({
    role,
    geozones: [],
    journal: { kind: 'lmdb', dataDir: join(dir, 'data') },
    port: 0,
    security: { rateLimitPerSec: 10_000, apiKeysFile: options.apiKeysFile },
    logger: quiet,
  });
  const released: EmbeddedCentral['released'] = [];
  process.onReleased((effects) => released.push(...effects));
  await process.start();
  return { process, origin: process.address as string, queue, mover, released };
}

/** The orchestrator's state hash replayed from its journal alone (no snapshot). */
export async function replayedHash(dataDir: string, config: Partial<CentralConfig> = {}): Promise<string> {
  const store = new LmdbStore(dataDir);
  try {
    const region = createRegion({
      geozones: [CENTRAL_SHARD],
      store,
      clock: new ManualClock(0),
      scheduler: realScheduler,
      deliverForwards: false,
      behaviour: (id) => (id === CENTRAL_SHARD ? new CentralBehaviour({ ...defaultCentralConfig, ...config }) : undefined),
      onEffects: () => undefined,
    });
    region.supervisor.recover(false);
    return region.supervisor.stateHash();
  } finally {
    await store.close();
  }
}

/** Polls until `check` returns a value (generous timeout: machines are noisy). */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const jobBody = (jobId: string, datasetPath: string, checkpointPath: string, overrides: Record<string, unknown> = {}): string =>
  JSON.stringify({
    'job-id': jobId,
    'dataset-uri': `file://${datasetPath}`,
    'dataset-size-gb': 0.01,
    'estimated-flops': 2e18,
    'checkpoint-uri': `file://${checkpointPath}`,
    urgency: 'normal',
    ...overrides,
  });
