import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import WebSocket from 'ws';
import { createRegionProcess, type RegionProcess } from '../../app/region-process.js';
import { LmdbBlobStore } from '../../adapters/lmdb/lmdb-blob-store.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { sha256Hex } from '../../runtime/blob-store.js';
import { InvariantChecker, type InvariantReport } from '../../simulations/invariants.js';
import { fedAvg, weightsToBytes } from '../../training/index.js';
import { tempDir } from '../helpers/fixtures.js';
import { arcnetSync, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';
import { startTrainingAgent, type TrainingAgent } from '../helpers/training-agent.js';

/**
 * Federated rounds in an embedded region: node agents on the real agent
 * channel train the real model on their parts of the digits and send their
 * weights; the region aggregates by FedAvg, measures held-out accuracy,
 * writes checkpoints and runs the next round, or leaves stragglers out at the
 * deadline, or fails below quorum. The journal then replays to the same hash.
 */

type Job = Record<string, unknown> & { state: string; 'round-history': Round[]; 'failure-reason': string | null };
interface Round {
  round: number;
  updates: { 'node-id': string; 'sample-count': number; 'weights-sha256': string }[];
  stragglers: string[];
  late: string[];
  'closed-by': string | null;
  accuracy: number | null;
  'aggregate-sha256': string | null;
  'checkpoint-uri': string | null;
  'checkpoint-sha256': string | null;
}

async function post(origin: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function untilJob(origin: string, jobId: string, done: (job: Job) => boolean, timeoutMs = 90_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const response = await fetch(`${origin}/v1/training/${jobId}`);
    if (response.status === 200) {
      const job = (await response.json()) as Job;
      last = job;
      if (done(job)) return job;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`job ${jobId} did not get there within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

function task(jobId: string, geozone: string, checkpointDir: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'job-id': jobId,
    geozone,
    'model-id': 'digits-softmax',
    'dataset-uri': 'builtin:digits',
    rounds: 4,
    'min-participants': 3,
    // Most tests count every update; the quorum rule has its own test.
    'aggregate-when': 'all',
    participants: 5,
    'round-deadline-ms': 20_000,
    'checkpoint-uri': pathToFileURL(checkpointDir).href,
    'hyper-parameters': { 'learning-rate': 0.2, 'local-epochs': 1, 'batch-size': 16, seed: 7, partitioning: 'iid' },
    ...overrides,
  };
}

async function withRegion(t: ExecutionContext, run: (region: RegionProcess, origin: string, dir: string) => Promise<void>): Promise<string> {
  const { dir, cleanup } = tempDir('arcnet-fed-');
  const region = await createRegionProcess({ geozones: ['CAISO'], journal: { kind: 'lmdb', dataDir: join(dir, 'data') }, port: 0, security: { rateLimitPerSec: 10_000 }, logger: pino({ level: 'silent' }) });
  await region.start();
  let line: Record<string, unknown> = {};
  try {
    await run(region, region.address as string, dir);
  } finally {
    line = await region.stop('test done');
  }
  // The training invariants hold over the whole journal, each aggregate recomputed from the stored weights.
  const report = await checkTrainingJournal(join(dir, 'data'));
  t.is(report.violations, 0, JSON.stringify(report.first));
  // The journal alone rebuilds the same state, federated rounds and job views included.
  const replay = arcnetSync('replay', '--journal', join(dir, 'data'), '--json');
  t.is(replay.status, 0, replay.stderr);
  t.is((JSON.parse(replay.stdout) as { stateHash: string }).stateHash, line['stateHash'] as string);
  cleanup();
  return line['stateHash'] as string;
}

async function checkTrainingJournal(dataDir: string): Promise<InvariantReport> {
  const store = new LmdbStore(dataDir, { readOnly: true });
  const blobStore = new LmdbBlobStore(dataDir);
  try {
    const records = [...store.journal('CAISO').read(0)];
    const blobs = new Map<string, Uint8Array>();
    for (const record of records) {
      const sha = record.event['weightsSha256'];
      if (typeof sha === 'string') blobs.set(sha, (await blobStore.get(sha)) as Uint8Array);
    }
    const checker = new InvariantChecker({ blobs: (sha) => blobs.get(sha) });
    checker.checkShard('CAISO', records);
    return checker.finish();
  } finally {
    await blobStore.close();
    await store.close();
  }
}

interface SystemMessage {
  severity: string;
  message: string;
  details?: Record<string, unknown>;
}

/** The console's system messages about one job, as a WebSocket client of /telemetry receives them. */
async function watchConsole(origin: string, jobId: string): Promise<{ socket: WebSocket; system: SystemMessage[] }> {
  const system: SystemMessage[] = [];
  const socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/telemetry?types=system`);
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as SystemMessage & { type: string };
    if (message.type === 'system' && message.details?.['jobId'] === jobId) system.push(message);
  });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { socket, system };
}

async function waitFor<T>(check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not there within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function agents(origin: string, count: number, answers?: (nodeId: string, jobId: string, round: number) => boolean, holdMs?: (nodeId: string) => number): Promise<TrainingAgent[]> {
  const started: TrainingAgent[] = [];
  for (let i = 1; i <= count; i++) {
    const nodeId = `fed-n${i}`;
    started.push(
      await startTrainingAgent({
        origin,
        nodeId,
        geozone: 'CAISO',
        energySource: i % 2 === 0 ? 'cogen' : 'grid',
        answers: answers === undefined ? undefined : (jobId, round) => answers(nodeId, jobId, round),
        holdMs: holdMs === undefined ? undefined : () => holdMs(nodeId),
      }),
    );
  }
  // Telemetry first: participants are chosen from the node actors it creates.
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const nodes = (await (await fetch(`${origin}/v1/nodes?geozone=CAISO`)).json()) as { nodes: unknown[] };
    if (nodes.nodes.length === count) return started;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the agents did not all report');
}

test('agents train the digits over rounds: FedAvg of exactly the counted updates, held-out accuracy rising, checkpoints written, replay equal', async (t) => {
  t.timeout(180_000);
  await withRegion(t, async (_region, origin, dir) => {
    const fleet = await agents(origin, 5);
    try {
      const accepted = await post(origin, '/v1/training', task('fed-job-1', 'CAISO', join(dir, 'checkpoints')));
      t.is(accepted.status, 202, JSON.stringify(accepted.body));
      t.is(accepted.body['state'], 'training');
      // Ranked cogen first (even-numbered nodes), then grid, each by id.
      t.deepEqual((accepted.body['participants'] as { 'node-id': string }[]).map((p) => p['node-id']), ['fed-n2', 'fed-n4', 'fed-n1', 'fed-n3', 'fed-n5']);
      t.is((await post(origin, '/v1/training', task('fed-job-1', 'CAISO', join(dir, 'checkpoints')))).status, 409);

      const job = await untilJob(origin, 'fed-job-1', (j) => j.state !== 'training');
      t.is(job.state, 'done', JSON.stringify(job));
      const rounds = job['round-history'];
      t.is(rounds.length, 4);
      const accuracies = rounds.map((r) => r.accuracy as number);
      t.log('held-out accuracy per round', accuracies);
      for (let i = 1; i < accuracies.length; i++) t.true((accuracies[i] as number) > (accuracies[i - 1] as number), `round ${i + 1} did not improve: ${accuracies.join(', ')}`);
      t.true((accuracies[3] as number) > 0.9);

      const sent = new Map(fleet.flatMap((a) => [...a.sent]));
      for (const round of rounds) {
        t.is(round.updates.length, 5);
        t.deepEqual(round.stragglers, []);
        // Recomputed here from the weights the agents sent: the aggregate is FedAvg of exactly the counted updates.
        const counted = round.updates.map((u) => ({ nodeId: u['node-id'], sampleCount: u['sample-count'], weights: (sent.get(u['weights-sha256']) as { weights: Float32Array }).weights }));
        const expected = weightsToBytes(fedAvg(counted));
        t.is(round['aggregate-sha256'], sha256Hex(expected));
        const file = readFileSync(fileURLToPath(round['checkpoint-uri'] as string));
        t.is(sha256Hex(file), round['checkpoint-sha256'] as string);
        t.is(round['checkpoint-sha256'], round['aggregate-sha256']);
      }
    } finally {
      await Promise.all(fleet.map((a) => a.close()));
    }
  });
});

test('a straggler is left out at the round deadline and named; below quorum the job fails with its reason', async (t) => {
  t.timeout(180_000);
  await withRegion(t, async (_region, origin, dir) => {
    // fed-n4 never answers job A; in job B only fed-n1 and fed-n2 answer.
    const fleet = await agents(origin, 4, (nodeId, jobId) => (jobId === 'fed-a' ? nodeId !== 'fed-n4' : nodeId === 'fed-n1' || nodeId === 'fed-n2'));
    try {
      // Long enough for the three who answer to train on a loaded machine; fed-n4 is waited for until then.
      const base = { rounds: 2, participants: 4, 'min-participants': 3, 'round-deadline-ms': 12_000 };
      const watchA = await watchConsole(origin, 'fed-a');
      const watchB = await watchConsole(origin, 'fed-b');
      t.teardown(() => {
        watchA.socket.close();
        watchB.socket.close();
      });
      t.is((await post(origin, '/v1/training', task('fed-a', 'CAISO', join(dir, 'ck'), base))).status, 202);
      const a = await untilJob(origin, 'fed-a', (j) => j.state !== 'training');
      t.is(a.state, 'done', JSON.stringify(a));
      for (const round of a['round-history']) {
        t.is(round['closed-by'], 'deadline', 'aggregate-when all waits for fed-n4 until the deadline');
        t.deepEqual(round.stragglers, ['fed-n4']);
        t.deepEqual(round.updates.map((u) => u['node-id']).sort(), ['fed-n1', 'fed-n2', 'fed-n3']);
      }

      t.is((await post(origin, '/v1/training', task('fed-b', 'CAISO', join(dir, 'ck'), base))).status, 202);
      const b = await untilJob(origin, 'fed-b', (j) => j.state !== 'training');
      t.is(b.state, 'failed');
      t.is(b['failure-reason'], 'quorum-not-reached');
      t.is(b['round-history'].length, 1);
      t.is(b['round-history'][0]?.['aggregate-sha256'], null, 'no aggregate below quorum');
      // The console said so: fed-a's rounds closed at the deadline without fed-n4; fed-b failed with its reason.
      const a1 = await waitFor(() => watchA.system.find((m) => m.message.includes('round 1 closed')));
      t.is(a1.severity, 'warn');
      t.is(a1.message, 'training job fed-a: round 1 closed at its deadline; stragglers left out: fed-n4');
      const failed = await waitFor(() => watchB.system.find((m) => m.severity === 'error'));
      t.is(failed.message, 'training job fed-b failed in round 1: quorum-not-reached');
      t.is(failed.details?.['reason'], 'quorum-not-reached');

      // Too few eligible nodes: refused at once, with the count in the reason.
      const c = await post(origin, '/v1/training', task('fed-c', 'CAISO', join(dir, 'ck'), { participants: 10, 'min-participants': 6 }));
      t.is(c.status, 202);
      t.is(c.body['state'], 'failed');
      t.regex(String(c.body['failure-detail']), /only 4 eligible nodes/);
    } finally {
      await Promise.all(fleet.map((a) => a.close()));
    }
  });
});

test('aggregate-when quorum (the default): a round closes once min-participants answered; the late update is not counted and its node is named', async (t) => {
  t.timeout(180_000);
  await withRegion(t, async (_region, origin, dir) => {
    // fed-n4 trains like the others but sends its update 5 s later, long after the three others answered.
    const fleet = await agents(origin, 4, undefined, (nodeId) => (nodeId === 'fed-n4' ? 5_000 : 0));
    // The console's system messages: what an operator watching the region sees of the rounds.
    const { socket: console, system } = await watchConsole(origin, 'fed-q');
    try {
      const { 'aggregate-when': _all, ...quorumTask } = task('fed-q', 'CAISO', join(dir, 'ck'), { rounds: 2, participants: 4, 'min-participants': 3, 'round-deadline-ms': 120_000 });
      const accepted = await post(origin, '/v1/training', quorumTask);
      t.is(accepted.status, 202, JSON.stringify(accepted.body));
      t.is(accepted.body['aggregate-when'], 'quorum');
      // Done long before the 120 s deadline, and both late updates seen (the last one after the job ended).
      const job = await untilJob(origin, 'fed-q', (j) => j.state !== 'training' && j['round-history'].every((r) => r.late.length > 0), 60_000);
      t.is(job.state, 'done', JSON.stringify(job));
      t.is(job['round-history'].length, 2);
      const sent = new Map(fleet.flatMap((a) => [...a.sent]));
      for (const round of job['round-history']) {
        t.is(round['closed-by'], 'quorum');
        t.deepEqual(round.stragglers, ['fed-n4']);
        t.deepEqual(round.late, ['fed-n4']);
        t.deepEqual(round.updates.map((u) => u['node-id']).sort(), ['fed-n1', 'fed-n2', 'fed-n3']);
        // The aggregate is FedAvg of the three counted updates only: fed-n4's weights are not in it.
        const counted = round.updates.map((u) => ({ nodeId: u['node-id'], sampleCount: u['sample-count'], weights: (sent.get(u['weights-sha256']) as { weights: Float32Array }).weights }));
        t.is(round['aggregate-sha256'], sha256Hex(weightsToBytes(fedAvg(counted))));
      }
      const late = fleet.find((a) => a.nodeId === 'fed-n4') as TrainingAgent;
      t.is([...late.sent.values()].filter((s) => s.jobId === 'fed-q').length, 2, 'fed-n4 did train and send both rounds');

      // Each outcome on the console, in order: round started, closed at quorum without fed-n4, aggregated with
      // its accuracy, fed-n4's late update not counted; then the job done.
      const messages = (await waitFor(() => (system.some((m) => m.message.includes('done after')) && system.filter((m) => m.message.includes('not counted')).length === 2 ? system : undefined))).map(
        (m) => `${m.severity}: ${m.message}`,
      );
      t.log(messages);
      const expected = [
        /^info: training job fed-q: round 1 of 2 started with 4 participants$/,
        /^warn: training job fed-q: round 1 closed at quorum \(3 answered, min-participants 3\); stragglers left out: fed-n4$/,
        /^success: training job fed-q: round 1 of 2 aggregated from 3 updates, held-out accuracy 0\.\d{4}, checkpoint file:/,
        /^info: training job fed-q: round 2 of 2 started/,
      ];
      expected.forEach((pattern, i) => t.regex(messages[i] ?? '', pattern));
      t.true(messages.some((m) => /^warn: training job fed-q: the update of fed-n4 for round 1 came after the round closed \(quorum\); not counted$/.test(m)));
      t.true(messages.some((m) => /^warn: training job fed-q: the update of fed-n4 for round 2 came after the round closed \(quorum\); not counted$/.test(m)));
      t.true(messages.some((m) => /^success: training job fed-q done after 2 rounds; last checkpoint file:/.test(m)));
      const aggregated = system.filter((m) => m.message.includes('aggregated from'));
      t.deepEqual(aggregated.map((m) => m.details?.['accuracy']), job['round-history'].map((r) => r.accuracy), 'the console carries the same accuracy as GET /v1/training');
      t.deepEqual(aggregated.map((m) => m.details?.['stragglers']), [['fed-n4'], ['fed-n4']]);
    } finally {
      console.close();
      await Promise.all(fleet.map((a) => a.close()));
    }
  });
});

test('bad federated tasks and updates are refused with coded errors before reaching a shard', async (t) => {
  t.timeout(120_000);
  await withRegion(t, async (_region, origin, dir) => {
    const bad = await post(origin, '/v1/training', { ...task('fed-x', 'CAISO', dir), 'hyper-parameters': { 'learning-rat': 0.1 } });
    t.is(bad.status, 400);
    t.is(bad.body['code'], 'ARC_ERR_VALIDATION');
    const missing = await post(origin, '/v1/training', task('fed-y', 'CAISO', dir, { 'dataset-uri': pathToFileURL(join(dir, 'nope.csv')).href }));
    t.is(missing.status, 422);
    t.is(missing.body['code'], 'ARC_ERR_DATASET');
    const elsewhere = await post(origin, '/v1/training', task('fed-z', 'PJM', dir));
    t.is(elsewhere.status, 422);
    t.is(elsewhere.body['code'], 'ARC_ERR_UNKNOWN_SHARD');
    const unknownJob = await post(origin, '/v1/training/updates', { 'job-id': 'nope', round: 1, 'node-id': 'n1', 'sample-count': 3, 'weights-sha256': 'a'.repeat(64) });
    t.is(unknownJob.status, 404);
    const both = await post(origin, '/v1/training/updates', { 'job-id': 'nope', round: 1, 'node-id': 'n1', 'sample-count': 3 });
    t.is(both.body['code'], 'ARC_ERR_VALIDATION');
    t.is((await fetch(`${origin}/v1/training/nope`)).status, 404);
  });
});

test('the region killed -9 mid-round resumes the round after a restart, and its journal replays to the live hash', async (t) => {
  t.timeout(240_000);
  const { dir, cleanup } = tempDir('arcnet-fed-kill-');
  const data = join(dir, 'data');
  const args = ['--data', data, '--geozones', 'CAISO', '--sim-nodes', '0'];
  let region: LiveRegion | undefined = await startLiveRegion(args);
  let fleet: TrainingAgent[] = [];
  try {
    // Round 2 is held back until the region has been killed in the middle of it.
    let holdRound2 = true;
    fleet = await agents(region.origin, 4, (_nodeId, _jobId, round) => round !== 2 || !holdRound2);
    const accepted = await post(region.origin, '/v1/training', task('fed-kill', 'CAISO', join(dir, 'ck'), { rounds: 3, participants: 4, 'min-participants': 3, 'round-deadline-ms': 60_000 }));
    t.is(accepted.status, 202);
    await untilJob(region.origin, 'fed-kill', (j) => j['round-history'].length === 2);
    region.child.kill('SIGKILL');
    await new Promise((resolve) => region?.child.once('exit', resolve));
    await Promise.all(fleet.map((a) => a.close()));

    region = await startLiveRegion(args);
    holdRound2 = false;
    // New agent connections get the round-2 train messages again, from the recovered journal.
    fleet = await agents(region.origin, 4, () => true);
    const job = await untilJob(region.origin, 'fed-kill', (j) => j.state !== 'training');
    t.is(job.state, 'done', JSON.stringify(job));
    t.deepEqual(job['round-history'].map((r) => r.updates.length), [4, 4, 4]);
    t.true(fleet.every((a) => a.trains.some((m) => m['round'] === 2)), 'every participant was asked for round 2 again');
    await Promise.all(fleet.map((a) => a.close()));
    fleet = [];
    const line = await region.stop();
    region = undefined;
    const replay = arcnetSync('replay', '--journal', data, '--json');
    t.is(replay.status, 0, replay.stderr);
    t.is((JSON.parse(replay.stdout) as { stateHash: string }).stateHash, line['stateHash'] as string);
  } finally {
    await Promise.all(fleet.map((a) => a.close()));
    region?.child.kill('SIGKILL');
    cleanup();
  }
});
