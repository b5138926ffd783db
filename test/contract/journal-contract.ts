// The Journal + SnapshotStore contract: the same cases run against every store
// (LMDB in test/adapters, Kafka in test/kafka), so the runtime can rely on one
// behaviour whichever store is under it.
import type { ExecutionContext } from 'ava';
import { nodeKind } from '../../actors/node-actor.js';
import { realScheduler } from '../../runtime/clock.js';
import type { JournalRecord, JournalStore } from '../../runtime/journal.js';
import { Shard, type ShardBehaviour } from '../../runtime/shard.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';
import { report } from '../helpers/fixtures.js';

export type ContractStore = JournalStore & SnapshotStore;

export interface ContractFixture {
  readonly store: ContractStore;
  /** Closes the store and opens it again on the same data (a restart). */
  readonly reopen: () => Promise<ContractStore>;
  /** Closes whatever store is open and removes the data. */
  readonly close: () => Promise<void>;
}

export type Register = (title: string, fn: (t: ExecutionContext) => Promise<void>) => void;

/** Shard ids the cases use: a store under test must be able to hold both. */
export const CONTRACT_SHARDS = ['S', 'T'] as const;

/** Records continuing at `from`, with varied fields (nested events, unicode, numbers). */
export function makeRecords(from: number, count: number, actorPrefix = 'node/n'): JournalRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const offset = from + i;
    return {
      offset,
      atMs: 1_000 + offset * 10,
      actorId: `${actorPrefix}${offset % 3}`,
      kind: offset % 2 === 0 ? 'node' : 'reservation',
      event: { type: `ev-${offset}`, n: offset, nested: { list: [offset, 'é ✓', { deep: true }], empty: {} }, ratio: offset / 7 },
      state: offset % 2 === 0 ? 'online' : 'held.waiting',
    };
  });
}

function snapshotAt(shardId: string, offset: number, tag: string): ShardSnapshot {
  return {
    shardId,
    offset,
    atMs: 1_000 + offset * 10,
    actors: [{ id: `node/${tag}`, kind: 'node', snapshot: { value: 'online', context: { tag, offset, list: [1, 2, 3] } } }],
    behaviourState: { tag, counts: { a: offset } },
    stateHash: `hash-${tag}`,
  };
}

async function appendBatches(store: ContractStore, shardId: string, sizes: readonly number[]): Promise<JournalRecord[]> {
  const journal = store.journal(shardId);
  const all: JournalRecord[] = [];
  for (const size of sizes) {
    const batch = makeRecords(journal.nextOffset(), size);
    await journal.append(batch);
    all.push(...batch);
  }
  return all;
}

/** Input of the contract's behaviour: a node reports, or is reserved/released. */
export interface NodeInput {
  readonly nodeId: string;
  readonly op: 'report' | 'reserve' | 'release';
  readonly requestId?: string;
  readonly gpu?: number;
}

/**
 * A small behaviour over real node actors: reports spawn or update a node,
 * reservations come and go, silent nodes time out (deadlines), and a shard-level
 * note counts inputs (behaviour state that only replayed notes can rebuild).
 */
export function nodeBehaviour(): ShardBehaviour<NodeInput, string> {
  let inputs = 0;
  return {
    kinds: [nodeKind],
    handle(input, ctx) {
      const actorId = `node/${input.nodeId}`;
      const nodeReport = report({ reportedAtMs: ctx.nowMs, gpuUtilization: input.gpu ?? 0.4 });
      if (ctx.snapshot(actorId) === undefined) {
        ctx.spawn('node', actorId, { nodeId: input.nodeId, report: nodeReport, atMs: ctx.nowMs, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 });
      } else if (input.op === 'report') {
        ctx.send(actorId, { type: 'telemetry', atMs: ctx.nowMs, report: nodeReport });
      } else {
        ctx.send(actorId, { type: input.op, atMs: ctx.nowMs, requestId: input.requestId ?? 'r' });
      }
      ctx.note({ type: 'input', nodeId: input.nodeId });
      ctx.emit(`${input.op}:${input.nodeId}@${ctx.nowMs}`);
    },
    onDeadline(actorId, _kind, atMs, ctx) {
      ctx.send(actorId, { type: 'timeout', atMs });
    },
    onActorChanged: () => undefined,
    applyNote: (record) => {
      if (record.event.type === 'input') inputs++;
    },
    saveState: () => ({ inputs }),
    loadState: (state) => {
      inputs = (state as { inputs: number }).inputs;
    },
  };
}

function nodeInputs(count: number, seed: number): { input: NodeInput; atMs: number }[] {
  const ops = ['report', 'reserve', 'release'] as const;
  return Array.from({ length: count }, (_, i) => {
    const k = i + seed;
    const op = ops[k % 3] as NodeInput['op'];
    // A 40 s gap now and then lets some nodes go silent past their 30 s timeout.
    return { input: { nodeId: `n${k % 7}`, op, requestId: `r${k % 5}`, gpu: (k % 10) / 10 }, atMs: 10_000 + i * 500 + Math.floor(i / 40) * 40_000 };
  });
}

function makeShard(store: ContractStore, shardId: string, released: string[]): Shard<NodeInput, string> {
  return new Shard<NodeInput, string>({
    shardId,
    behaviour: nodeBehaviour(),
    journal: store.journal(shardId),
    snapshots: store,
    scheduler: realScheduler,
    limits: { maxBatchRecords: 64 },
    onEffects: (effects) => released.push(...effects),
  });
}

/** Whether the store can read the shard's journal from `offset` (a Kafka store holds only the tail after its latest snapshot). */
function readableFrom(store: ContractStore, shardId: string, offset: number): boolean {
  try {
    for (const record of store.journal(shardId).read(offset)) return record.offset >= offset;
    return true;
  } catch {
    return false;
  }
}

export function journalContract(name: string, register: Register, makeStore: () => Promise<ContractFixture>): void {
  const [S, T] = CONTRACT_SHARDS;

  /** Runs a case on a fresh store and always cleans up. */
  const scenario = (title: string, body: (t: ExecutionContext, fixture: ContractFixture) => Promise<void>): void => {
    register(`${name} journal contract: ${title}`, async (t) => {
      const fixture = await makeStore();
      try {
        await body(t, fixture);
      } finally {
        await fixture.close();
      }
    });
  };

  scenario('an empty journal has next offset 0 and reads nothing', async (t, { store, reopen }) => {
    const check = (s: ContractStore): void => {
      const journal = s.journal(S);
      t.is(journal.nextOffset(), 0);
      t.deepEqual([...journal.read()], []);
      t.deepEqual([...journal.read(0)], []);
      t.is(s.latest(S), undefined);
      t.deepEqual(s.offsets(S), []);
    };
    check(store);
    check(await reopen());
  });

  scenario('appends are read back in order with exact fields, also from the middle of an append', async (t, { store }) => {
    const journal = store.journal(S);
    const written = await appendBatches(store, S, [3, 1, 4]);
    t.is(journal.nextOffset(), 8);
    t.deepEqual([...journal.read()], written);
    t.deepEqual([...journal.read(0)], written);
    t.deepEqual([...journal.read(1)], written.slice(1), 'from inside the first append');
    t.deepEqual([...journal.read(3)], written.slice(3), 'from the start of the second append');
    t.deepEqual([...journal.read(6)], written.slice(6), 'from inside the last append');
    t.deepEqual([...journal.read(8)], []);
    t.deepEqual([...journal.read(100)], []);
    await journal.append([]);
    t.is(journal.nextOffset(), 8, 'an empty append changes nothing');
  });

  scenario('an append at a wrong offset rejects and leaves the journal unchanged', async (t, { store }) => {
    const journal = store.journal(S);
    const written = await appendBatches(store, S, [2]);
    await t.throwsAsync(() => journal.append(makeRecords(5, 2)), undefined, 'a gap');
    await t.throwsAsync(() => journal.append(makeRecords(0, 2)), undefined, 'an overlap');
    await t.throwsAsync(() => journal.append(makeRecords(1, 3)), undefined, 'a partial overlap');
    t.is(journal.nextOffset(), 2);
    t.deepEqual([...journal.read()], written);
    const more = makeRecords(2, 2);
    await journal.append(more);
    t.deepEqual([...journal.read()], [...written, ...more], 'the right offset still works after rejections');
  });

  scenario('after reopening, everything appended is there and the next offset continues', async (t, { store, reopen }) => {
    const written = await appendBatches(store, S, [5, 1, 3]);
    const other = await appendBatches(store, T, [2]);
    const reopened = await reopen();
    const journal = reopened.journal(S);
    t.is(journal.nextOffset(), 9);
    t.deepEqual([...journal.read()], written);
    t.deepEqual([...journal.read(4)], written.slice(4));
    t.deepEqual([...reopened.journal(T).read()], other, 'each shard has its own journal');
    t.true(reopened.shardIds().includes(S) && reopened.shardIds().includes(T));
    const next = makeRecords(9, 2);
    await journal.append(next);
    await t.throwsAsync(() => journal.append(makeRecords(9, 1)), undefined, 'offsets stay checked after a reopen');
    const again = await reopen();
    t.deepEqual([...again.journal(S).read()], [...written, ...next]);
    t.is(again.journal(S).nextOffset(), 11);
  });

  scenario('snapshots: latest is the newest, maxOffset bounds it, shards are isolated, and a reopen keeps snapshot plus tail', async (t, { store, reopen }) => {
    await appendBatches(store, S, [4, 6]);
    const s3 = snapshotAt(S, 3, 'a');
    const s6 = snapshotAt(S, 6, 'b');
    const s9 = snapshotAt(S, 9, 'c');
    for (const s of [s3, s6, s9]) await store.save(s);
    t.deepEqual(store.latest(S), s9);
    t.deepEqual(store.latest(S, 9), s9);
    t.deepEqual(store.latest(S, 8), s6);
    t.deepEqual(store.latest(S, 6), s6);
    t.is(store.latest(S, 2), undefined, 'nothing at or below offset 2');
    const offsets = store.offsets(S);
    t.deepEqual([...offsets].sort((a, b) => a - b), offsets, 'offsets ascend');
    t.deepEqual(offsets.slice(-2), [6, 9]);

    // Shard T is untouched by S's snapshots, and has its own.
    t.is(store.latest(T), undefined);
    t.deepEqual(store.offsets(T), []);
    const t0 = snapshotAt(T, -1, 'empty');
    await store.save(t0);
    t.deepEqual(store.latest(T), t0);
    t.deepEqual(store.latest(S), s9, "T's snapshot is not S's");

    // A snapshot in the middle of an append: the tail after it starts inside that append.
    const tail = await appendBatches(store, S, [5]); // offsets 10..14
    const s12 = snapshotAt(S, 12, 'd');
    await store.save(s12);
    const reopened = await reopen();
    t.deepEqual(reopened.latest(S), s12);
    t.deepEqual(reopened.latest(T), t0);
    const journal = reopened.journal(S);
    t.is(journal.nextOffset(), 15);
    t.deepEqual([...journal.read(13)], tail.slice(3), 'the tail after the snapshot');
    t.deepEqual([...reopened.journal(T).read()], []);
    const next = makeRecords(15, 2);
    await journal.append(next);
    t.deepEqual([...journal.read(13)], [...tail.slice(3), ...next]);
  });

  scenario('a shard recovers on the reopened store to the same state hash', async (t, { store, reopen }) => {
    const released: string[] = [];
    const shard = makeShard(store, S, released);
    shard.recover();
    const inputs = nodeInputs(200, 0);
    for (const [i, { input, atMs }] of inputs.entries()) {
      shard.process(input, atMs);
      if (i % 25 === 0) await shard.whenIdle(); // several appends of different sizes
      if (i === 120) await shard.snapshotNow();
    }
    await shard.whenIdle();
    t.is(released.length, inputs.length, 'every effect released once its records are durable');
    const hash = shard.stateHash();
    const last = shard.lastOffset;
    t.true(store.latest(S) !== undefined, 'the snapshot was stored');

    const reopened = await reopen();
    t.is(reopened.journal(S).nextOffset(), last + 1);
    const recoveredEffects: string[] = [];
    const recovered = makeShard(reopened, S, recoveredEffects);
    const { fromSnapshotOffset, replayed } = recovered.recover();
    t.true(fromSnapshotOffset >= 0, 'recovery starts from the snapshot');
    t.is(fromSnapshotOffset + 1 + replayed, last + 1, 'and replays exactly the tail after it');
    t.is(recovered.stateHash(), hash);

    // A full replay of the same journal agrees, when the store can read from the beginning.
    if (readableFrom(reopened, S, 0)) {
      const full = makeShard(reopened, S, []);
      full.recover(false);
      t.is(full.stateHash(), hash, 'a replay from offset 0 reaches the same state');
    }

    // The recovered shard goes on writing where the journal ends.
    for (const { input, atMs } of nodeInputs(30, 500)) recovered.process(input, atMs + 200_000);
    await recovered.whenIdle();
    t.is(recoveredEffects.length, 30);
    t.is(reopened.journal(S).nextOffset(), recovered.lastOffset + 1);
  });
}
