import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseRegionalSummary, parseTrainingJob } from '../actors/central/training-wire.js';
import { effectToWire } from '../adapters/bus/topics.js';
import type { RegionalSummary } from '../actors/region-io.js';
import type { Role, RoleAttachment, RoleHost } from './role.js';

export interface DemoFeedOptions {
  /** Training jobs submitted per minute (0: none). */
  readonly jobsPerMinute: number;
  /** Seed of the job mix (which jobs are HPC-sized, their urgency and FLOPs). */
  readonly seed: number;
  /** Where the demo's datasets are written (a small pool, reused by every job). */
  readonly datasetDir: string;
  /** The batch queue's data mover copies folders (rclone) or single files (the local one). */
  readonly datasetShape: 'file' | 'folder';
  /** A region's HTTP API (GET /v1/summary) whose summaries feed the global view, when no bus carries them. */
  readonly summariesFrom?: string | undefined;
  /** How often the region's summaries are read. */
  readonly summaryEveryMs: number;
}

/** Datasets in the pool; every job reuses one of them, so the demo's disk use grows only by staged copies. */
const DATASET_POOL = 4;
const DATASET_BYTES = 1024 * 1024;
/** One summary answer is read at most this large (a region with many geozones stays well below). */
const MAX_SUMMARY_RESPONSE_BYTES = 1024 * 1024;
const SUMMARY_TIMEOUT_MS = 5_000;

/** A small deterministic generator (mulberry32): the same seed gives the same job mix. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The demo's workload for the central orchestrator (`arcnet central --sim-jobs`): a seeded mix of
 * training jobs, about two in five HPC-sized (FLOPs above 1e18, or critical) and the rest small
 * enough for federated training, submitted as if posted at the edge; and, with --summaries-from,
 * a region's summaries read over HTTP, standing in for arc.summary.regional when the region and
 * the orchestrator run embedded (no bus between them).
 */
export function withDemoFeed(role: Role, options: DemoFeedOptions): Role {
  const inner = role.attach?.bind(role);
  return {
    ...role,
    attach: (host) => {
      const attached: RoleAttachment | undefined = inner?.(host);
      const timers: (() => void)[] = [];
      if (options.jobsPerMinute > 0) timers.push(startJobs(host, options));
      if (options.summariesFrom !== undefined) timers.push(startSummaries(host, options.summariesFrom, options.summaryEveryMs));
      return {
        onEffects: (effects, shardId) => attached?.onEffects(effects, shardId),
        stop: async () => {
          for (const cancel of timers) cancel();
          await attached?.stop();
        },
      };
    },
  };
}

function datasetPool(options: DemoFeedOptions): string[] {
  mkdirSync(options.datasetDir, { recursive: true });
  const uris: string[] = [];
  for (let i = 0; i < DATASET_POOL; i++) {
    const path = join(options.datasetDir, `${options.datasetShape}-${i}`);
    if (!existsSync(path)) {
      // Random bytes: nothing compresses or short-cuts the copy.
      if (options.datasetShape === 'folder') {
        mkdirSync(path, { recursive: true });
        writeFileSync(join(path, 'shard-0.bin'), randomBytes(DATASET_BYTES / 2));
        writeFileSync(join(path, 'shard-1.bin'), randomBytes(DATASET_BYTES / 2));
      } else {
        writeFileSync(path, randomBytes(DATASET_BYTES));
      }
    }
    uris.push(pathToFileURL(path).href);
  }
  return uris;
}

function startJobs(host: RoleHost, options: DemoFeedOptions): () => void {
  const random = seeded(options.seed);
  const datasets = datasetPool(options);
  const checkpoints = join(options.datasetDir, '..', 'demo-checkpoints');
  // Job ids unique across runs on one data folder (its journal refuses a job id twice).
  const run = Math.floor(host.clock.nowMs()).toString(36);
  const everyMs = Math.max(1_000, Math.round(60_000 / options.jobsPerMinute));
  let n = 0;
  let cancel = (): void => undefined;
  const tick = (): void => {
    n++;
    const hpc = random() < 0.4;
    const critical = hpc && random() < 0.25;
    const jobId = `demo-${run}-${n}`;
    const raw = {
      'job-id': jobId,
      'dataset-uri': datasets[n % datasets.length] ?? '',
      'dataset-size-gb': (hpc ? Math.round(random() * 500 + 10) : Math.round(random() * 200 + 1)) / 10,
      'estimated-flops': hpc && !critical ? 2e18 + Math.floor(random() * 8) * 1e18 : 1e15 + Math.floor(random() * 900) * 1e15,
      'checkpoint-uri': pathToFileURL(join(checkpoints, `${jobId}.json`)).href,
      urgency: critical ? 'critical' : random() < 0.2 ? 'background' : 'normal',
    };
    try {
      // The edge's own schema: the demo's jobs are what a researcher could post.
      host.submit({ type: 'job.submit', job: parseTrainingJob(raw) });
    } catch (error) {
      host.log.warn({ err: error, jobId }, 'demo job not taken');
    }
    cancel = host.scheduler.after(everyMs, tick);
  };
  cancel = host.scheduler.after(everyMs, tick);
  return () => cancel();
}

function startSummaries(host: RoleHost, regionUrl: string, everyMs: number): () => void {
  const url = new URL('/v1/summary', regionUrl).href;
  let stopped = false;
  let cancel = (): void => undefined;
  let warned = false;
  const poll = async (): Promise<void> => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(SUMMARY_TIMEOUT_MS) });
      const text = await response.text();
      if (!response.ok || text.length > MAX_SUMMARY_RESPONSE_BYTES) throw new Error(`GET ${url}: HTTP ${response.status}, ${text.length} bytes`);
      const summaries = (JSON.parse(text) as { summaries?: RegionalSummary[] }).summaries ?? [];
      for (const summary of summaries) {
        // Through the wire format and its strict schema, exactly as arc.summary.regional would bring it.
        const wire = effectToWire({ type: 'summary', summary });
        if (wire !== undefined) host.submit({ type: 'summary.in', summary: parseRegionalSummary(wire.message) });
      }
      warned = false;
    } catch (error) {
      // The region may start after the orchestrator or stop before it: say so once, keep trying.
      if (!warned) host.log.warn({ err: error, url }, 'region summaries not read; retrying');
      warned = true;
    }
    if (!stopped) cancel = host.scheduler.after(everyMs, () => void poll());
  };
  cancel = host.scheduler.after(1_000, () => void poll());
  return () => {
    stopped = true;
    cancel();
  };
}
