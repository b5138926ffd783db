import test from 'ava';
import fc from 'fast-check';
import { createRegion } from '../../actors/region.js';
import type { RegionInput } from '../../actors/region-io.js';
import { ineligibility } from '../../actors/routing-index.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { nodeCapacity, type EnergySource, type NodeContext, type NodeStatus } from '../../machines/node.js';
import type { ReservationContext } from '../../machines/reservation.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { tempDir } from '../helpers/fixtures.js';

const models = ['m-a', 'm-b', 'm-c'];
const geozones = ['CAISO', 'ERCOT'];
const rank: Record<EnergySource, number> = { cogen: 0, grid: 1, battery: 2 };

const step = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('telemetry' as const),
      node: fc.integer({ min: 0, max: 7 }),
      energy: fc.constantFrom<EnergySource>('cogen', 'grid', 'battery'),
      util: fc.constantFrom(0, 0.2, 0.5, 0.84, 0.85, 0.9),
      battery: fc.constantFrom(0.1, 0.2, 0.21, 0.8),
      models: fc.subarray(models, { minLength: 1 }),
      gpus: fc.integer({ min: 1, max: 2 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('request' as const), model: fc.constantFrom(...models), zone: fc.constantFrom(...geozones) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('result' as const), pick: fc.nat(), ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40_000 }) }) },
);

interface NodeRow {
  id: string;
  status: NodeStatus;
  context: NodeContext;
}

test('the router never over-commits a node, only picks eligible nodes, always the best-ranked one, and rejects only when none is eligible', async (t) => {
  const { dir, cleanup } = tempDir();
  let run = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80 }), async (steps) => {
        const store = new LmdbStore(`${dir}/run-${run++}`, { noSync: true });
        const clock = new ManualClock(1_000_000);
        const region = createRegion({ geozones, store, clock, scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
        region.supervisor.recover();
        const problems: string[] = [];
        const nodesOf = (shardId: string): NodeRow[] => {
          const rows: NodeRow[] = [];
          for (const [id, kind, snapshot] of region.supervisor.shard(shardId).actors()) {
            if (kind.name === 'node') rows.push({ id: id.slice(5), status: snapshot.value as NodeStatus, context: snapshot.context as NodeContext });
          }
          return rows;
        };
        for (const shard of region.supervisor.all()) {
          // The nodes as the records say they were when each decision was made (observers hear of a
          // step's records when it is kept, after the live nodes may have moved on within it).
          const nodesThen = new Map<string, NodeRow>();
          shard.observe((record: JournalRecord, snapshot) => {
            if (record.kind === 'node' && snapshot !== undefined) {
              const id = record.actorId.slice(5);
              nodesThen.set(id, { id, status: snapshot.value as NodeStatus, context: snapshot.context as NodeContext });
              return;
            }
            if (record.kind !== 'reservation' || snapshot === undefined && record.event.type !== 'route.rejected') return;
            const eligible = [...nodesThen.values()].filter((n) => n.context.modelsLoaded.includes(modelOf(record, shard.shardId)) && ineligibility(n.status, n.context) === undefined);
            if (record.event.type === 'route.reserved') {
              const res = snapshot?.context as ReservationContext;
              const pool = eligible.filter((n) => !res.lostNodes.includes(n.id));
              const chosen = String(record.event['nodeId']);
              const best = [...pool].sort((a, b) => rank[a.context.energySource] - rank[b.context.energySource] || a.context.gpuUtilization - b.context.gpuUtilization || (a.id < b.id ? -1 : 1))[0];
              if (best?.id !== chosen) problems.push(`chose ${chosen}, best eligible was ${best?.id ?? 'none'}`);
              if (record.event['candidates'] !== pool.length) problems.push(`candidates ${String(record.event['candidates'])} != ${pool.length}`);
            }
            if (record.event.type === 'route.rejected' && eligible.length > 0) problems.push(`rejected with ${eligible.length} eligible nodes`);
          });
        }
        const modelByRequest = new Map<string, string>();
        function modelOf(record: JournalRecord, _shard: string): string {
          return modelByRequest.get(record.actorId.slice('reservation/'.length)) ?? '';
        }
        let seq = 0;
        const heldBefore = new Map<string, number>();
        for (const s of steps) {
          let input: RegionInput | undefined;
          if (s.kind === 'advance') {
            clock.set(clock.nowMs() + s.ms);
            region.supervisor.advanceTo(clock.nowMs());
          } else if (s.kind === 'telemetry') {
            clock.set(clock.nowMs() + 1);
            input = {
              type: 'telemetry',
              nodeId: `n${s.node}`,
              report: {
                geohash: '9q9hvu',
                geozone: geozones[s.node % 2] as string,
                energySource: s.energy,
                batteryLevel: s.battery,
                gpuUtilization: s.util,
                gpuCount: s.gpus,
                modelsLoaded: s.models,
                reportedAtMs: clock.nowMs(),
                draining: false,
              },
            };
          } else if (s.kind === 'request') {
            const requestId = `r${seq++}`;
            modelByRequest.set(requestId, s.model);
            input = { type: 'inference', request: { requestId, modelId: s.model, contextWindow: 1024, priority: 'normal', requesterGeozone: s.zone }, triedGeozones: [] };
          } else {
            const open: { requestId: string; nodeId: string }[] = [];
            for (const shard of region.supervisor.all()) {
              for (const [, kind, snapshot] of shard.actors()) {
                const c = snapshot.context as ReservationContext;
                if (kind.name === 'reservation' && c.nodeId !== null) open.push({ requestId: c.requestId, nodeId: c.nodeId });
              }
            }
            const target = open[s.pick % Math.max(1, open.length)];
            if (target !== undefined) input = { type: 'result', requestId: target.requestId, nodeId: target.nodeId, latencyMs: 5, status: s.ok ? 'completed' : 'failed' };
          }
          if (input !== undefined) region.supervisor.submit(input, clock.nowMs());
          for (const shardId of geozones) {
            for (const node of nodesOf(shardId)) {
              // Over-commit is taking a reservation beyond capacity. A node that reports fewer GPUs keeps
              // what it already runs (moving dispatched work would run it twice) and takes no more.
              const holds = node.context.reservations.length;
              if (holds > nodeCapacity(node.context) && holds > (heldBefore.get(node.id) ?? 0)) problems.push(`${node.id} over capacity`);
              heldBefore.set(node.id, holds);
            }
          }
        }
        await region.supervisor.whenIdle();
        await store.close();
        if (problems.length > 0) throw new Error(problems.slice(0, 5).join('; '));
      }),
      {
        numRuns: 60,
        // Found by a CI run: three reservations on a 2-GPU node, then a report of one GPU (capacity 2).
        examples: [
          [
            [
              { kind: 'telemetry', node: 2, energy: 'cogen', util: 0, battery: 0.1, models: ['m-a', 'm-c'], gpus: 2 },
              { kind: 'request', model: 'm-a', zone: 'CAISO' },
              { kind: 'request', model: 'm-a', zone: 'CAISO' },
              { kind: 'request', model: 'm-a', zone: 'CAISO' },
              { kind: 'telemetry', node: 2, energy: 'cogen', util: 0, battery: 0.1, models: ['m-c'], gpus: 1 },
              { kind: 'request', model: 'm-c', zone: 'CAISO' },
            ],
          ],
        ],
      },
    );
    t.pass();
  } finally {
    cleanup();
  }
});
