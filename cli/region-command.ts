import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { RegionInput } from '../actors/region-io.js';
import { createRegionProcess, type JournalOptions, type RegionProcess } from '../app/region-process.js';
import type { SecurityOptions } from '../app/region-security.js';
import type { Role } from '../app/role.js';
import { realScheduler } from '../runtime/clock.js';
import { Prng } from '../runtime/random.js';
import { defaultFaults, noFaults, SimFleet } from '../simulations/fleet.js';
import { defaultTrainingFaults, demoJob, noTrainingFaults, SimTrainingFleet } from '../simulations/fleet-training.js';
import { SimWorkload } from '../simulations/workload.js';

/** How often the simulated fleet's demo starts a federated job in each geozone (wall time). */
const DEMO_JOB_EVERY_MS = 120_000;

export interface RegionCommandOptions {
  /** What the process runs (default: the region; `arcnet central` passes the orchestrator's role). */
  readonly role?: Role | undefined;
  readonly journal: JournalOptions;
  readonly geozones: readonly string[];
  readonly simNodes: number;
  readonly ratePerSec: number;
  readonly seed: number;
  readonly faults: boolean;
  readonly statusEveryMs: number;
  readonly effectsLog?: string | undefined;
  /** Stop by itself after this long (wall clock); runs until SIGTERM/SIGINT otherwise. */
  readonly runForMs?: number | undefined;
  readonly logger: Logger;
  readonly port?: number | undefined;
  readonly security: SecurityOptions;
  readonly otlpEndpoint?: string | undefined;
}

/**
 * `arcnet region`: the region process (app/region-process.ts) on the journal the
 * flags name, with an optional simulated fleet and workload that speak the
 * seed's wire formats to it, a status line, and the signals that stop it. It
 * resolves with the final JSON line (state hash included) and the exit code.
 */
export async function runRegion(options: RegionCommandOptions): Promise<{ line: Record<string, unknown>; exitCode: number }> {
  const log = options.logger;
  const region = await createRegionProcess({
    role: options.role,
    geozones: options.geozones,
    journal: options.journal,
    port: options.port,
    security: options.security,
    otlpEndpoint: options.otlpEndpoint,
    effectsLog: options.effectsLog,
    logger: log,
  });
  let exitCode = 0;
  let stopRequested: ((reason: string) => void) | undefined;
  const stopSignal = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  const requestStop = (reason: string): void => stopRequested?.(reason);
  region.onFatal(() => {
    exitCode = 1;
    requestStop('shard-failure');
  });
  const onSignal = (signal: NodeJS.Signals): void => requestStop(signal);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const cancelRunFor = options.runForMs === undefined ? undefined : realScheduler.after(options.runForMs, () => requestStop('run-for elapsed'));
  const statusTimer = setInterval(() => process.stderr.write(`${region.statusLine()}\n`), options.statusEveryMs);

  const starting = region.start().then(
    () => true,
    (error: unknown) => {
      log.fatal({ err: error }, 'start failed');
      exitCode = 1;
      requestStop('start-failure');
      return false;
    },
  );
  const started = await Promise.race([starting, stopSignal.then(() => false)]);
  const fleet = started ? attachSimulatedFleet(region, options) : undefined;
  process.stderr.write(`${region.statusLine()}\n`);

  const reason = await stopSignal;
  clearInterval(statusTimer);
  cancelRunFor?.();
  fleet?.stop();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  try {
    const line = await region.stop(reason);
    return { line, exitCode };
  } catch (error) {
    log.fatal({ err: error }, 'stopping failed');
    const line = (error as { line?: Record<string, unknown> }).line ?? { stoppedBy: reason, error: String(error) };
    return { line, exitCode: 1 };
  }
}

/**
 * A seeded simulated fleet and workload beside the region: their inputs go onto
 * the region's input topics as the seed's wire messages (the bus or Kafka), as
 * real agents' would, and the fleet acts on the dispatches the region releases.
 */
function attachSimulatedFleet(region: RegionProcess, options: RegionCommandOptions): { stop: () => void } | undefined {
  if (options.simNodes <= 0) return undefined;
  const clock = region.clock;
  const cancelTimers = new Set<() => void>();
  let stopped = false;
  const submit = (input: RegionInput): void => {
    if (stopped) return;
    try {
      region.publish(input);
    } catch (error) {
      options.logger.warn({ err: error }, 'simulated input refused');
    }
  };
  const hooks = {
    schedule: (atMs: number, fn: () => void) => {
      const cancel = realScheduler.after(Math.max(0, atMs - clock.nowMs()), () => {
        cancelTimers.delete(cancel);
        if (!stopped) fn();
      });
      cancelTimers.add(cancel);
    },
    submit,
  };
  const prng = new Prng(options.seed);
  const fleet = new SimFleet(prng.fork(), { nodes: options.simNodes, geozones: options.geozones, faults: options.faults ? defaultFaults : noFaults }, hooks);
  // Request ids carry the start time so a restarted process never reuses one.
  const workload = new SimWorkload(
    prng.fork(),
    { ratePerSec: options.ratePerSec, geozones: options.geozones, cancelRate: options.faults ? 0.005 : 0, idPrefix: `req-${clock.nowMs().toString(36)}-` },
    hooks,
  );
  region.onDispatch((d) => fleet.onDispatch({ requestId: d.requestId, nodeId: d.nodeId, modelId: d.modelId, atMs: clock.nowMs() }));
  // Federated training: the fleet trains the digits when asked, and a demo job starts in each geozone now and then.
  const trainers = new SimTrainingFleet(prng.fork(), options.faults ? defaultTrainingFaults : noTrainingFaults, {
    schedule: hooks.schedule,
    isSilent: (nodeId, atMs) => fleet.isSilent(nodeId, atMs),
    submitUpdate: (body) => {
      if (!stopped) region.trainingUpdate(body).catch((error: unknown) => options.logger.debug({ err: error }, 'simulated training update refused'));
    },
  });
  region.onTrain((task) => trainers.onTrain(task, clock.nowMs()));
  const checkpoints = pathToFileURL(join(options.journal.kind === 'lmdb' ? options.journal.dataDir : tmpdir(), 'checkpoints')).href;
  let demoJobs = 0;
  const startDemoJobs = (atMs: number): void => {
    demoJobs++;
    for (const geozone of options.geozones) submit({ type: 'training.job', job: demoJob(geozone, `demo-${geozone}-${clock.nowMs().toString(36)}-${demoJobs}`, demoJobs, checkpoints) });
    hooks.schedule(atMs + DEMO_JOB_EVERY_MS, () => startDemoJobs(atMs + DEMO_JOB_EVERY_MS));
  };
  // After the first telemetry round, so there are nodes to choose from.
  hooks.schedule(clock.nowMs() + 15_000, () => startDemoJobs(clock.nowMs()));
  fleet.start(clock.nowMs());
  workload.start(clock.nowMs());
  return {
    stop: () => {
      stopped = true;
      fleet.stop();
      workload.stop();
      for (const cancel of cancelTimers) cancel();
    },
  };
}
