import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { createRegionProcess, type RegionProcess } from '../../app/region-process.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import { startTrainingAgent, type TrainingAgent } from '../helpers/training-agent.js';

/**
 * Federated rounds on a Kafka region: the same agents and job as on the
 * embedded one; the weights go to the compacted blob topic, the rounds to the
 * Kafka journal, and the job completes with held-out accuracy rising.
 */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

kafkaTest('kafka region: agents train the digits over rounds, weights kept in the blob topic; a job published on arc.scheduler.training runs too', async (t) => {
  t.timeout(240_000);
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const zone = `FED${run}`;
  const { dir, cleanup } = tempDir('arcnet-fed-kafka-');
  let region: RegionProcess | undefined = await createRegionProcess({
    geozones: [zone],
    journal: { kind: 'kafka', brokers, groupId: `fed-${run}`, clientId: `fed-${run}` },
    port: 0,
    security: { rateLimitPerSec: 10_000 },
    logger: pino({ level: 'silent' }),
  });
  const fleet: TrainingAgent[] = [];
  try {
    await region.start();
    await until('the region to be ready', 120_000, () => Promise.resolve(region?.ready() === true ? true : undefined));
    const origin = region.address as string;
    for (let i = 1; i <= 4; i++) fleet.push(await startTrainingAgent({ origin, nodeId: `kf-${run}-${i}`, geozone: zone }));
    await until('the nodes', 30_000, async () => {
      const nodes = (await (await fetch(`${origin}/v1/nodes?geozone=${zone}`)).json()) as { nodes: unknown[] };
      return nodes.nodes.length === 4 ? true : undefined;
    });
    const body = {
      'job-id': `kf-job-${run}`,
      geozone: zone,
      'model-id': 'digits-softmax',
      'dataset-uri': 'builtin:digits',
      rounds: 3,
      'min-participants': 3,
      // Every update counted (the test compares counts): wait for all four, not the quorum.
      'aggregate-when': 'all',
      participants: 4,
      'round-deadline-ms': 30_000,
      'checkpoint-uri': pathToFileURL(join(dir, 'ck')).href,
      'hyper-parameters': { 'learning-rate': 0.2, 'batch-size': 16, seed: 7 },
    };
    const accepted = await fetch(`${origin}/v1/training`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    t.is(accepted.status, 202, await accepted.clone().text());
    const job = await until('the job to end', 120_000, async () => {
      const doc = (await (await fetch(`${origin}/v1/training/kf-job-${run}`)).json()) as { state: string; 'round-history': { accuracy: number; updates: unknown[] }[] };
      return doc.state === 'training' ? undefined : doc;
    });
    t.is(job.state, 'done');
    const accuracies = job['round-history'].map((r) => r.accuracy);
    t.log('held-out accuracy per round', accuracies);
    t.deepEqual(job['round-history'].map((r) => r.updates.length), [4, 4, 4]);
    t.true((accuracies[2] as number) > (accuracies[0] as number));

    // The same kind of job published on arc.scheduler.training, as the central orchestrator does.
    const producer = testKafka(`fed-${run}-central`).producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await producer.send({ topic: 'arc.scheduler.training', acks: -1, messages: [{ key: zone, value: JSON.stringify({ ...body, 'job-id': `kf-job2-${run}`, rounds: 2, reason: 'published on Kafka' }) }] });
    } finally {
      await producer.disconnect();
    }
    const published = await until('the published job to end', 120_000, async () => {
      const response = await fetch(`${origin}/v1/training/kf-job2-${run}`);
      if (response.status !== 200) return undefined;
      const doc = (await response.json()) as { state: string; 'round-history': unknown[] };
      return doc.state === 'training' ? undefined : doc;
    });
    t.is(published.state, 'done');
    t.is(published['round-history'].length, 2);
  } finally {
    await Promise.all(fleet.map((a) => a.close()));
    await region?.stop('test done');
    region = undefined;
    cleanup();
  }
});
