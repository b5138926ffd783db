// The Kafka store across a broker restart, on a broker of the test's own (own-broker.ts): appends
// issued while the broker is down wait (the journal reports that it is retrying), complete once it
// is back, and are in the journal exactly once, in order, with a valid hash chain; the shard never
// fails and releases nothing before its records are durable.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { verifyKafkaJournal } from '../../adapters/kafka/journal-audit.js';
import { KafkaStore, type JournalWriteStatus } from '../../adapters/kafka/kafka-store.js';
import { realScheduler } from '../../runtime/clock.js';
import { Shard } from '../../runtime/shard.js';
import { nodeBehaviour, type NodeInput } from '../contract/journal-contract.js';
import { ownBrokerTest, startOwnBroker, type OwnBroker } from './own-broker.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

const input = (i: number): NodeInput => ({ nodeId: `n${i % 5}`, op: i % 3 === 0 ? 'reserve' : 'report', requestId: `r${i}`, gpu: (i % 10) / 10 });

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

ownBrokerTest('kafka store: appends during a broker restart complete after it, exactly once and in order with a valid chain; the shard never fails', async (t) => {
  t.timeout(600_000);
  let broker: OwnBroker | undefined;
  const stores: KafkaStore[] = [];
  try {
    broker = await startOwnBroker();
    // The broker is this test's alone: no topic prefix, so the CLI (which takes none) reads the same topics.
    const geozone = `RESTART-${randomUUID().slice(0, 8).toUpperCase()}`;
    const statuses: JournalWriteStatus[] = [];
    const store = await KafkaStore.open({
      brokers: [broker.address],
      shardIds: [geozone],
      clientId: `restart-${geozone}`,
      appendTimeoutMs: 10_000,
      retryForMs: 300_000,
      onWriteStatus: (_shardId, status) => statuses.push(status),
    });
    stores.push(store);
    const journal = store.journal(geozone);
    const released: string[] = [];
    const failures: string[] = [];
    const shard = new Shard<NodeInput, string>({
      shardId: geozone,
      behaviour: nodeBehaviour(),
      journal,
      snapshots: store,
      scheduler: realScheduler,
      onEffects: (effects) => released.push(...effects),
      onFailure: (error) => failures.push(error.message),
    });
    shard.recover();
    let atMs = 1_000;
    const feed = (from: number, to: number): void => {
      for (let i = from; i < to; i++) shard.process(input(i), (atMs += 100));
    };
    feed(0, 30);
    await shard.whenIdle();
    t.is(released.length, 30);
    await shard.snapshotNow();
    feed(30, 40);
    await shard.whenIdle();
    const beforeOutage = shard.lastOffset;

    // Inputs keep coming (one every 25 ms) while the broker stops: an append is likely in flight
    // when it goes, and every one issued during the outage has to wait.
    let fed = 40;
    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        feed(fed, fed + 1);
        fed++;
        await sleep(25);
      }
    })();
    await sleep(300);
    await broker.stop();
    await until('the journal to report that it is retrying', 120_000, () => journal.status().retrying);
    const during = journal.status();
    t.true(during.attempts >= 1);
    t.is(typeof during.lastError, 'string');
    t.is(typeof during.retryingSinceMs, 'number');
    await sleep(3_000); // a few failed attempts with the broker gone
    const releasedDuringOutage = released.length;
    t.true(releasedDuringOutage < fed, 'effects of records that are not durable do not leave');
    t.is(shard.failed, undefined);
    t.true(journal.status().retrying);

    await broker.start();
    feeding = false;
    await feeder;
    await shard.whenIdle();
    t.is(released.length, fed, 'every input issued during the outage completed after the restart');
    t.deepEqual(failures, []);
    t.is(shard.failed, undefined);
    t.is(journal.failure, undefined);
    t.false(journal.status().retrying);
    t.true(statuses.some((s) => s.retrying) && statuses[statuses.length - 1]?.retrying === false, 'the status went to retrying and back');
    const attempts = Math.max(...statuses.map((s) => s.attempts));
    t.log(`${fed - 40} inputs during the outage; ${attempts} failed attempts; last failure: ${journal.status().lastError ?? '-'}`);
    feed(fed, fed + 20);
    await shard.whenIdle();
    t.is(released.length, fed + 20);
    t.true(shard.lastOffset > beforeOutage);
    const liveHash = shard.stateHash();
    const lastOffset = shard.lastOffset;
    const inMemory = [...journal.read(journal.firstReadableOffset())];
    await store.close();

    // Read back from the beginning by a new store: every record once, in order, and the same state.
    const check = await KafkaStore.open({ brokers: [broker.address], shardIds: [geozone], clientId: `restart-check-${geozone}`, fullJournal: true });
    stores.push(check);
    const all = [...check.journal(geozone).read()];
    t.is(all.length, lastOffset + 1);
    t.true(
      all.every((r, i) => r.offset === i),
      'offsets 0..n, each once',
    );
    t.deepEqual(all.slice(all.length - inMemory.length), inMemory, 'what the live store held is what was written');
    const replayed = new Shard<NodeInput, string>({ shardId: geozone, behaviour: nodeBehaviour(), journal: check.journal(geozone), scheduler: realScheduler, onEffects: () => undefined });
    replayed.recover(false);
    t.is(replayed.stateHash(), liveHash, 'a replay of the journal reaches the live state');
    await check.close();

    const audit = await verifyKafkaJournal({ brokers: [broker.address], shardIds: [geozone] });
    t.true(audit.ok, JSON.stringify(audit));
    t.is(audit.shards[0]?.records, lastOffset + 1);
    t.is(audit.shards[0]?.anchors, 1, 'the snapshot taken before the outage anchors the chain');

    // The same through the CLI, over the broker's TLS listener.
    const tls = broker.tls;
    const cliRun = spawnSync(
      process.execPath,
      [cli, 'audit', 'verify', '--kafka', broker.tlsAddress, '--geozone', geozone, '--kafka-tls-ca', tls.caFile, '--kafka-tls-cert', tls.certFile, '--kafka-tls-key', tls.keyFile, '--json'],
      { encoding: 'utf8', timeout: 180_000 },
    );
    t.is(cliRun.status, 0, cliRun.stderr);
    const fromCli = JSON.parse(cliRun.stdout) as { ok: boolean; shards: { shardId: string; records: number; head: string }[] };
    t.true(fromCli.ok);
    t.deepEqual(fromCli.shards.map((s) => [s.shardId, s.records, s.head]), [[geozone, lastOffset + 1, audit.shards[0]?.head]]);
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    await broker?.destroy();
  }
});
