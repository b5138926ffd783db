import test from 'ava';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { defaultRegionConfig, RegionBehaviour } from '../../actors/region-behaviour.js';
import type { RegionEffect, RegionInput } from '../../actors/region-io.js';
import type { NodeContext } from '../../machines/node.js';
import { realScheduler } from '../../runtime/clock.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { Shard, type ShardContext } from '../../runtime/shard.js';
import { report, tempDir } from '../helpers/fixtures.js';

const T0 = 1_767_225_600_000;
const GEOZONE = 'CAISO';

/**
 * The real region behaviour with a fault planted in it: an effect it emits (or a
 * deadline it decides) throws once armed, after the behaviour has already
 * spawned, changed and ended actors for that step.
 */
class FaultyRegion extends RegionBehaviour {
  failOnEffect: RegionEffect['type'] | undefined;
  failAfterDeadline = false;

  constructor() {
    super(GEOZONE, { ...defaultRegionConfig, geozones: [GEOZONE] });
  }

  override handle(input: RegionInput, ctx: ShardContext<RegionEffect>): void {
    super.handle(input, this.faulty(ctx));
  }

  override onDeadline(actorId: string, kind: string, atMs: number, ctx: ShardContext<RegionEffect>): void {
    super.onDeadline(actorId, kind, atMs, ctx);
    if (this.failAfterDeadline) throw new Error(`planted fault after the deadline of ${actorId}`);
  }

  private faulty(ctx: ShardContext<RegionEffect>): ShardContext<RegionEffect> {
    return {
      shardId: ctx.shardId,
      get nowMs() {
        return ctx.nowMs;
      },
      snapshot: (actorId) => ctx.snapshot(actorId),
      spawn: (kind, actorId, input) => ctx.spawn(kind, actorId, input),
      send: (actorId, event) => ctx.send(actorId, event),
      note: (event) => ctx.note(event),
      emit: (effect) => {
        if (effect.type === this.failOnEffect) throw new Error(`planted fault at the ${effect.type} effect`);
        ctx.emit(effect);
      },
    };
  }
}

function setUp(dir: string) {
  const store = new LmdbStore(dir);
  const behaviour = new FaultyRegion();
  const released: RegionEffect[] = [];
  const observed: JournalRecord[] = [];
  const failures: Error[] = [];
  const shard = new Shard<RegionInput, RegionEffect>({
    shardId: GEOZONE,
    behaviour,
    journal: store.journal(GEOZONE),
    snapshots: store,
    scheduler: realScheduler,
    onEffects: (effects) => released.push(...effects),
    onFailure: (error) => failures.push(error),
  });
  shard.observe((record) => observed.push(record));
  shard.recover();
  return { store, behaviour, shard, released, observed, failures };
}

const telemetry = (nodeId: string, atMs: number): RegionInput => ({ type: 'telemetry', nodeId, report: report({ geozone: GEOZONE, reportedAtMs: atMs, gpuCount: 1 }) });
const request = (requestId: string): RegionInput => ({
  type: 'inference',
  request: { requestId, modelId: 'llama-3-70b', contextWindow: 4096, priority: 'normal', requesterGeozone: GEOZONE },
  triedGeozones: [],
});

function journaled(store: LmdbStore): JournalRecord[] {
  return [...store.journal(GEOZONE).read(0)];
}

/** The state a fresh shard reaches from the journal alone (every record re-run and checked). */
async function replayedHash(dir: string): Promise<string> {
  const store = new LmdbStore(dir);
  try {
    const shard = new Shard<RegionInput, RegionEffect>({
      shardId: GEOZONE,
      behaviour: new RegionBehaviour(GEOZONE, { ...defaultRegionConfig, geozones: [GEOZONE] }),
      journal: store.journal(GEOZONE),
      scheduler: realScheduler,
      onEffects: () => undefined,
    });
    shard.recover(false);
    return shard.stateHash();
  } finally {
    await store.close();
  }
}

test('an input whose decision throws halfway is refused whole: nothing journaled, applied, observed or released; the shard goes on', async (t) => {
  const { dir, cleanup } = tempDir();
  const { store, behaviour, shard, released, observed } = setUp(dir);
  try {
    shard.process(telemetry('n1', T0), T0);
    shard.process(request('r1'), T0 + 10);
    await shard.whenIdle();
    const at = T0 + 20;
    shard.advanceTo(at); // anything due by then is decided first, and kept
    await shard.whenIdle();
    const hashBefore = shard.stateHash();
    const nodeBefore = shard.snapshotOf('node/n1')?.context as NodeContext;
    const journalBefore = journaled(store).length;
    const observedBefore = observed.length;
    const releasedBefore = released.length;
    t.deepEqual(nodeBefore.reservations, ['r1']);

    // The dispatch effect is the last thing decided: by then r2 was spawned, reserved on n1 and dispatched.
    behaviour.failOnEffect = 'dispatch';
    const error = t.throws<ArcError>(() => shard.process(request('r2'), at), { instanceOf: ArcError });
    t.is(error?.code, ErrorCodes.INPUT_REFUSED);
    t.regex(error?.message ?? '', /planted fault at the dispatch effect/);
    t.is(shard.snapshotOf('reservation/r2'), undefined, 'the spawned reservation is gone');
    t.deepEqual((shard.snapshotOf('node/n1')?.context as NodeContext).reservations, ['r1'], 'the node no longer holds r2');
    t.is(shard.stateHash(), hashBefore);
    t.is(observed.length, observedBefore, 'observers heard of none of its records');

    // A result that ends r1 (it is remembered as ended, its node released), then fails announcing the end.
    behaviour.failOnEffect = 'ended';
    const second = t.throws<ArcError>(() => shard.process({ type: 'result', requestId: 'r1', nodeId: 'n1', latencyMs: 5, status: 'completed' }, at), { instanceOf: ArcError });
    t.is(second?.code, ErrorCodes.INPUT_REFUSED);
    t.is(shard.snapshotOf('reservation/r1')?.value, 'dispatched', 'the ended reservation is back');
    t.is(shard.stateHash(), hashBefore, 'and no memory of its end is kept');

    await shard.whenIdle();
    t.is(journaled(store).length, journalBefore, 'no record of either refused input');
    t.false(journaled(store).some((r) => r.actorId === 'reservation/r2'));
    t.is(released.length, releasedBefore, 'no effect of either was released');

    // The shard goes on: the same inputs, decided normally, are journaled and released.
    behaviour.failOnEffect = undefined;
    shard.process(request('r2'), at + 1);
    shard.process({ type: 'result', requestId: 'r1', nodeId: 'n1', latencyMs: 5, status: 'completed' }, at + 2);
    await shard.whenIdle();
    const after = journaled(store).slice(journalBefore);
    t.deepEqual(after.map((r) => r.offset), after.map((_, i) => journalBefore + i), 'offsets go on without a gap');
    t.deepEqual(
      after.map((r) => `${r.actorId} ${r.event.type} ${r.state}`),
      [
        'reservation/r2 @spawn requested',
        'reservation/r2 route.reserved dispatched',
        'node/n1 reserve online',
        'reservation/r1 result completed',
        'node/n1 release online',
      ],
    );
    t.deepEqual(observed.slice(observedBefore), after, 'observers heard of exactly the journaled records');
    t.true(released.some((e) => e.type === 'dispatch' && e.requestId === 'r2'));
    t.true(released.some((e) => e.type === 'ended' && e.requestId === 'r1'));

    const liveHash = shard.stateHash();
    await store.close();
    t.is(await replayedHash(dir), liveHash, 'a replay of the journal reaches the live state');
  } finally {
    cleanup();
  }
});

test('a deadline whose decision throws is undone and stops the shard with a code; the journal stays whole', async (t) => {
  const { dir, cleanup } = tempDir();
  const { store, behaviour, shard, failures } = setUp(dir);
  try {
    shard.process(telemetry('n1', T0), T0);
    shard.process(request('r1'), T0 + 10);
    shard.process(telemetry('n1', T0 + 20_000), T0 + 20_000); // keeps n1 from going silent before r1 expires
    await shard.whenIdle();
    const hashBefore = shard.stateHash();
    const journalBefore = journaled(store).length;

    // r1 expires 30 s after it was reserved: the expiry, the node's release and the end all happen, then the fault.
    behaviour.failAfterDeadline = true;
    shard.advanceTo(T0 + 10 + defaultRegionConfig.reservationTtlMs);
    t.is(failures.length, 1);
    t.is((failures[0] as ArcError).code, ErrorCodes.INVARIANT);
    t.is(shard.snapshotOf('reservation/r1')?.value, 'dispatched', 'the expiry was undone');
    t.is(shard.stateHash(), hashBefore);
    const refused = t.throws<ArcError>(() => shard.process(request('r2'), T0 + 40_000), { instanceOf: ArcError });
    t.is(refused?.code, ErrorCodes.SHARD_STOPPED);
    t.is(journaled(store).length, journalBefore, 'nothing of the failed deadline was journaled');

    const stoppedHash = shard.stateHash();
    await store.close();
    t.is(await replayedHash(dir), stoppedHash, 'recovery from the journal starts from the state before the deadline');
  } finally {
    cleanup();
  }
});
