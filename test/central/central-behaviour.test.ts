import test from 'ava';
import { CentralBehaviour, defaultCentralConfig, type CentralConfig } from '../../actors/central/central-behaviour.js';
import { CENTRAL_SHARD, type HpcObservation, type TrainingJob } from '../../actors/central/central-io.js';
import { hpcPendingWireSchema, parseTrainingJob } from '../../actors/central/training-wire.js';
import { federatedTaskSchema } from '../../actors/training-wire.js';
import { type ArcError, ErrorCodes } from '../../runtime/errors.js';
import { createRegion, type Region } from '../../actors/region.js';
import type { RegionalSummary, RegionEffect } from '../../actors/region-io.js';
import { effectToWire } from '../../adapters/bus/topics.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { SHARD_ACTOR_ID } from '../../runtime/journal.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * The orchestrator's shard on logical time (a ManualClock, LMDB journal):
 * classification with its journaled reason, federated placement by the global
 * view, and each alert detector fired by crafted RegionalSummary v1 inputs.
 */
const PERIOD_MS = 60_000;

interface Central {
  readonly region: Region;
  readonly clock: ManualClock;
  readonly store: LmdbStore;
  readonly effects: RegionEffect[];
  at(ms: number): void;
  settle(): Promise<void>;
  behaviour(): CentralBehaviour;
}

function open(dir: string, config: Partial<CentralConfig> = {}): Central {
  const store = new LmdbStore(dir);
  const clock = new ManualClock(0);
  const effects: RegionEffect[] = [];
  let behaviour: CentralBehaviour | undefined;
  const region = createRegion({
    geozones: [CENTRAL_SHARD],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: false,
    behaviour: (shardId) => (shardId === CENTRAL_SHARD ? (behaviour = new CentralBehaviour({ ...defaultCentralConfig, ...config })) : undefined),
    onEffects: (released) => effects.push(...released),
  });
  region.supervisor.recover(false);
  return {
    region,
    clock,
    store,
    effects,
    at: (ms) => {
      clock.set(ms);
      region.supervisor.advanceTo(ms);
    },
    settle: () => region.supervisor.whenIdle(),
    behaviour: () => behaviour as CentralBehaviour,
  };
}

const summary = (geozone: string, atMs: number, overrides: Partial<RegionalSummary> = {}): RegionalSummary => ({
  geozoneId: geozone,
  atMs,
  totalNodes: 10,
  activeNodes: 10,
  avgGpuUtil: 0.5,
  energyBreakdown: { cogen: 10, grid: 0, battery: 0 },
  openReservations: 0,
  ...overrides,
});

const job = (jobId: string, overrides: Partial<TrainingJob> = {}): TrainingJob => ({
  jobId,
  datasetUri: 'file:///data/set.bin',
  datasetSizeGb: 1,
  estimatedFlops: 1e15,
  checkpointUri: `file:///ckpt/${jobId}.pt`,
  urgency: 'normal',
  ...overrides,
});

const alertsOf = (effects: readonly RegionEffect[], rule: string): Extract<RegionEffect, { type: 'system' }>[] =>
  effects.filter((e): e is Extract<RegionEffect, { type: 'system' }> => e.type === 'system' && e.details['rule'] === rule);

test('each alert detector fires once from crafted summaries, on logical time, with details that explain it', async (t) => {
  const { dir, cleanup } = tempDir();
  const c = open(dir);
  try {
    let now = 0;
    const feed = (overrides: Partial<RegionalSummary> = {}): void => {
      now += PERIOD_MS;
      c.at(now);
      c.region.supervisor.submit({ type: 'summary.in', summary: summary('CAISO', now, overrides) }, now);
    };
    for (let i = 0; i < 5; i++) feed();
    await c.settle();
    t.deepEqual(c.effects.filter((e) => e.type === 'system'), [], 'a steady region raises nothing');

    // Active nodes 10 -> 7: below (1 - 0.2) x the recent level; once, not again while it stays down.
    feed({ activeNodes: 7, totalNodes: 10, energyBreakdown: { cogen: 7, grid: 0, battery: 0 } });
    feed({ activeNodes: 7, totalNodes: 10, energyBreakdown: { cogen: 7, grid: 0, battery: 0 } });
    await c.settle();
    const drops = alertsOf(c.effects, 'active-nodes-drop');
    t.is(drops.length, 1);
    t.is(drops[0]?.details['activeNodes'], 7);
    t.is(drops[0]?.details['recentLevel'], 10);
    t.regex(String(drops[0]?.details['explanation']), /<= \(1 - 0\.2\) x mean/);

    // GPU utilisation over 85 % for 3 periods: the third raises it, the fourth does not.
    for (let i = 0; i < 4; i++) feed({ avgGpuUtil: 0.9 });
    await c.settle();
    const hot = alertsOf(c.effects, 'gpu-util-high');
    t.is(hot.length, 1);
    t.is(hot[0]?.details['periods'], 3);

    // The energy mix shifts to battery: half the nodes on battery against a recent level of none.
    feed({ energyBreakdown: { cogen: 5, grid: 0, battery: 5 } });
    await c.settle();
    const battery = alertsOf(c.effects, 'energy-shift-battery');
    t.is(battery.length, 1);
    t.is(battery[0]?.details['batteryShare'], 0.5);

    // Silence: nothing for 3 periods; the timer wheel fires the deadline on logical time.
    const last = now;
    c.at(last + 3 * PERIOD_MS - 1);
    await c.settle();
    t.is(alertsOf(c.effects, 'region-silent').length, 0, 'not before 3 periods');
    c.at(last + 3 * PERIOD_MS);
    await c.settle();
    const silent = alertsOf(c.effects, 'region-silent');
    t.is(silent.length, 1);
    t.is(silent[0]?.severity, 'error');
    t.is(silent[0]?.details['silentForMs'], 3 * PERIOD_MS);
    t.is(c.behaviour().globalView()[0]?.state, 'silent');
    // Every alert is a SystemEvent v1 on arc.event.system.
    for (const alert of c.effects.filter((e) => e.type === 'system')) t.is(effectToWire(alert)?.topic, 'arc.event.system');
  } finally {
    await c.store.close();
    cleanup();
  }
});

test('thresholds are configuration: a stricter GPU threshold and a longer silence', async (t) => {
  const { dir, cleanup } = tempDir();
  const c = open(dir, { alerts: { ...defaultCentralConfig.alerts, gpuUtilHigh: 0.6, gpuUtilHighPeriods: 2, silentPeriods: 5 } });
  try {
    c.region.supervisor.submit({ type: 'summary.in', summary: summary('ERCOT', 0, { avgGpuUtil: 0.7 }) }, 0);
    c.at(PERIOD_MS);
    c.region.supervisor.submit({ type: 'summary.in', summary: summary('ERCOT', PERIOD_MS, { avgGpuUtil: 0.7 }) }, PERIOD_MS);
    c.at(PERIOD_MS * 4);
    await c.settle();
    t.is(alertsOf(c.effects, 'gpu-util-high').length, 1);
    t.is(alertsOf(c.effects, 'region-silent').length, 0, 'five periods, not three');
    c.at(PERIOD_MS * 6);
    await c.settle();
    t.is(alertsOf(c.effects, 'region-silent').length, 1);
  } finally {
    await c.store.close();
    cleanup();
  }
});

test('classification is journaled with its reason; a federated job goes to the best-ranked geozone as FederatedTask v1', async (t) => {
  const { dir, cleanup } = tempDir();
  const c = open(dir);
  try {
    const s = c.region.supervisor;
    // No view yet: the federated job is not placed, and says why.
    s.submit({ type: 'job.submit', job: job('early') }, 0);
    s.submit({ type: 'summary.in', summary: summary('PJM', 0, { activeNodes: 10, energyBreakdown: { cogen: 0, grid: 10, battery: 0 } }) }, 0);
    s.submit({ type: 'summary.in', summary: summary('CAISO', 0, { activeNodes: 10, energyBreakdown: { cogen: 4, grid: 6, battery: 0 } }) }, 0);
    // Equal to CAISO in every way: the tie goes to the smaller id.
    s.submit({ type: 'summary.in', summary: summary('BPA', 0, { activeNodes: 10, energyBreakdown: { cogen: 4, grid: 6, battery: 0 } }) }, 0);
    // The best mix, but too few nodes for the job's participants.
    s.submit({ type: 'summary.in', summary: summary('ERCOT', 0, { totalNodes: 1, activeNodes: 1, energyBreakdown: { cogen: 1, grid: 0, battery: 0 } }) }, 0);
    s.submit({ type: 'job.submit', job: job('fed-1', { minParticipants: 2, modelId: 'llama-3-8b', rounds: 5 }) }, 0);
    s.submit({ type: 'job.submit', job: job('hpc-flops', { estimatedFlops: 2e18 }) }, 0);
    s.submit({ type: 'job.submit', job: job('hpc-data', { datasetSizeGb: 101 }) }, 0);
    s.submit({ type: 'job.submit', job: job('hpc-urgent', { urgency: 'critical' }) }, 0);
    s.submit({ type: 'job.submit', job: job('fed-1', { estimatedFlops: 5e18 }) }, 0);
    await c.settle();

    const b = c.behaviour();
    t.is(b.job('early')?.placement?.geozone, null);
    t.regex(b.job('early')?.placement?.reason ?? '', /no reporting geozone has 2 active nodes/);
    t.deepEqual(b.job('fed-1')?.placement?.ranked, ['BPA', 'CAISO', 'PJM']);
    t.is(b.job('fed-1')?.placement?.geozone, 'BPA');
    t.deepEqual(
      ['hpc-flops', 'hpc-data', 'hpc-urgent', 'fed-1'].map((id) => [b.job(id)?.target, b.job(id)?.reason]),
      [
        ['hpc', 'estimatedFlops > 1e18'],
        ['hpc', 'datasetSizeGb > 100'],
        ['hpc', 'urgency = critical'],
        ['federated', 'no HPC rule matched'],
      ],
      'the duplicate fed-1 did not change the first',
    );
    // The reasons are in the journal, not only in memory.
    const classified = [...c.store.journal(CENTRAL_SHARD).read(0)].filter((r) => r.actorId === SHARD_ACTOR_ID && r.event.type === 'job.classified');
    t.deepEqual(classified.map((r) => r.event['reason']), ['no HPC rule matched', 'no HPC rule matched', 'estimatedFlops > 1e18', 'datasetSizeGb > 100', 'urgency = critical']);

    const tasks = c.effects.filter((e) => e.type === 'federated-task');
    t.is(tasks.length, 1);
    const wire = effectToWire(tasks[0] as RegionEffect);
    t.is(wire?.topic, 'arc.scheduler.training');
    const task = federatedTaskSchema.parse(wire?.message);
    t.like(task, { 'job-id': 'fed-1', geozone: 'BPA', 'model-id': 'llama-3-8b', rounds: 5, 'min-participants': 2 });
    t.true(c.effects.some((e) => e.type === 'system' && /submitted again/.test(e.message)));
    // Each HPC job asked the data mover for its copy, named after the job.
    const transfers = c.effects.flatMap((e) => (e.type === 'hpc-command' && e.command.kind === 'transfer' ? [e.command] : []));
    t.deepEqual(transfers.map((x) => x.jobId), ['hpc-flops', 'hpc-data', 'hpc-urgent']);
    t.true(transfers.every((x) => x.destinationUri.endsWith(`/${x.jobId}/set.bin`)));
  } finally {
    await c.store.close();
    cleanup();
  }
});

test('the HPC path on journaled observations: progress at a bounded rate, never backwards; a stalled transfer fails on the timer wheel; replay gives the same state hash', async (t) => {
  const { dir, cleanup } = tempDir();
  const c = open(dir, { transferStallTimeoutMs: 30_000, progressEveryMs: 1_000 });
  const s = c.region.supervisor;
  const observe = (jobId: string, atMs: number, observation: HpcObservation): void => {
    c.at(atMs);
    s.submit({ type: 'hpc.observed', jobId, observation }, atMs);
  };
  let live: string;
  try {
    s.submit({ type: 'job.submit', job: job('big', { estimatedFlops: 2e18, datasetSizeGb: 0.001 }) }, 0);
    s.submit({ type: 'job.submit', job: job('stalls', { estimatedFlops: 2e18, datasetSizeGb: 0.001 }) }, 0);
    observe('big', 10, { kind: 'transfer.started', transferId: 't-big' });
    observe('stalls', 10, { kind: 'transfer.started', transferId: 't-stalls' });
    observe('big', 500, { kind: 'transfer.progress', bytesDone: 100_000, bytesTotal: 1_000_000 });
    observe('big', 900, { kind: 'transfer.progress', bytesDone: 200_000, bytesTotal: 1_000_000 }); // within 1 s: not journaled
    observe('big', 1_600, { kind: 'transfer.progress', bytesDone: 50_000, bytesTotal: 1_000_000 }); // backwards: ignored
    observe('big', 1_700, { kind: 'transfer.progress', bytesDone: 600_000, bytesTotal: 1_000_000 });
    observe('big', 2_000, { kind: 'transfer.verified', bytesDone: 1_000_000, detail: 'sha256 x', stagedUri: 'file:///staging/big.a1b2c3d4', batchJobName: 'big.a1b2c3d4' });
    observe('big', 2_100, { kind: 'queue.submitted', queueJobId: 'q-1', resubmitted: true });
    observe('big', 2_200, { kind: 'queue.state', queueJobId: 'q-1', state: 'completed', rawState: 'COMPLETED', exitCode: 0, reason: null });
    c.at(40_000); // 'stalls' made no progress for 30 s
    await c.settle();

    const progress = [...c.store.journal(CENTRAL_SHARD).read(0)].filter((r) => r.actorId === 'hpc-job/big' && r.event.type === 'transfer.progress').map((r) => r.event['bytesTransferred']);
    t.deepEqual(progress, [100_000, 600_000, 1_000_000]);
    const b = c.behaviour();
    t.is(b.job('big')?.ended?.state, 'completed');
    t.is(b.job('big')?.ended?.context.schedulerJobId, 'q-1');
    t.is(b.job('stalls')?.ended?.state, 'failed');
    t.is(b.job('stalls')?.ended?.context.failureReason, 'transfer-stalled');
    t.true(c.effects.some((e) => e.type === 'hpc-command' && e.command.kind === 'cancel' && e.command.transferId === 't-stalls'), 'the stalled transfer is stopped');
    // Classified HPC, each job first goes on arc.bridge.pending as HpcJob v1, nothing staged yet.
    const pending = c.effects.filter((e) => e.type === 'hpc-pending').map((e) => effectToWire(e));
    t.deepEqual(pending.map((w) => [w?.topic, hpcPendingWireSchema.parse(w?.message)['job-id']]), [
      ['arc.bridge.pending', 'big'],
      ['arc.bridge.pending', 'stalls'],
    ]);
    t.like(pending[0]?.message, { 'staged-uri': null, 'batch-job-name': null, reason: 'estimatedFlops > 1e18', 'dataset-size-gb': 0.001 });
    const ingress = c.effects.filter((e) => e.type === 'hpc-ingress');
    t.is(ingress.length, 1);
    const wire = effectToWire(ingress[0] as RegionEffect);
    t.is(wire?.topic, 'ornl.bridge.ingress');
    // HpcJob v1 names where the mover said the copy is and the queue's name for the job, not the orchestrator's guess.
    t.like(wire?.message, { 'staged-uri': 'file:///staging/big.a1b2c3d4', 'batch-job-name': 'big.a1b2c3d4' });
    t.deepEqual(b.job('big')?.staged, { stagedUri: 'file:///staging/big.a1b2c3d4', batchJobName: 'big.a1b2c3d4' });
    live = s.stateHash();
  } finally {
    await c.store.close();
  }
  // Replayed from the journal alone, the orchestrator is the same.
  const replayed = open(dir);
  try {
    t.is(replayed.region.supervisor.stateHash(), live);
    t.is(replayed.behaviour().job('big')?.ended?.state, 'completed');
  } finally {
    await replayed.store.close();
    cleanup();
  }
});

test('what central publishes for a region always passes the region\'s FederatedTask v1 schema: only the hyper-parameters a region reads go to it; a data set or checkpoint a region cannot reach goes to HPC', async (t) => {
  const { dir, cleanup } = tempDir();
  const c = open(dir);
  try {
    const s = c.region.supervisor;
    s.submit({ type: 'summary.in', summary: summary('PJM', 0, { activeNodes: 10, energyBreakdown: { cogen: 0, grid: 10, battery: 0 } }) }, 0);
    s.submit({ type: 'job.submit', job: job('fed-hyper', { hyperParameters: { 'learning-rate': 0.1, 'local-epochs': 2, partitioning: 'label-skew', optimizer: 'adam', 'warmup-steps': 100 } }) }, 0);
    s.submit({ type: 'job.submit', job: job('fed-s3', { datasetUri: 's3://bucket/set.bin' }) }, 0);
    s.submit({ type: 'job.submit', job: job('fed-remote-ckpt', { checkpointUri: 's3://bucket/ckpt' }) }, 0);
    await c.settle();

    const tasks = c.effects.filter((e) => e.type === 'federated-task');
    t.is(tasks.length, 1);
    const task = federatedTaskSchema.parse(effectToWire(tasks[0] as RegionEffect)?.message);
    t.like(task, { 'job-id': 'fed-hyper', geozone: 'PJM', 'hyper-parameters': { 'learning-rate': 0.1, 'local-epochs': 2, partitioning: 'label-skew' } });
    t.false('optimizer' in task['hyper-parameters']);

    const b = c.behaviour();
    t.deepEqual(b.job('fed-s3')?.target, 'hpc');
    t.regex(b.job('fed-s3')?.reason ?? '', /dataset-uri not readable by a region/);
    t.deepEqual(b.job('fed-remote-ckpt')?.target, 'hpc');
    t.regex(b.job('fed-remote-ckpt')?.reason ?? '', /checkpoint-uri not writable by a region/);
    const transfers = c.effects.flatMap((e) => (e.type === 'hpc-command' && e.command.kind === 'transfer' ? [e.command.jobId] : []));
    t.deepEqual(transfers, ['fed-s3', 'fed-remote-ckpt']);
  } finally {
    await c.store.close();
    cleanup();
  }
});

test('TrainingJob v1 intake refuses a hyper-parameter a region reads with a value it would refuse, and takes names that are not the region\'s', (t) => {
  const wire = { 'job-id': 'j1', 'dataset-uri': 'builtin:digits', 'dataset-size-gb': 0.001, 'estimated-flops': 1e12, 'checkpoint-uri': 'file:///tmp/j1', urgency: 'normal' };
  const error = t.throws(() => parseTrainingJob(JSON.stringify({ ...wire, 'hyper-parameters': { 'learning-rate': 'fast' } })));
  t.is((error as ArcError).code, ErrorCodes.VALIDATION);
  t.regex(error?.message ?? '', /learning-rate/);
  t.deepEqual(parseTrainingJob(JSON.stringify({ ...wire, 'hyper-parameters': { optimizer: 'adam', seed: 3 } })).hyperParameters, { optimizer: 'adam', seed: 3 });
});
