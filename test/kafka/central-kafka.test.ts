import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hpcJobWireSchema, hpcPendingWireSchema } from '../../actors/central/training-wire.js';
import { federatedTaskSchema, type FederatedTaskV1 } from '../../actors/training-wire.js';
import { makeDataset } from '../central/helpers.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import { startLiveRegion } from '../helpers/live-region.js';

/**
 * `arcnet central --kafka`: its one shard owned by a member of its consumer
 * group, regional summaries and a training job read from the seed's topics,
 * and the federated job's FederatedTask v1 produced on arc.scheduler.training.
 */
kafkaTest('central on Kafka: a TrainingJob on arc.job.submission becomes a FederatedTask on arc.scheduler.training for the best-ranked geozone', async (t) => {
  t.timeout(240_000, 'central on kafka');
  const run = randomUUID().slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const geozone = `K${run}`;
  const { dir, cleanup } = tempDir();
  const central = await startLiveRegion(['--kafka', brokers.join(','), '--group', `central-${run}`, '--central-shard', `CENTRAL-${run}`, '--hpc-dir', join(dir, 'hpc'), '--hpc', 'local'], process.env, 'central');
  const kafka = testKafka(`central-${run}`);
  const producer = kafka.producer();
  const observer = kafka.consumer({ groupId: `central-observer-${run}` });
  const tasks: FederatedTaskV1[] = [];
  const keys: string[] = [];
  try {
    const deadline = Date.now() + 120_000;
    while ((await fetch(`${central.origin}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`central not ready:\n${central.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await observer.connect();
    await observer.subscribe({ topics: ['arc.scheduler.training'], fromBeginning: true });
    await observer.run({
      eachMessage: ({ message }) => {
        const parsed = federatedTaskSchema.safeParse(JSON.parse(message.value?.toString() ?? '{}'));
        if (parsed.success && parsed.data['job-id'] === `fed-${run}`) {
          tasks.push(parsed.data);
          keys.push(message.key?.toString() ?? '');
        }
        return Promise.resolve();
      },
    });
    await producer.connect();
    // A geozone no earlier run can outrank (the topic keeps their summaries): all of its nodes on cogen,
    // and more of them than any run before (the count grows with the clock).
    const nodes = Math.floor(Date.now() / 1000);
    await producer.send({
      topic: 'arc.summary.regional',
      messages: [
        {
          key: geozone,
          value: JSON.stringify({
            'geozone-id': geozone,
            'total-nodes': nodes,
            'active-nodes': nodes,
            'avg-gpu-util': 0.2,
            'energy-breakdown': { cogen: nodes, grid: 0, battery: 0 },
            'open-reservations': 0,
            timestamp: new Date().toISOString(),
          }),
        },
      ],
    });
    const view = async (): Promise<boolean> => {
      const body = (await (await fetch(`${central.origin}/v1/global`)).json()) as { geozones: { geozone: string }[] };
      return body.geozones.some((g) => g.geozone === geozone);
    };
    while (!(await view())) {
      if (Date.now() > deadline) throw new Error(`the summary never reached the global view:\n${central.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await producer.send({
      topic: 'arc.job.submission',
      messages: [
        {
          value: JSON.stringify({
            'job-id': `fed-${run}`,
            'dataset-uri': 'builtin:digits',
            'dataset-size-gb': 0.001,
            'estimated-flops': 1e12,
            'checkpoint-uri': `file://${join(dir, 'fed.ckpt')}`,
            urgency: 'normal',
            'model-id': 'digits-softmax',
          }),
        },
      ],
    });
    while (tasks.length === 0) {
      if (Date.now() > deadline) throw new Error(`no FederatedTask seen:\n${central.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    t.like(tasks[0], { 'job-id': `fed-${run}`, geozone, 'model-id': 'digits-softmax', 'dataset-uri': 'builtin:digits' });
    t.deepEqual(keys, [geozone], 'keyed by the geozone whose region runs it');
    const job = (await (await fetch(`${central.origin}/v1/jobs/fed-${run}`)).json()) as Record<string, unknown>;
    t.like(job, { target: 'federated', state: 'published', geozone });
    const line = await central.stop();
    t.like(line, { role: 'central', mode: 'kafka', geozones: [`CENTRAL-${run}`] });
    t.is(typeof line['stateHash'], 'string');
  } finally {
    await observer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    if (central.child.exitCode === null) central.child.kill('SIGKILL');
    cleanup();
  }
});

kafkaTest('central on Kafka: kill -9 of the member that owns the orchestrator; the other member of the group takes its shard over with its jobs', async (t) => {
  t.timeout(240_000, 'central failover');
  const run = randomUUID().slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const { dir, cleanup } = tempDir();
  const args = ['--kafka', brokers.join(','), '--group', `central-fo-${run}`, '--central-shard', `CF-${run}`, '--hpc-dir', join(dir, 'hpc'), '--hpc', 'local'];
  const first = await startLiveRegion(args, process.env, 'central');
  const second = await startLiveRegion(args, process.env, 'central');
  const owned = async (origin: string): Promise<string[]> => {
    const body = (await (await fetch(`${origin}/v1/ownership`)).json()) as { geozones: { geozone: string; ready: boolean }[] };
    return body.geozones.filter((g) => g.ready).map((g) => g.geozone);
  };
  const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 120_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n--- first:\n${first.stderr().slice(-2000)}\n--- second:\n${second.stderr().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  try {
    await until('one member to own the orchestrator', async () => (await owned(first.origin)).length + (await owned(second.origin)).length === 1);
    const [owner, other] = (await owned(first.origin)).length === 1 ? [first, second] : [second, first];
    const job = (jobId: string): string =>
      JSON.stringify({ 'job-id': jobId, 'dataset-uri': 'builtin:digits', 'dataset-size-gb': 0.001, 'estimated-flops': 1e12, 'checkpoint-uri': `file://${join(dir, jobId)}`, urgency: 'normal' });
    const before = await fetch(`${owner.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: job(`before-${run}`) });
    t.is(before.status, 202);
    t.is((await fetch(`${other.origin}/v1/jobs/before-${run}`)).status, 422, 'the other member does not own the orchestrator');

    const exited = new Promise((resolve) => owner.child.once('exit', resolve));
    owner.child.kill('SIGKILL');
    await exited;
    await until('the other member to take the orchestrator over', async () => (await owned(other.origin)).length === 1);
    const recovered = (await (await fetch(`${other.origin}/v1/jobs/before-${run}`)).json()) as Record<string, unknown>;
    t.like(recovered, { 'job-id': `before-${run}`, target: 'federated' });
    const after = await fetch(`${other.origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: job(`after-${run}`) });
    t.is(after.status, 202);
    const line = await other.stop();
    t.like(line, { role: 'central', mode: 'kafka', geozones: [`CF-${run}`] });
  } finally {
    for (const live of [first, second]) if (live.child.exitCode === null && live.child.signalCode === null) live.child.kill('SIGKILL');
    cleanup();
  }
});

kafkaTest('central on Kafka: a 2e18-FLOP TrainingJob on arc.job.submission goes on arc.bridge.pending, is staged, goes on ornl.bridge.ingress naming the staged copy, and completes', async (t) => {
  t.timeout(240_000, 'central hpc on kafka');
  const run = randomUUID().slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const jobId = `hpc-${run}`;
  const { dir, cleanup } = tempDir();
  const hpcDir = join(dir, 'hpc');
  const central = await startLiveRegion(['--kafka', brokers.join(','), '--group', `central-hpc-${run}`, '--central-shard', `CH-${run}`, '--hpc-dir', hpcDir, '--hpc', 'local', '--poll-every', '200ms'], process.env, 'central');
  const kafka = testKafka(`central-hpc-${run}`);
  const producer = kafka.producer();
  const observer = kafka.consumer({ groupId: `central-hpc-observer-${run}` });
  const seen: { topic: string; message: Record<string, unknown> }[] = [];
  try {
    const deadline = Date.now() + 120_000;
    const until = async (what: string, check: () => Promise<boolean> | boolean): Promise<void> => {
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${central.stderr().slice(-3000)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    await until('central ready', async () => (await fetch(`${central.origin}/readyz`)).status === 200);
    await observer.connect();
    await observer.subscribe({ topics: ['arc.bridge.pending', 'ornl.bridge.ingress'], fromBeginning: true });
    await observer.run({
      eachMessage: ({ topic, message }) => {
        const parsed = JSON.parse(message.value?.toString() ?? '{}') as Record<string, unknown>;
        if (parsed['job-id'] === jobId) seen.push({ topic, message: parsed });
        return Promise.resolve();
      },
    });
    const dataset = join(dir, 'dataset.bin');
    makeDataset(dataset, 1024 * 1024);
    const checkpoint = join(dir, 'ckpt', `${jobId}.json`);
    await producer.connect();
    await producer.send({
      topic: 'arc.job.submission',
      messages: [
        {
          value: JSON.stringify({
            'job-id': jobId,
            'dataset-uri': pathToFileURL(dataset).href,
            'dataset-size-gb': 0.001,
            'estimated-flops': 2e18,
            'checkpoint-uri': pathToFileURL(checkpoint).href,
            urgency: 'normal',
          }),
        },
      ],
    });
    let job: Record<string, unknown> = {};
    await until('the job completed', async () => {
      const reply = await fetch(`${central.origin}/v1/jobs/${jobId}`);
      if (reply.status !== 200) return false;
      job = (await reply.json()) as Record<string, unknown>;
      if (job['state'] === 'failed' || job['state'] === 'cancelled') throw new Error(JSON.stringify(job));
      return job['state'] === 'completed';
    });
    t.like(job, { target: 'hpc', reason: 'estimatedFlops > 1e18', 'bytes-transferred': 1024 * 1024 });
    t.true(existsSync(checkpoint));
    await until('both HpcJob v1 messages on Kafka', () => seen.length >= 2);
    t.deepEqual(seen.map((m) => m.topic), ['arc.bridge.pending', 'ornl.bridge.ingress']);
    t.like(hpcPendingWireSchema.parse(seen[0]?.message), { 'job-id': jobId, 'staged-uri': null, 'estimated-flops': 2e18 });
    const staged = join(hpcDir, 'staging', jobId, 'dataset.bin');
    t.like(hpcJobWireSchema.parse(seen[1]?.message), { 'job-id': jobId, 'staged-uri': pathToFileURL(staged).href, 'batch-job-name': jobId });
    t.true(existsSync(staged));
    const line = await central.stop();
    t.like(line, { role: 'central', mode: 'kafka' });
  } finally {
    await observer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    if (central.child.exitCode === null) central.child.kill('SIGKILL');
    cleanup();
  }
});
