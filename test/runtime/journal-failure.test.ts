import test from 'ava';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createActor } from 'xstate';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { nodeKind } from '../../actors/node-actor.js';
import { realScheduler } from '../../runtime/clock.js';
import type { Journal, JournalRecord } from '../../runtime/journal.js';
import { Shard, type ShardBehaviour } from '../../runtime/shard.js';
import { report, tempDir } from '../helpers/fixtures.js';

/** The real LMDB journal, made to refuse chosen appends (a full disk, an I/O error). */
class FailingJournal implements Journal {
  appends = 0;
  constructor(
    private readonly inner: Journal,
    private readonly failOn: ReadonlySet<number>,
  ) {}
  append(records: readonly JournalRecord[]): Promise<void> {
    this.appends++;
    if (this.failOn.has(this.appends)) return Promise.reject(new Error('injected: no space left on device'));
    return this.inner.append(records);
  }
  read(fromOffset?: number): Iterable<JournalRecord> {
    return this.inner.read(fromOffset);
  }
  nextOffset(): number {
    return this.inner.nextOffset();
  }
}

/** A minimal behaviour: each input spawns a node actor and emits its id. */
function behaviour(): ShardBehaviour<string, string> {
  return {
    kinds: [nodeKind],
    handle(nodeId, ctx) {
      ctx.spawn('node', `node/${nodeId}`, { nodeId, report: report(), atMs: ctx.nowMs, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 });
      ctx.emit(nodeId);
    },
    onDeadline: () => undefined,
    onActorChanged: () => undefined,
    applyNote: () => undefined,
    saveState: () => null,
    loadState: () => undefined,
  };
}

test('after a failed append nothing later is released or written, and the shard refuses input with a code', async (t) => {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  try {
    const journal = new FailingJournal(store.journal('S'), new Set([2]));
    const released: string[] = [];
    const failures: string[] = [];
    const shard = new Shard<string, string>({
      shardId: 'S',
      behaviour: behaviour(),
      journal,
      scheduler: realScheduler,
      onEffects: (effects) => released.push(...effects),
      onFailure: (error) => failures.push((error as { code?: string }).code ?? ''),
    });
    shard.recover();
    shard.process('a', 1);
    await shard.whenIdle();
    t.deepEqual(released, ['a']);
    shard.process('b', 2); // this append fails
    shard.flush();
    shard.process('c', 3); // waits behind it, and must never be released
    await t.throwsAsync(() => shard.whenIdle(), { message: /no space left/ });
    await nextTurn();
    t.deepEqual(released, ['a'], 'effects of the failed append and of everything after it are withheld');
    t.deepEqual(failures, ['ARC_ERR_JOURNAL_WRITE']);
    t.is(journal.appends, 2, 'nothing was appended after the failure');
    t.is(store.journal('S').nextOffset(), 1, 'the journal has no gap: it ends where the last durable append ended');
    const error = t.throws(() => shard.process('d', 4));
    t.is((error as { code?: string }).code, 'ARC_ERR_SHARD_STOPPED');
  } finally {
    await store.close();
    cleanup();
  }
});

test('a failing effect consumer stops the shard instead of silently losing acknowledgements', async (t) => {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  try {
    const failures: string[] = [];
    const shard = new Shard<string, string>({
      shardId: 'S',
      behaviour: behaviour(),
      journal: store.journal('S'),
      scheduler: realScheduler,
      onEffects: () => {
        throw new Error('acknowledgement log: disk full');
      },
      onFailure: (error) => failures.push((error as { code?: string }).code ?? ''),
    });
    shard.recover();
    shard.process('a', 1);
    await t.throwsAsync(() => shard.whenIdle());
    t.deepEqual(failures, ['ARC_ERR_EFFECT_DELIVERY']);
  } finally {
    await store.close();
    cleanup();
  }
});

test('actors in the shard are real XState actors of the kind machine', (t) => {
  const actor = createActor(nodeKind.machine, { input: { nodeId: 'x', report: report(), atMs: 0, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 } });
  actor.start();
  t.is(actor.getSnapshot().value, 'online');
});
