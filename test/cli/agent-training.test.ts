import test from 'ava';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { localSeed } from '../../actors/training-coordinator.js';
import { loadDataset } from '../../adapters/datasets/dataset-files.js';
import { evaluate, fedAvg, formatShardUri, initialWeights, parseShardUri, runTrainingTask, shardIndices } from '../../training/index.js';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { tempDir } from '../helpers/fixtures.js';
import { createKeyWithCli, startLiveRegion, type LiveRegion } from '../helpers/live-region.js';

/**
 * Federated training on real `arcnet agent` processes: eight agents against an
 * `arcnet region` process train the digits on their own parts of the data set,
 * each on a worker thread, and send their weights; the region aggregates round
 * after round and the held-out accuracy rises. One agent is killed with -9 while
 * a round is on: that round closes without it at its deadline and the next
 * rounds go on without it. The others stop on SIGTERM with every update
 * accepted and each round trained once.
 */

interface Round {
  round: number;
  updates: { 'node-id': string }[];
  stragglers: string[];
  accuracy: number | null;
  'closed-at'?: string | null;
}
interface Participant {
  'node-id': string;
  part: number;
  'dataset-shard-uri': string;
}
type Job = { state: string; 'round-history': Round[]; 'failure-reason': string | null; participants: Participant[] };

const AGENTS = 8;
const ROUNDS = 4;
const ROUND_DEADLINE_MS = 8_000;
/** Chosen so the held-out accuracy rises every round whether or not the killed agent's round-2 update got in first. */
const HYPER = { 'learning-rate': 0.5, 'local-epochs': 3, 'batch-size': 16, l2: 1e-4, seed: 7, partitioning: 'iid' } as const;

/** Round 1 as the agents should have trained it (everyone from zeros): the aggregate's held-out accuracy. */
function expectedFirstRoundAccuracy(participants: readonly Participant[]): number {
  const dataset = loadDataset('builtin:digits');
  const updates = participants.map((p) => {
    const options = { epochs: HYPER['local-epochs'], learningRate: HYPER['learning-rate'], batchSize: HYPER['batch-size'], l2: HYPER.l2, seed: localSeed(HYPER.seed, 1, p.part) };
    const result = runTrainingTask(dataset, { datasetShardUri: p['dataset-shard-uri'], weights: initialWeights(dataset.featureCount, dataset.classCount), options });
    return { nodeId: p['node-id'], sampleCount: result.sampleCount, weights: result.weights };
  });
  const held = parseShardUri(formatShardUri({ datasetUri: 'builtin:digits', part: 0, of: 1, scheme: HYPER.partitioning, seed: HYPER.seed, testFraction: 0.2 }));
  return evaluate(fedAvg(updates), dataset, shardIndices(dataset, held).test).accuracy;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('arcnet agent processes train a federated job: accuracy rises round over round, an agent killed -9 mid-round is left out', async (t) => {
  t.timeout(170_000, 'eight agents train four rounds');
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const zone = `TR${run}`;
  const { dir, cleanup } = tempDir();
  const keys = join(dir, 'keys.json');
  const agentKey = createKeyWithCli(keys, 'agent', zone);
  const developer = createKeyWithCli(keys, 'developer', zone);
  let region: LiveRegion | undefined = await startLiveRegion(['--data', join(dir, 'data'), '--geozones', zone, '--api-keys', keys, '--sim-nodes', '0']);
  const origin = region.origin;
  const auth = { authorization: `Bearer ${developer}` };
  const nodeIds = Array.from({ length: AGENTS }, (_, i) => `tr-${run.toLowerCase()}-${i + 1}`);
  const agents: AgentProcess[] = [];
  const common = ['--region', origin, '--geozone', zone, '--geohash', '9q9hvu', '--report-every', '1s', '--reconnect-max', '2s', '--nvidia-smi', 'off'];
  const diagnostics = (): string => agents.map((a) => `${a.nodeId}: ${a.stderr().slice(-1200)}`).join('\n') + `\nregion: ${region?.stderr().slice(-2000) ?? ''}`;
  const getJob = async (jobId: string): Promise<Job | undefined> => {
    const response = await fetch(`${origin}/v1/training/${jobId}`, { headers: auth });
    return response.status === 200 ? ((await response.json()) as Job) : undefined;
  };
  const until = async <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> => {
    const started = Date.now();
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}\n${diagnostics()}`);
      await sleep(200);
    }
  };
  try {
    // The victim logs at info, so the test sees it start training a round.
    for (const nodeId of nodeIds) {
      const victim = nodeId === nodeIds[AGENTS - 1];
      agents.push(startAgent(nodeId, [...common, '--energy-source', victim ? 'cogen' : 'grid'], { ...process.env, ARCNET_AGENT_KEY: agentKey, LOG_LEVEL: victim ? 'info' : 'warn' }));
    }
    const victim = agents[AGENTS - 1] as AgentProcess;
    await until('every agent to report', async () => {
      const response = await fetch(`${origin}/v1/nodes?geozone=${zone}`, { headers: auth });
      if (response.status !== 200) return undefined;
      const body = (await response.json()) as { nodes: unknown[] };
      return body.nodes.length === AGENTS ? true : undefined;
    });

    const jobId = `digits-${run.toLowerCase()}`;
    const posted = await fetch(`${origin}/v1/training`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        'job-id': jobId,
        geozone: zone,
        'model-id': 'digits-softmax',
        'dataset-uri': 'builtin:digits',
        rounds: ROUNDS,
        'min-participants': 5,
        // The rounds wait for all eight (the test checks every update was counted); the kill -9 round closes at its deadline.
        'aggregate-when': 'all',
        participants: AGENTS,
        'round-deadline-ms': ROUND_DEADLINE_MS,
        'checkpoint-uri': pathToFileURL(join(dir, 'checkpoints')).href,
        'hyper-parameters': HYPER,
      }),
    });
    const accepted = (await posted.json()) as Job;
    t.is(posted.status, 202, JSON.stringify(accepted));
    t.is(accepted.state, 'training');
    t.deepEqual(accepted.participants.map((p) => p['node-id']).sort(), [...nodeIds].sort(), 'every agent takes part');

    // Round 1 with everyone: each agent trained and its update was counted.
    const afterFirst = await until('round 1 to close', async () => {
      const job = await getJob(jobId);
      const first = job?.['round-history'][0];
      return first !== undefined && first.accuracy !== null ? job : undefined;
    });
    const first = afterFirst?.['round-history'][0] as Round;
    t.deepEqual(first.updates.map((u) => u['node-id']).sort(), [...nodeIds].sort(), 'round 1 counted all eight updates');
    t.deepEqual(first.stragglers, []);
    t.is(first.accuracy, expectedFirstRoundAccuracy(accepted.participants), 'the agents ran the real trainer on their own parts, from the same seeds');

    // The victim is killed -9 once it has taken round 2's task.
    await until('the victim to take round 2', () => Promise.resolve(/"round":2[,}][^\n]*"msg":"training"/.test(victim.stderr()) ? true : undefined), 60_000);
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedAtRound = 2;

    const job = await until('the job to finish', async () => {
      const j = await getJob(jobId);
      return j !== undefined && j.state !== 'training' ? j : undefined;
    }, 120_000);
    t.is(job.state, 'done', JSON.stringify(job));
    const rounds = job['round-history'];
    t.is(rounds.length, ROUNDS);
    const accuracies = rounds.map((r) => r.accuracy as number);
    t.log('held-out accuracy per round', accuracies);
    for (let i = 1; i < accuracies.length; i++) t.true((accuracies[i] as number) > (accuracies[i - 1] as number), `round ${i + 1} did not improve: ${accuracies.join(', ')}`);
    t.true((accuracies[ROUNDS - 1] as number) > 0.9, `final accuracy ${accuracies[ROUNDS - 1]}`);
    const survivors = nodeIds.slice(0, AGENTS - 1);
    for (const round of rounds.slice(killedAtRound)) {
      t.deepEqual(round.updates.map((u) => u['node-id']).sort(), [...survivors].sort(), `round ${round.round} went on with the seven others`);
      t.false(round.updates.some((u) => u['node-id'] === victim.nodeId));
    }
    // The round the victim died in closed without its update (unless it got it in first), the next ones named it or dropped it.
    const killedRound = rounds[killedAtRound - 1] as Round;
    t.true(killedRound.updates.length >= AGENTS - 1);
    t.true(survivors.every((id) => killedRound.updates.some((u) => u['node-id'] === id)));

    // SIGTERM: every survivor trained each round once and the region accepted every update.
    for (const agent of agents.slice(0, AGENTS - 1)) {
      const { code, line } = await agent.stop();
      t.is(code, 0, agent.stderr().slice(-2000));
      t.is(line['trainingsRun'], ROUNDS, `${agent.nodeId}: ${JSON.stringify(line)}`);
      t.is(line['updatesSent'], ROUNDS);
      t.is(line['updatesOwed'], 0);
      t.is(line['trainingsFailed'], 0);
      t.true((line['telemetryAccepted'] as number) > 0);
    }
  } finally {
    for (const agent of agents) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
    await region?.stop().catch(() => undefined);
    region = undefined;
    cleanup();
  }
});
