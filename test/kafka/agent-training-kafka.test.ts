import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KafkaMessage } from 'kafkajs';
import { trainingTopics } from '../../actors/training-wire.js';
import { deadLetterHeaders } from '../../adapters/kafka/dead-letter.js';
import { loadNodeIdentity, signNodeMessage } from '../../adapters/security/node-identity.js';
import { sha256Hex } from '../../runtime/blob-store.js';
import { weightsToBytes } from '../../training/index.js';
import { makeCertificates } from '../helpers/certificates.js';
import { kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import { newRun, nodeCert, startKafkaAgents, until, type KafkaAgents } from '../helpers/kafka-agents.js';

/**
 * Eight `arcnet agent --kafka` processes in a federated job: the agents take their
 * `train` messages from arc.scheduler.training, read each round's starting weights
 * by hash from the region's blob topic (arc.blobs), train, and produce their
 * updates on arc.result.training, signed with their node certificates, to a Kafka
 * region that requires signed input (--node-ca). Every round counts all eight
 * updates and held-out accuracy rises. Updates that are unsigned, badly signed,
 * signed under another CA, or signed by a node of another geozone are
 * dead-lettered with ARC_ERR_PRODUCER_IDENTITY and never counted.
 */

const AGENTS = 8;
const ROUNDS = 3;
/** The digits model: 64 features x 10 classes + 10 biases. */
const DIGITS_PARAMETERS = 650;
const DEAD_LETTER_TOPIC = 'arc.deadletter';

interface Round {
  round: number;
  updates: { 'node-id': string; 'weights-sha256': string }[];
  accuracy: number | null;
}

kafkaTest('eight arcnet agent --kafka processes train a federated job with signed updates; forged updates are dead-lettered and never counted', async (t) => {
  t.timeout(300_000, 'eight agents training on Kafka');
  const run = newRun();
  const nodeIds = Array.from({ length: AGENTS }, (_, i) => `kt-${run.toLowerCase()}-${i + 1}`);
  const jobId = `kt-${run.toLowerCase()}`;
  const kafka = testKafka(`agent-train-${run}`);
  const producer = kafka.producer({ idempotent: true });
  const deadLetters = kafka.consumer({ groupId: `agent-train-dl-${run}` });
  const dead: KafkaMessage[] = [];
  const foreignCa = makeCertificates();
  let setup: KafkaAgents | undefined;
  try {
    setup = await startKafkaAgents({ zonePrefix: `AT${run}`, group: `agent-train-${run}`, nodeIds, agentArgs: [] });
    const { origin, zone, zones, dir, agents, diagnostics } = setup;
    const known = async (id: string): Promise<boolean> => (await fetch(`${origin}/v1/nodes/${id}`)).status === 200;
    await until('the agents to be known', async () => (await Promise.all(nodeIds.map(known))).every(Boolean), 120_000, diagnostics);

    await deadLetters.connect();
    await deadLetters.subscribe({ topics: [DEAD_LETTER_TOPIC], fromBeginning: true });
    await deadLetters.run({
      eachMessage: ({ message }) => {
        // Only this region's refusals: regions of other tests read the same shared topics with other geozone
        // lists and CAs, and dead-letter what they cannot verify (these agents' telemetry too).
        if (message.headers?.[deadLetterHeaders.refusedBy]?.toString() === `agent-train-${run}` && message.value?.toString().includes(`"job-id":"${jobId}"`) === true) dead.push(message);
        return Promise.resolve();
      },
    });
    await producer.connect();

    const posted = await fetch(`${origin}/v1/training`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        'job-id': jobId,
        geozone: zone,
        'model-id': 'digits-softmax',
        'dataset-uri': 'builtin:digits',
        rounds: ROUNDS,
        'min-participants': 6,
        // Every agent's update is waited for: the test checks each round counted all eight.
        'aggregate-when': 'all',
        participants: AGENTS,
        'round-deadline-ms': 90_000,
        'checkpoint-uri': pathToFileURL(join(dir, 'checkpoints')).href,
        'hyper-parameters': { 'learning-rate': 0.5, 'local-epochs': 3, 'batch-size': 16, seed: 7 },
      }),
    });
    t.is(posted.status, 202, await posted.clone().text());

    // Round 1 is open: forged updates in the name of the first agent, each with weights no agent sends.
    const victim = nodeIds[0] as string;
    const forgedWeights = weightsToBytes(new Float32Array(DIGITS_PARAMETERS).fill(0.25));
    const forgedSha = sha256Hex(forgedWeights);
    const forged = (nodeId: string): string =>
      JSON.stringify({ 'job-id': jobId, round: 1, 'node-id': nodeId, 'sample-count': 100, weights: Buffer.from(forgedWeights).toString('base64') });
    const topic = trainingTopics.result;
    const victimIdentity = loadNodeIdentity(setup.nodeCerts.get(victim) as { certFile: string; keyFile: string });
    const outsider = loadNodeIdentity(nodeCert({ caCert: foreignCa.paths.caCert, caKey: foreignCa.paths.caKey }, victim, zone, join(dir, 'outsider')));
    const neighbourId = `kt-${run.toLowerCase()}-neighbour`;
    const neighbour = loadNodeIdentity(nodeCert(setup.nodeCa, neighbourId, zones[0] as string, join(dir, 'neighbour')));
    const value = forged(victim);
    const send = (key: string, body: string, headers: Record<string, string>): Promise<unknown> =>
      producer.send({ topic, acks: -1, messages: [{ partition: 0, key, value: body, headers }] });
    // 1. unsigned; 2. the victim's certificate, but the signature is over other bytes;
    // 3. a certificate with the victim's name from a CA the region does not trust;
    // 4. correctly signed by a real node of the other geozone, for a job of this one.
    await send(zone, value, {});
    await send(zone, value, signNodeMessage(victimIdentity, topic, zone, value.replace('"sample-count":100', '"sample-count":101')));
    await send(zone, value, signNodeMessage(outsider, topic, zone, value));
    const neighbourValue = forged(neighbourId);
    await send(zones[0] as string, neighbourValue, signNodeMessage(neighbour, topic, zones[0], neighbourValue));

    let job: { state: string; 'round-history': Round[] } | undefined;
    await until(
      'the job to finish and the four forged updates to be dead-lettered',
      async () => {
        const response = await fetch(`${origin}/v1/training/${jobId}`);
        job = response.status === 200 ? ((await response.json()) as typeof job) : undefined;
        return job !== undefined && job.state !== 'training' && dead.length >= 4;
      },
      240_000,
      () => `${JSON.stringify(job)}\ndead letters: ${dead.length}\n${diagnostics()}`,
    );
    const done = job as { state: string; 'round-history': Round[] };
    t.is(done.state, 'done', JSON.stringify(done));
    t.is(done['round-history'].length, ROUNDS);
    for (const round of done['round-history']) {
      t.deepEqual(round.updates.map((u) => u['node-id']).sort(), [...nodeIds].sort(), `round ${round.round} counted every agent`);
      t.false(round.updates.some((u) => u['weights-sha256'] === forgedSha), `round ${round.round} counted no forged weights`);
    }
    const accuracies = done['round-history'].map((r) => r.accuracy as number);
    t.log('held-out accuracy per round', accuracies);
    for (let i = 1; i < accuracies.length; i++) t.true((accuracies[i] as number) > (accuracies[i - 1] as number), `accuracy did not rise: ${accuracies.join(', ')}`);
    t.true((accuracies[ROUNDS - 1] as number) > 0.85);

    const letters = dead.map((d) => `${d.headers?.[deadLetterHeaders.code]?.toString() ?? '?'} ${d.headers?.[deadLetterHeaders.message]?.toString() ?? ''}`);
    t.is(dead.length, 4, `each forged update dead-lettered once; the dead letters:\n${letters.join('\n')}`);
    for (const letter of dead) {
      t.is(letter.headers?.[deadLetterHeaders.code]?.toString(), 'ARC_ERR_PRODUCER_IDENTITY');
      t.is(letter.headers?.[deadLetterHeaders.sourceTopic]?.toString(), topic);
    }
    const reasons = dead.map((d) => d.headers?.[deadLetterHeaders.message]?.toString() ?? '');
    t.log('dead-letter reasons', reasons);
    t.true(reasons.some((r) => r.includes(`job ${jobId} trains in ${zone}`)), 'the neighbour is refused for its geozone');

    for (const agent of agents) {
      const { code, line } = await agent.stop();
      t.is(code, 0);
      t.is(line['trainingsRun'], ROUNDS, JSON.stringify(line));
      t.is(line['updatesSent'], ROUNDS);
      t.is(line['updatesOwed'], 0);
    }
  } finally {
    await deadLetters.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await setup?.close();
    foreignCa.cleanup();
  }
});
