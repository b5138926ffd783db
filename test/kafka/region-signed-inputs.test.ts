import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KafkaMessage } from 'kafkajs';
import { topicNames } from '../../adapters/kafka/topics.js';
import { geozonePartitioner } from '../../adapters/kafka/topics.js';
import { loadNodeIdentity, signNodeMessage } from '../../adapters/security/node-identity.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';
import { startLiveRegion } from '../helpers/live-region.js';
import { repoRoot } from '../helpers/repo.js';

/**
 * `arcnet region --kafka ... --node-ca CA`: telemetry on the shared input topic
 * counts only when a node certificate of the geozone it claims signed it. A
 * node of another geozone (or no signature at all) is dead-lettered with
 * ARC_ERR_PRODUCER_IDENTITY and never reaches an actor.
 */

const root = repoRoot();
const caFile = join(root, '.kafka', 'tls', 'ca.pem');

function nodeCert(nodeId: string, geozone: string, outDir: string): { certFile: string; keyFile: string } {
  const made = JSON.parse(execFileSync(process.execPath, [join(root, 'scripts', 'kafka', 'kafka.mjs'), 'node-cert', '--node-id', nodeId, '--geozone', geozone, '--out', outDir], { encoding: 'utf8' })) as {
    cert: string;
    key: string;
  };
  return { certFile: made.cert, keyFile: made.key };
}

kafkaTest('kafka region with --node-ca: telemetry signed by a node of another geozone, or unsigned, is dead-lettered; a node of its own geozone is taken', async (t) => {
  t.timeout(240_000, 'signed inputs');
  if (!existsSync(join(root, '.kafka', 'tls', 'ca-key.pem'))) {
    t.fail('the local broker\'s CA (.kafka/tls) is needed: npm run kafka:start makes it');
    return;
  }
  const run = randomUUID().slice(0, 6).toUpperCase().replace(/[^A-Z0-9]/g, 'X');
  const [home, other] = [`SI${run}A`, `SI${run}B`];
  const zones = [home, other];
  const { dir, cleanup } = tempDir();
  const good = loadNodeIdentity(nodeCert(`good-${run}`, home, join(dir, 'good')));
  const foreign = loadNodeIdentity(nodeCert(`foreign-${run}`, other, join(dir, 'foreign')));
  const region = await startLiveRegion(['--kafka', brokers.join(','), '--geozones', zones.join(','), '--group', `signed-${run}`, '--node-ca', caFile, '--sim-nodes', '0']);
  const kafka = testKafka(`signed-${run}`);
  const producer = kafka.producer({ idempotent: true, createPartitioner: geozonePartitioner(zones) });
  const deadLetters = kafka.consumer({ groupId: `signed-dl-${run}` });
  const names = topicNames();
  const dead: KafkaMessage[] = [];
  try {
    const deadline = Date.now() + 120_000;
    while ((await fetch(`${region.origin}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`not ready:\n${region.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await deadLetters.connect();
    await deadLetters.subscribe({ topics: [names.deadLetter], fromBeginning: true });
    await deadLetters.run({
      eachMessage: ({ message }) => {
        // Only this region's refusals (regions of other tests share the topics and dead-letter by their own CAs).
        if (message.headers?.['x-refused-by']?.toString() === `signed-${run}` && message.value?.toString().includes(run) === true) dead.push(message);
        return Promise.resolve();
      },
    });
    await producer.connect();
    const telemetry = (nodeId: string): string =>
      JSON.stringify({
        'node-id': nodeId,
        geozone: home,
        geohash: '9q9hvu',
        'energy-source': 'grid',
        'battery-level': 1,
        'gpu-utilization': 0.2,
        'models-loaded': ['llama-3-70b'],
        timestamp: new Date().toISOString(),
      });
    const send = async (value: string, headers: Record<string, string>): Promise<void> => {
      await producer.send({ topic: names.telemetry, acks: -1, messages: [{ key: home, value, headers }] });
    };
    const impostor = telemetry(`foreign-${run}`);
    await send(impostor, signNodeMessage(foreign, names.telemetry, home, impostor));
    await send(telemetry(`unsigned-${run}`), {});
    const genuine = telemetry(`good-${run}`);
    await send(genuine, signNodeMessage(good, names.telemetry, home, genuine));

    const known = async (nodeId: string): Promise<boolean> => (await fetch(`${region.origin}/v1/nodes/${nodeId}`)).status === 200;
    const until = Date.now() + 60_000;
    while (!(await known(`good-${run}`)) || dead.length < 2) {
      if (Date.now() > until) throw new Error(`good node known: ${await known(`good-${run}`)}, dead letters: ${dead.length}\n${region.stderr().slice(-3_000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    t.false(await known(`foreign-${run}`), 'a node of another geozone cannot speak for this one');
    t.false(await known(`unsigned-${run}`), 'nor can an unsigned producer');
    t.deepEqual(
      dead.map((m) => m.headers?.['x-error-code']?.toString()),
      ['ARC_ERR_PRODUCER_IDENTITY', 'ARC_ERR_PRODUCER_IDENTITY'],
    );
    // (The group reads the shared topic from its start: earlier unsigned telemetry is dead-lettered too.)
    const line = await region.stop();
    t.true(((line['edge'] as Record<string, number>)['deadLettered'] ?? 0) >= 2);
  } finally {
    region.child.kill('SIGKILL');
    await deadLetters.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    cleanup();
  }
});
