import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, Partitioners, type Admin, type Consumer } from 'kafkajs';
import { describeKafkaError } from '../../adapters/kafka/retry.js';
import { describeRetention, ensureTopics, ensureTopicsAt, geozonePartition, geozonePartitioner, topicNames, topicSpecs, type TopicSpec } from '../../adapters/kafka/topics.js';
import { kafkaTopicsCommand } from '../../cli/kafka-topics-command.js';
import { ArcError } from '../../runtime/errors.js';
import { brokers, kafkaTest, testKafka } from '../helpers/kafka-broker.js';

const GEOZONES = ['CAISO', 'ERCOT', 'PJM'] as const;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The seed's table (plus the runtime's own topics): retention.ms and cleanup.policy by unprefixed name. */
const expected: Record<string, { retention: string; cleanup: string; partitions: number }> = {
  'arc.telemetry.node': { retention: String(7 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.request.inference': { retention: String(DAY), cleanup: 'delete', partitions: 3 },
  'arc.command.dispatch.CAISO': { retention: String(HOUR), cleanup: 'delete', partitions: 1 },
  'arc.command.dispatch.ERCOT': { retention: String(HOUR), cleanup: 'delete', partitions: 1 },
  'arc.command.dispatch.PJM': { retention: String(HOUR), cleanup: 'delete', partitions: 1 },
  'arc.result.inference': { retention: String(7 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.job.submission': { retention: String(30 * DAY), cleanup: 'delete', partitions: 1 },
  'arc.bridge.pending': { retention: String(30 * DAY), cleanup: 'delete', partitions: 1 },
  'ornl.bridge.ingress': { retention: String(90 * DAY), cleanup: 'delete', partitions: 1 },
  'arc.scheduler.training': { retention: String(30 * DAY), cleanup: 'delete', partitions: 1 },
  'arc.summary.regional': { retention: String(30 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.event.system': { retention: String(90 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.decision.inference': { retention: String(7 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.reservation.ended': { retention: String(7 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.deadletter': { retention: String(30 * DAY), cleanup: 'delete', partitions: 3 },
  'arc.journal.CAISO': { retention: '-1', cleanup: 'delete', partitions: 1 },
  'arc.journal.ERCOT': { retention: '-1', cleanup: 'delete', partitions: 1 },
  'arc.journal.PJM': { retention: '-1', cleanup: 'delete', partitions: 1 },
  'arc.snapshots': { retention: '-1', cleanup: 'compact', partitions: 1 },
};

function client(run: string, clientLog: string[]): Kafka {
  return testKafka(`topics-test-${run}`, clientLog);
}

async function deleteTopics(t: ExecutionContext, admin: Admin, names: string[]): Promise<void> {
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: names, timeout: 30_000 });
  } catch (err) {
    t.log(`could not delete the test topics: ${String(err)}`);
  }
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

// ------------------------------------------------------------------ without a broker

test('topicSpecs: the seed table for sorted, deduplicated geozones, with a prefix', (t) => {
  t.is(
    topicSpecs(['CAISO'], { prefix: 'x.' }).find((s) => s.name === 'x.arc.snapshots')?.configEntries.find((e) => e.name === 'max.message.bytes')?.value,
    String(64 * 1024 * 1024),
    'snapshots may be large',
  );
  const specs = topicSpecs(['PJM', 'CAISO', 'ERCOT', 'CAISO'], { prefix: 'x.' });
  t.deepEqual(specs.map((s) => s.name).sort(), Object.keys(expected).map((n) => `x.${n}`).sort());
  for (const spec of specs) {
    const want = expected[spec.name.slice(2)];
    t.truthy(want, spec.name);
    t.is(spec.numPartitions, want?.partitions ?? -1, spec.name);
    const config = Object.fromEntries(spec.configEntries.map((e) => [e.name, e.value]));
    t.is(config['retention.ms'], want?.retention, spec.name);
    t.is(config['cleanup.policy'], want?.cleanup, spec.name);
  }
  t.is(topicNames({ prefix: 'x.' }).dispatch('PJM'), 'x.arc.command.dispatch.PJM');
  t.throws(() => topicSpecs([]), { instanceOf: ArcError, message: /at least one geozone/ });
  t.throws(() => topicSpecs(['caiso']), { instanceOf: ArcError, message: /bad geozone/ });
});

test('geozonePartition: index in the sorted list; an unknown geozone is a coded error', (t) => {
  t.deepEqual(
    GEOZONES.map((g) => geozonePartition(g, ['PJM', 'ERCOT', 'CAISO'])),
    [0, 1, 2],
  );
  const error = t.throws(() => geozonePartition('MISO', GEOZONES), { instanceOf: ArcError });
  t.is(error.code, 'ARC_ERR_VALIDATION');
  t.regex(error.message, /MISO/);
});

test('geozonePartitioner: explicit partition kept, single-partition topics take anything, bad keys refused', (t) => {
  const partition = geozonePartitioner(GEOZONES)();
  const meta = (n: number) => Array.from({ length: n }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }));
  t.is(partition({ topic: 'a', partitionMetadata: meta(3), message: { key: 'PJM', value: 'v' } }), 2);
  t.is(partition({ topic: 'a', partitionMetadata: meta(3), message: { key: Buffer.from('ERCOT'), value: 'v' } }), 1);
  t.is(partition({ topic: 'a', partitionMetadata: meta(3), message: { key: 'PJM', value: 'v', partition: 0 } }), 0);
  t.is(partition({ topic: 'a', partitionMetadata: meta(1), message: { key: 'anything', value: 'v' } }), 0);
  t.is(t.throws(() => partition({ topic: 'a', partitionMetadata: meta(3), message: { key: 'MISO', value: 'v' } }), { instanceOf: ArcError }).code, 'ARC_ERR_VALIDATION');
  t.is(t.throws(() => partition({ topic: 'a', partitionMetadata: meta(3), message: { value: 'v' } }), { instanceOf: ArcError }).code, 'ARC_ERR_VALIDATION');
  t.is(t.throws(() => partition({ topic: 'a', partitionMetadata: meta(2), message: { key: 'PJM', value: 'v' } }), { instanceOf: ArcError }).code, 'ARC_ERR_USAGE');
});

// ------------------------------------------------------------------ on the broker

kafkaTest('ensureTopics creates every topic with the seed retention, per-geozone dispatch, 3-partition inputs, compacted snapshots; a second run creates nothing', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const admin = client(run, clientLog).admin();
  const specs = topicSpecs(GEOZONES, { prefix });
  const names = specs.map((s) => s.name);
  try {
    await admin.connect();
    const first = await ensureTopics(admin, specs);
    t.deepEqual([...first.created].sort(), [...names].sort(), 'all created on the first run');
    t.deepEqual(first.existing, []);

    const retention = await describeRetention(admin, names);
    for (const [name, want] of Object.entries(expected)) {
      t.deepEqual(retention[prefix + name], { retentionMs: want.retention, cleanupPolicy: want.cleanup }, name);
    }
    const meta = await admin.fetchTopicMetadata({ topics: names });
    const partitions = Object.fromEntries(meta.topics.map((m) => [m.name.slice(prefix.length), m.partitions.length]));
    t.deepEqual(partitions, Object.fromEntries(Object.entries(expected).map(([n, e]) => [n, e.partitions])));
    for (const g of GEOZONES) t.true(names.includes(`${prefix}arc.command.dispatch.${g}`), `dispatch topic for ${g}`);

    const second = await ensureTopics(admin, specs);
    t.deepEqual(second.created, [], 'nothing created on the second run');
    t.deepEqual([...second.existing].sort(), [...names].sort());

    // The CLI command: same topics, all existing now.
    const viaCli = await kafkaTopicsCommand({ brokers, geozones: GEOZONES, prefix });
    t.deepEqual(viaCli.created, []);
    t.is(viaCli.existing.length, names.length);
  } catch (err) {
    t.log(clientLog.slice(-40).join('\n'));
    throw err;
  } finally {
    await deleteTopics(t, admin, names);
    await admin.disconnect();
  }
});

kafkaTest('concurrent ensureTopics runs each topic created exactly once', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const kafka = client(run, clientLog);
  const admins = [kafka.admin(), kafka.admin()];
  const specs = topicSpecs(['CAISO'], { prefix });
  try {
    await Promise.all(admins.map((a) => a.connect()));
    const results = await Promise.all(admins.map((a) => ensureTopics(a, specs)));
    const created = results.flatMap((r) => r.created).sort();
    t.deepEqual(created, specs.map((s) => s.name).sort(), 'every topic created by exactly one of the two');
    for (const r of results) t.is(r.created.length + r.existing.length, specs.length);
  } catch (err) {
    t.log(clientLog.slice(-40).join('\n'));
    throw err;
  } finally {
    await deleteTopics(t, admins[0] as Admin, specs.map((s) => s.name));
    await Promise.allSettled(admins.map((a) => a.disconnect()));
  }
});

kafkaTest('the geozone partitioner puts CAISO, ERCOT and PJM messages on partitions 0, 1 and 2', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const kafka = client(run, clientLog);
  const admin = kafka.admin();
  // Unsorted on purpose: the partition order is the sorted one.
  const geozones = ['PJM', 'CAISO', 'ERCOT'];
  const specs = topicSpecs(geozones, { prefix });
  const topic = topicNames({ prefix }).telemetry;
  const producer = kafka.producer({ createPartitioner: geozonePartitioner(geozones), idempotent: true, retry: { retries: 5 } });
  const consumer: Consumer = kafka.consumer({ groupId: `topics-test-${run}`, sessionTimeout: 30_000, rebalanceTimeout: 60_000 });
  try {
    await admin.connect();
    await ensureTopics(admin, specs);
    await producer.connect();
    const sent: { key: string; partition: number }[] = [];
    for (let i = 0; i < 4; i++) {
      for (const g of GEOZONES) {
        const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: g, value: `${g}-${i}` }] });
        sent.push({ key: g, partition: meta?.partition ?? -1 });
      }
    }
    for (const { key, partition } of sent) t.is(partition, geozonePartition(key, geozones), `send result for ${key}`);

    // Unknown or missing keys are refused by the producer.
    const refused = await t.throwsAsync(producer.send({ topic, acks: -1, messages: [{ key: 'MISO', value: 'x' }] }));
    t.regex(refused?.message ?? '', /unknown geozone 'MISO'/);

    // Read back: each message's partition as the broker stored it.
    const got: { key: string; value: string; partition: number }[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        got.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '', partition });
        return Promise.resolve();
      },
    });
    for (let waited = 0; got.length < sent.length && waited < 60_000; waited += 100) await sleep(100);
    t.is(got.length, sent.length, 'every message read back');
    const expectedPartition: Record<string, number> = { CAISO: 0, ERCOT: 1, PJM: 2 };
    for (const m of got) t.is(m.partition, expectedPartition[m.key] ?? -1, `${m.value} on its geozone's partition`);
    const order = (p: number) => got.filter((m) => m.partition === p).map((m) => m.value);
    t.deepEqual(order(0), ['CAISO-0', 'CAISO-1', 'CAISO-2', 'CAISO-3']);
    t.deepEqual(order(2), ['PJM-0', 'PJM-1', 'PJM-2', 'PJM-3']);
  } catch (err) {
    t.log(clientLog.slice(-40).join('\n'));
    throw err;
  } finally {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    await deleteTopics(t, admin, specs.map((s) => s.name));
    await admin.disconnect();
  }
});

// ------------------------------------------------------------------ ready when ensured

/** Every partition of every topic, one message each (keyed: the snapshots topic is compacted). */
function onePerPartition(specs: readonly TopicSpec[], run: string) {
  return specs.map((s) => ({ topic: s.name, messages: Array.from({ length: s.numPartitions }, (_, partition) => ({ partition, key: `k-${partition}`, value: `${run}-${s.name}-${partition}` })) }));
}

kafkaTest('ensureTopicsAt returns only once every partition is served: producing and consuming right after never meets "does not host this topic-partition" (5 runs)', async (t) => {
  t.timeout(240_000);
  const base = randomUUID().slice(0, 8);
  const clientLog: string[] = [];
  // No retries anywhere: a partition that is not served yet fails the send or crashes the consumer, instead of being waited out.
  const kafka = new Kafka({ clientId: `topics-ready-${base}`, brokers, logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const cleanup = testKafka(`topics-ready-cleanup-${base}`, clientLog).admin();
  const made: string[] = [];
  try {
    for (let run = 0; run < 5; run++) {
      const prefix = `t${base}r${run}.`;
      const specs = topicSpecs(GEOZONES, { prefix });
      made.push(...specs.map((s) => s.name));
      const ensured = await ensureTopicsAt(brokers, specs, { clientId: `topics-ready-${base}` });
      t.is(ensured.created.length, specs.length, `run ${run}: all created`);

      const producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 }, createPartitioner: Partitioners.DefaultPartitioner });
      const consumer = kafka.consumer({ groupId: `topics-ready-${base}-${run}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 200, retry: { retries: 0 } });
      const crashes: string[] = [];
      consumer.on(consumer.events.CRASH, (event) => crashes.push(describeKafkaError(event.payload.error)));
      try {
        await producer.connect();
        const sent = await producer.sendBatch({ acks: -1, topicMessages: onePerPartition(specs, `${run}`) });
        t.is(sent.length, specs.reduce((n, s) => n + s.numPartitions, 0), `run ${run}: every partition took its message`);

        const inputs = [topicNames({ prefix }).telemetry, topicNames({ prefix }).inference, topicNames({ prefix }).result];
        const got: string[] = [];
        await consumer.connect();
        await consumer.subscribe({ topics: inputs, fromBeginning: true });
        await consumer.run({
          eachMessage: ({ message }) => {
            got.push(message.value?.toString() ?? '');
            return Promise.resolve();
          },
        });
        for (let waited = 0; got.length < inputs.length * GEOZONES.length && waited < 60_000; waited += 100) await sleep(100);
        t.is(got.length, inputs.length * GEOZONES.length, `run ${run}: every input partition read back`);
        t.deepEqual(crashes, [], `run ${run}: the consumer never crashed`);
      } finally {
        await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
      }
    }
  } finally {
    await deleteTopics(t, cleanup, made);
    await cleanup.disconnect();
  }
});

test('ensureTopicsAt where no broker listens: by default a coded error soon; with retry options it waits, reports each retry, and stops when aborted', async (t) => {
  const port = await closedPort();
  const specs = topicSpecs(['CAISO'], { prefix: 'never.' });
  const failing = t.throwsAsync(ensureTopicsAt([`127.0.0.1:${port}`], specs), { instanceOf: ArcError });

  const stop = new AbortController();
  const retries: { attempt: number; delayMs: number; error: string }[] = [];
  const waiting = ensureTopicsAt([`127.0.0.1:${port}`], specs, {
    retry: {
      signal: stop.signal,
      backoff: { initialDelayMs: 10, maxDelayMs: 40 },
      onRetry: (attempt, error, delayMs) => {
        retries.push({ attempt, delayMs, error: describeKafkaError(error) });
        if (attempt === 3) stop.abort(new Error('region stopping'));
      },
    },
  });
  const stopped = await t.throwsAsync(waiting);
  t.is(stopped.message, 'region stopping', 'stopped by the abort, not by giving up');
  t.deepEqual(
    retries.map((r) => [r.attempt, r.delayMs]),
    [
      [1, 10],
      [2, 20],
      [3, 40],
    ],
  );
  for (const r of retries) t.regex(r.error, /ECONNREFUSED/);

  const fails = await failing;
  t.is(fails.code, 'ARC_ERR_USAGE');
  t.regex(fails.message, /ECONNREFUSED/);
});

kafkaTest('ensureTopics gives a topic keyed by geozone made for fewer geozones the partitions it lacks, and never takes any away', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `g${run}.`;
  const admin = client(run, []).admin();
  const partitions = async (name: string): Promise<number> => (await admin.fetchTopicMetadata({ topics: [name] })).topics[0]?.partitions.length ?? 0;
  const telemetry = topicNames({ prefix }).telemetry;
  try {
    await admin.connect();
    await ensureTopics(admin, topicSpecs(['A1'], { prefix }));
    t.is(await partitions(telemetry), 1);
    const wider = await ensureTopics(admin, topicSpecs(['A1', 'B2', 'C3'], { prefix }));
    t.true(wider.grown.includes(telemetry), JSON.stringify(wider.grown));
    t.false(wider.grown.some((name) => name.includes('arc.journal.') || name.endsWith('arc.snapshots')), 'single-partition topics stay as they are');
    t.is(await partitions(telemetry), 3);
    const narrower = await ensureTopics(admin, topicSpecs(['A1'], { prefix }));
    t.deepEqual(narrower.grown, []);
    t.is(await partitions(telemetry), 3, 'a smaller federation leaves the extra partitions unassigned, not removed');
  } finally {
    await admin.deleteTopics({ topics: (await admin.listTopics()).filter((name) => name.startsWith(prefix)) }).catch(() => undefined);
    await admin.disconnect();
  }
});
