// Fencing on a real broker: opening a KafkaStore for a shard fences the shard's
// previous owner (one transactional id per shard). The stale owner's next append
// rejects, a Shard on it stops with ARC_ERR_JOURNAL_WRITE and withholds its effects,
// and the new owner continues the journal at the right offset.
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { journalTopic, journalTransactionalId, KafkaStore } from '../../adapters/kafka/kafka-store.js';
import { monotonicNowMs, realScheduler } from '../../runtime/clock.js';
import { Shard } from '../../runtime/shard.js';
import { makeRecords, nodeBehaviour, type NodeInput } from '../contract/journal-contract.js';
import { brokers, deleteTopicsWithPrefix, kafkaTest } from '../helpers/kafka-broker.js';


const S = 'S';
const T = 'T';

function shardOn(store: KafkaStore, shardId: string, released: string[], failures: string[]): Shard<NodeInput, string> {
  return new Shard<NodeInput, string>({
    shardId,
    behaviour: nodeBehaviour(),
    journal: store.journal(shardId),
    snapshots: store,
    scheduler: realScheduler,
    onEffects: (effects) => released.push(...effects),
    onFailure: (error) => failures.push((error as { code?: string }).code ?? error.message),
  });
}

const input = (i: number): NodeInput => ({ nodeId: `n${i % 4}`, op: i % 2 === 0 ? 'report' : 'reserve', requestId: `r${i}` });

kafkaTest('kafka fencing: a newer owner of a shard fences the older one, which can no longer write its journal', async (t) => {
  t.timeout(180_000);
  const prefix = `fence-${randomUUID().slice(0, 8)}-`;
  const open = (who: string) => KafkaStore.open({ brokers, shardIds: [S, T], clientId: `fence-${who}-${prefix}`, topicPrefix: prefix });
  const stores: KafkaStore[] = [];
  try {
    const a = await open('a');
    stores.push(a);
    // A owns S and appends directly; on T a Shard runs on A's store.
    const committed = makeRecords(0, 3);
    await a.journal(S).append(committed.slice(0, 2));
    await a.journal(S).append(committed.slice(2));
    const releasedA: string[] = [];
    const failuresA: string[] = [];
    const shardA = shardOn(a, T, releasedA, failuresA);
    shardA.recover();
    for (let i = 0; i < 10; i++) shardA.process(input(i), 1_000 + i * 100);
    await shardA.whenIdle();
    t.is(releasedA.length, 10);
    const durableHashA = shardA.stateHash();
    const durableNextT = a.journal(T).nextOffset();

    // B opens for the same shards: A is fenced from here on.
    const b = await open('b');
    stores.push(b);
    t.is(b.journal(S).nextOffset(), 3, "B sees A's committed records");
    t.deepEqual([...b.journal(S).read()], committed);

    const startedMs = monotonicNowMs();
    const rejected = makeRecords(3, 2, 'node/zombie');
    const error = await t.throwsAsync(() => a.journal(S).append(rejected));
    t.regex(error?.message ?? '', /fenced|newer owner/i, 'the stale owner is told it was fenced');
    t.true(monotonicNowMs() - startedMs < 30_000, 'the fenced append rejects promptly instead of hanging');
    t.is(a.journal(S).nextOffset(), 3, "the rejected append does not move A's journal");
    await t.throwsAsync(() => a.journal(S).append(rejected), { message: /newer owner/ }, 'and every later append rejects too');
    await t.throwsAsync(() => a.save({ shardId: S, offset: 2, atMs: 0, actors: [], behaviourState: null }), { message: /newer owner/ });

    // The Shard on A: its next append is fenced, it stops, and the effects of that input never leave.
    shardA.process(input(10), 3_000);
    await t.throwsAsync(() => shardA.whenIdle());
    t.deepEqual(failuresA, ['ARC_ERR_JOURNAL_WRITE']);
    t.is(releasedA.length, 10, 'no effect of the fenced append was released');
    t.is((t.throws(() => shardA.process(input(11), 3_100)) as { code?: string }).code, 'ARC_ERR_SHARD_STOPPED');

    // B continues both journals where A's committed records end.
    const next = makeRecords(3, 4, 'node/b');
    await b.journal(S).append(next);
    t.is(b.journal(S).nextOffset(), 7);
    const releasedB: string[] = [];
    const shardB = shardOn(b, T, releasedB, []);
    shardB.recover();
    t.is(b.journal(T).nextOffset(), durableNextT);
    t.is(shardB.stateHash(), durableHashA, "B recovers T to A's last durable state, without the fenced input");
    shardB.process(input(10), 3_000);
    await shardB.whenIdle();
    t.is(releasedB.length, 1);

    // A third reader sees A's committed records and B's, never A's rejected ones.
    const c = await open('c');
    stores.push(c);
    t.deepEqual([...c.journal(S).read()], [...committed, ...next]);
    t.false([...c.journal(S).read()].some((r) => r.actorId === 'node/zombie'));
    t.is(c.journal(T).nextOffset(), shardB.lastOffset + 1);
    t.deepEqual([...a.journal(S).read()], committed, 'A still reads what it had committed (it only may not write)');
  } finally {
    for (const store of stores.reverse()) await store.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});

kafkaTest('kafka fencing: opening aborts the open transaction of an owner that stalled mid-append', async (t) => {
  t.timeout(180_000);
  const prefix = `fence-${randomUUID().slice(0, 8)}-`;
  const open = (who: string) => KafkaStore.open({ brokers, shardIds: [S], clientId: `fence-${who}-${prefix}`, topicPrefix: prefix });
  const stores: KafkaStore[] = [];
  const kafka = new Kafka({ clientId: `fence-zombie-${prefix}`, brokers, logLevel: logLevel.NOTHING });
  // The stalled owner: the shard's transactional id, a transaction begun and never ended.
  const zombie = kafka.producer({ transactionalId: journalTransactionalId(prefix, S), idempotent: true, maxInFlightRequests: 1, retry: { retries: 3 } });
  try {
    const a = await open('a');
    stores.push(a);
    const committed = makeRecords(0, 2);
    await a.journal(S).append(committed);
    await a.close();

    await zombie.connect();
    const tx = await zombie.transaction();
    const stalled = makeRecords(2, 3, 'node/zombie').map((r) => [r.atMs, r.actorId, r.kind, r.event, r.state]);
    await tx.send({ topic: journalTopic(prefix, S), acks: -1, messages: [{ key: S, value: JSON.stringify({ first: 2, records: stalled }), partition: 0 }] });

    // B opens while that transaction is open: it must not wait on it, nor see it.
    const b = await open('b');
    stores.push(b);
    t.is(b.journal(S).nextOffset(), 2);
    t.deepEqual([...b.journal(S).read()], committed);
    await t.throwsAsync(() => tx.commit(), undefined, "the stalled owner's commit is refused");

    const next = makeRecords(2, 2, 'node/b');
    await b.journal(S).append(next);
    await b.close();
    const c = await open('c');
    stores.push(c);
    t.deepEqual([...c.journal(S).read()], [...committed, ...next], 'the aborted records never appear');
  } finally {
    await zombie.disconnect().catch(() => undefined);
    for (const store of stores.reverse()) await store.close().catch(() => undefined);
    await deleteTopicsWithPrefix(prefix);
  }
});
