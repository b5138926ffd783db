import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { kafkaTest } from '../helpers/kafka-broker.js';
import { newRun, startKafkaAgents, until, type KafkaAgents } from '../helpers/kafka-agents.js';

/**
 * `arcnet agent --kafka` in a federated job: the agents take their `train` messages
 * from arc.scheduler.training, read each round's starting weights by hash from the
 * region's blob topic (arc.blobs), train, and produce their updates on
 * arc.result.training, signed with their node certificates, to a Kafka region that
 * requires signed input (--node-ca). The job completes with every update counted.
 */

interface Round {
  round: number;
  updates: { 'node-id': string }[];
  accuracy: number | null;
}

kafkaTest('arcnet agent --kafka trains a federated job: train messages from the training topic, weights by hash from the blob topic, signed updates', async (t) => {
  t.timeout(200_000, 'agents training on Kafka');
  const run = newRun();
  const nodeIds = [1, 2, 3].map((i) => `kt-${run.toLowerCase()}-${i}`);
  let setup: KafkaAgents | undefined;
  try {
    setup = await startKafkaAgents({ zonePrefix: `AT${run}`, group: `agent-train-${run}`, nodeIds, agentArgs: [] });
    const { origin, zone, dir, agents, diagnostics } = setup;
    const known = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/nodes/${id}`)).status === 200;
    await until('the agents to be known', async () => (await Promise.all(nodeIds.map(known))).every(Boolean), 120_000, diagnostics);

    const jobId = `kt-${run.toLowerCase()}`;
    const posted = await fetch(`${origin}/v1/training`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        'job-id': jobId,
        geozone: zone,
        'model-id': 'digits-softmax',
        'dataset-uri': 'builtin:digits',
        rounds: 3,
        'min-participants': 3,
        participants: 3,
        'round-deadline-ms': 45_000,
        'checkpoint-uri': pathToFileURL(join(dir, 'checkpoints')).href,
        'hyper-parameters': { 'learning-rate': 0.5, 'local-epochs': 3, 'batch-size': 16, seed: 7 },
      }),
    });
    t.is(posted.status, 202, await posted.clone().text());
    let job: { state: string; 'round-history': Round[] } | undefined;
    await until(
      'the job to finish',
      async () => {
        const response = await fetch(`${origin}/v1/training/${jobId}`);
        job = response.status === 200 ? ((await response.json()) as typeof job) : undefined;
        return job !== undefined && job.state !== 'training';
      },
      150_000,
      () => `${JSON.stringify(job)}\n${diagnostics()}`,
    );
    const done = job as { state: string; 'round-history': Round[] };
    t.is(done.state, 'done', JSON.stringify(done));
    t.is(done['round-history'].length, 3);
    for (const round of done['round-history']) t.deepEqual(round.updates.map((u) => u['node-id']).sort(), [...nodeIds].sort(), `round ${round.round} counted every agent`);
    const accuracies = done['round-history'].map((r) => r.accuracy as number);
    t.log('held-out accuracy per round', accuracies);
    t.true((accuracies[2] as number) > (accuracies[0] as number));
    t.true((accuracies[2] as number) > 0.85);

    for (const agent of agents) {
      const { code, line } = await agent.stop();
      t.is(code, 0);
      t.is(line['trainingsRun'], 3, JSON.stringify(line));
      t.is(line['updatesSent'], 3);
      t.is(line['updatesOwed'], 0);
    }
  } finally {
    await setup?.close();
  }
});
