import { rmSync } from 'node:fs';
import type { Region } from '../actors/region.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { runSimulation } from '../simulations/run-simulation.js';
import { percentile, residentSplitMb, round } from './measure.js';

/**
 * One simulation in a process of its own, for the scale and soak benchmarks: a
 * fresh process per fleet size, so one run's heap neither slows nor inflates the
 * next one's figures (resident memory is the process's). Prints one JSON line per
 * sample interval and one with the result. Run by bench/scale.ts and
 * bench/soak.ts as `node --expose-gc dist/bench/scale-run.js '<ScaleRunSpec>'`.
 */
export interface ScaleRunSpec {
  readonly seed: number;
  readonly nodes: number;
  readonly geozones: readonly string[];
  readonly ratePerSec: number;
  readonly faults: boolean;
  /** Simulated time to run. */
  readonly durationMs: number;
  /** Simulated time between samples. */
  readonly sampleEveryMs: number;
  /** Stop (exit) once this much wall time has passed, at the first sample after it (the soak's length). */
  readonly wallBudgetMs?: number;
  readonly journalDir: string;
}

/** One sample interval: what the region did in it and what the process held at its end. */
export interface ScaleSample {
  readonly type: 'sample';
  /** Simulated time since the start. */
  readonly simMs: number;
  readonly wallMs: number;
  /** Journal records in the interval per wall second. */
  readonly eventsPerSec: number;
  /**
   * Journal records in the interval per second of this process's CPU time (user +
   * system, all its threads): the cost per event, which a machine shared with other
   * work disturbs far less than wall time.
   */
  readonly eventsPerCpuSec: number;
  /** Simulated ms per wall ms in the interval. */
  readonly speed: number;
  readonly events: number;
  /** Routing decisions (RoutingIndex.choose) in the interval and their latency percentiles. */
  readonly decisions: number;
  readonly routeP50Us: number;
  readonly routeP99Us: number;
  /** Whole inference inputs in the shard (spawn, route, the node's and the reservation's steps, effects), journal not included. */
  readonly inferenceP99Us: number;
  readonly rssMb: number;
  /** Of rssMb: the process's own (anonymous) pages and mapped file pages (the LMDB journal), where the OS says. */
  readonly rssAnonMb?: number;
  readonly rssFileMb?: number;
  readonly heapUsedMb: number;
}

export interface ScaleResult {
  readonly type: 'result';
  readonly nodes: number;
  readonly ratePerSec: number;
  readonly events: number;
  readonly wallMs: number;
  /** CPU time of the process over the whole run (user + system). */
  readonly cpuMs: number;
  readonly simMs: number;
  readonly stateHash: string;
  readonly invariantViolations: number;
  /** Peak resident set of the process over the run (includes the end: snapshot, hash, journal check). */
  readonly maxRssMb: number;
}

/** Latencies of one interval, in a fixed buffer (every limit explicit): beyond it, later samples are dropped. */
class Latencies {
  private readonly samples = new Float64Array(4_000_000);
  private count = 0;

  add(us: number): void {
    if (this.count < this.samples.length) this.samples[this.count++] = us;
  }

  take(): { count: number; p50: number; p99: number } {
    const seen = Array.from(this.samples.subarray(0, this.count));
    this.count = 0;
    return { count: seen.length, p50: round(percentile(seen, 50), 3), p99: round(percentile(seen, 99), 3) };
  }
}

const MB = 1024 * 1024;

/** Times each routing decision and each inference input of every shard of the region. */
function watch(region: Region, decisions: Latencies, inferences: Latencies): void {
  for (const behaviour of region.behaviours.values()) {
    const index = behaviour.index;
    const choose = index.choose.bind(index);
    index.choose = (modelId, excluded) => {
      const start = process.hrtime.bigint();
      const choice = choose(modelId, excluded);
      decisions.add(Number(process.hrtime.bigint() - start) / 1000);
      return choice;
    };
    const handle = behaviour.handle.bind(behaviour);
    behaviour.handle = (input, ctx) => {
      if (input.type !== 'inference') return handle(input, ctx);
      const start = process.hrtime.bigint();
      handle(input, ctx);
      inferences.add(Number(process.hrtime.bigint() - start) / 1000);
    };
  }
}

export async function scaleRun(spec: ScaleRunSpec, print: (line: ScaleSample | ScaleResult) => void): Promise<ScaleResult> {
  const decisions = new Latencies();
  const inferences = new Latencies();
  const wallStart = monotonicNowMs();
  let last = { wallMs: wallStart, events: 0, fraction: 0, cpu: process.cpuUsage() };
  const result = await runSimulation({
    seed: spec.seed,
    nodes: spec.nodes,
    geozones: spec.geozones,
    durationMs: spec.durationMs,
    ratePerSec: spec.ratePerSec,
    faults: spec.faults,
    journalDir: spec.journalDir,
    finalSnapshot: true,
    progressEveryMs: spec.sampleEveryMs,
    onRegion: (region) => watch(region, decisions, inferences),
    onProgress: (fraction, stats) => {
      const now = monotonicNowMs();
      const wallMs = now - last.wallMs;
      const simMs = (fraction - last.fraction) * spec.durationMs;
      const route = decisions.take();
      const inference = inferences.take();
      const memory = process.memoryUsage();
      const split = residentSplitMb();
      const cpu = process.cpuUsage(last.cpu);
      const cpuSec = (cpu.user + cpu.system) / 1e6;
      print({
        type: 'sample',
        simMs: Math.round(fraction * spec.durationMs),
        wallMs: Math.round(now - wallStart),
        eventsPerSec: Math.round(((stats.events - last.events) / wallMs) * 1000),
        eventsPerCpuSec: Math.round((stats.events - last.events) / cpuSec),
        speed: round(simMs / wallMs, 3),
        events: stats.events - last.events,
        decisions: route.count,
        routeP50Us: route.p50,
        routeP99Us: route.p99,
        inferenceP99Us: inference.p99,
        rssMb: Math.round(memory.rss / MB),
        ...(split === undefined ? {} : { rssAnonMb: split.anonMb, rssFileMb: split.fileMb }),
        heapUsedMb: Math.round(memory.heapUsed / MB),
      });
      last = { wallMs: now, events: stats.events, fraction, cpu: process.cpuUsage() };
      if (spec.wallBudgetMs !== undefined && now - wallStart >= spec.wallBudgetMs) {
        // The soak's length is wall time: stop here; the journal folder is a scratch one.
        rmSync(spec.journalDir, { recursive: true, force: true });
        process.exit(0);
      }
    },
  });
  const done: ScaleResult = {
    type: 'result',
    nodes: spec.nodes,
    ratePerSec: spec.ratePerSec,
    events: result.events,
    wallMs: result.wallMs,
    cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
    simMs: spec.durationMs,
    stateHash: result.stateHash,
    invariantViolations: result.invariantViolations,
    maxRssMb: Math.round((process.resourceUsage().maxRSS * 1024) / MB),
  };
  print(done);
  return done;
}

if (process.argv[1]?.endsWith('scale-run.js') === true) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ScaleRunSpec;
  await scaleRun(spec, (line) => process.stdout.write(`${JSON.stringify(line)}\n`));
}
