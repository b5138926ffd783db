import test from 'ava';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer } from 'kafkajs';
import type { z } from 'zod';
import { createRegion } from '../../actors/region.js';
import type { RegionEffect } from '../../actors/region-io.js';
import { inferenceRequestSchema, inferenceResultSchema, nodeTelemetrySchema, parseWire, wireKinds, type WireKind } from '../../actors/wire.js';
import {
  inferenceDecisionSchema,
  inferenceDispatchSchema,
  regionalSummarySchema,
  reservationEndedSchema,
  systemEventSchema,
  wireOutSchemas,
  type WireOutKind,
} from '../../actors/wire-out.js';
import { effectToWire } from '../../adapters/bus/topics.js';
import { ensureTopics, geozonePartition, geozonePartitioner, topicNames, topicSpecs } from '../../adapters/kafka/topics.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { ArcError } from '../../runtime/errors.js';
import { tempDir } from '../helpers/fixtures.js';
import { kafkaTest, testKafka } from '../helpers/kafka-broker.js';

const GEOZONES = ['CAISO', 'ERCOT', 'PJM'];
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

// ------------------------------------------------------------------ the messages

const telemetryFull = {
  'node-id': 'CAISO-SanJose-042',
  geozone: 'CAISO',
  geohash: '9q9hvu',
  'energy-source': 'cogen',
  'battery-level': 0.87,
  'gpu-utilization': 0.42,
  'models-loaded': ['llama-3-70b', 'stable-diffusion-xl'],
  timestamp: '2025-12-28T18:45:00Z',
  'node-name': 'CAISO SanJose 042',
  'gpu-count': 8,
  status: 'draining',
};
const { 'node-name': _n, 'gpu-count': _c, status: _s, ...telemetryMinimal } = { ...telemetryFull, 'node-id': 'ERCOT-Austin-007', geozone: 'ERCOT', geohash: '9v6kp', 'models-loaded': [] };
const request = { 'request-id': 'req-1', 'model-id': 'llama-3-70b', 'context-window': 4096, priority: 'critical', 'requester-geozone': 'PJM' };
const resultCompleted = { 'request-id': 'req-1', 'node-id': 'PJM-Node-1', 'latency-ms': 123.5, status: 'completed' };
const resultFailed = { 'request-id': 'req-2', 'node-id': 'PJM-Node-1', 'latency-ms': 0, status: 'failed' };

const effects = {
  dispatch: {
    type: 'dispatch',
    geozone: 'ERCOT',
    atMs: T0,
    requestId: 'req-1',
    nodeId: 'ERCOT-Austin-007',
    modelId: 'llama-3-70b',
    contextWindow: 4096,
    priority: 'normal',
    expiresAtMs: T0 + 30_000,
  },
  summary: {
    type: 'summary',
    summary: { geozoneId: 'PJM', atMs: T0 + 60_000, totalNodes: 10, activeNodes: 7, avgGpuUtil: 0.512345, energyBreakdown: { cogen: 3, grid: 2, battery: 2 }, openReservations: 4 },
  },
  system: {
    type: 'system',
    atMs: T0 + 1,
    severity: 'warn',
    message: 'node went offline',
    details: { geozone: 'CAISO', nodeId: 'CAISO-SanJose-042', silentForMs: 30_000, models: ['llama-3-70b'], lastReport: { battery: 0.2, draining: false }, note: null },
  },
  decisionReserved: {
    type: 'decision',
    atMs: T0 + 2,
    requestId: 'req-1',
    outcome: 'reserved',
    requesterGeozone: 'CAISO',
    geozone: 'ERCOT',
    nodeId: 'ERCOT-Austin-007',
    expiresAtMs: T0 + 30_002,
    candidates: 3,
    reason: 'best of 3 eligible in ERCOT: cogen, gpu 0.1',
  },
  decisionRejected: { type: 'decision', atMs: T0 + 3, requestId: 'req-9', outcome: 'rejected', geozone: 'CAISO', requesterGeozone: 'CAISO', candidates: 0, reason: 'no eligible node for gpt-x in CAISO, ERCOT, PJM' },
  decisionDuplicate: { type: 'decision', atMs: T0 + 4, requestId: 'req-1', outcome: 'duplicate', geozone: 'ERCOT', requesterGeozone: 'ERCOT', candidates: 0, reason: 'request id already seen in this geozone' },
  endedCompleted: { type: 'ended', atMs: T0 + 5, requestId: 'req-1', geozone: 'ERCOT', outcome: 'completed', nodeId: 'ERCOT-Austin-007', reason: 'result-completed' },
  endedRejected: { type: 'ended', atMs: T0 + 6, requestId: 'req-9', geozone: 'CAISO', outcome: 'rejected', nodeId: null, reason: null },
} satisfies Record<string, RegionEffect>;

interface Case {
  readonly name: string;
  readonly topic: string;
  readonly key: string;
  readonly schema: z.ZodType;
  readonly message: Record<string, unknown>;
  /** For inputs: the kind parseWire validates it as. */
  readonly kind?: WireKind;
}

function wireOf(effect: RegionEffect): { topic: string; message: Record<string, unknown> } {
  const wire = effectToWire(effect);
  if (wire === undefined) throw new Error(`${effect.type} has no wire form`);
  return wire;
}

function cases(prefix: string): Case[] {
  const names = topicNames({ prefix });
  const input = (name: string, kind: WireKind, topic: string, key: string, message: Record<string, unknown>): Case => ({
    name,
    kind,
    topic,
    key,
    schema: wireKinds[kind].schema,
    message,
  });
  const output = (name: string, kind: WireOutKind, effect: RegionEffect, key: string): Case => {
    const wire = wireOf(effect);
    return { name, topic: prefix + wire.topic, key, schema: wireOutSchemas[kind], message: wire.message };
  };
  return [
    input('telemetry with optional fields', 'telemetry', names.telemetry, 'CAISO', telemetryFull),
    input('telemetry without optional fields', 'telemetry', names.telemetry, 'ERCOT', telemetryMinimal),
    input('inference request', 'inference', names.inference, 'PJM', request),
    input('result completed', 'result', names.result, 'PJM', resultCompleted),
    input('result failed', 'result', names.result, 'PJM', resultFailed),
    output('dispatch', 'dispatch', effects.dispatch, 'ERCOT'),
    output('summary', 'summary', effects.summary, 'PJM'),
    output('system event', 'system', effects.system, 'CAISO'),
    output('decision reserved', 'decision', effects.decisionReserved, 'ERCOT'),
    output('decision rejected', 'decision', effects.decisionRejected, 'CAISO'),
    output('decision duplicate', 'decision', effects.decisionDuplicate, 'ERCOT'),
    output('ended completed', 'ended', effects.endedCompleted, 'ERCOT'),
    output('ended rejected', 'ended', effects.endedRejected, 'CAISO'),
  ];
}

// ------------------------------------------------------------------ without a broker

test('effectToWire writes each output on its topic in the shape its wire-out schema accepts', (t) => {
  t.is(wireOf(effects.dispatch).topic, 'arc.command.dispatch.ERCOT');
  t.is(wireOf(effects.summary).topic, 'arc.summary.regional');
  t.is(wireOf(effects.system).topic, 'arc.event.system');
  t.is(wireOf(effects.decisionReserved).topic, 'arc.decision.inference');
  t.is(wireOf(effects.endedCompleted).topic, 'arc.reservation.ended');
  for (const c of cases('')) t.true(c.schema.safeParse(c.message).success, c.name);
  t.is(effectToWire({ type: 'forward-ack', atMs: T0, toGeozone: 'CAISO', requestId: 'r' }), undefined, 'internal effects have no wire form');
  const dispatch = inferenceDispatchSchema.parse(wireOf(effects.dispatch).message);
  t.is(Date.parse(dispatch['expires-at']), effects.dispatch.expiresAtMs, 'expires-at keeps the millisecond');
});

interface Broken {
  readonly name: string;
  readonly schema: z.ZodType;
  readonly valid: Record<string, unknown>;
  readonly variants: Record<string, Record<string, unknown>>;
}

const broken: Broken[] = [
  {
    name: 'NodeTelemetry v2',
    schema: nodeTelemetrySchema,
    valid: telemetryFull,
    variants: {
      'wrong type': { ...telemetryFull, 'battery-level': '0.87' },
      'missing field': (({ geohash: _g, ...rest }) => rest)(telemetryFull),
      'unknown enum': { ...telemetryFull, 'energy-source': 'nuclear' },
      'extra key': { ...telemetryFull, admin: true },
      'unknown optional status': { ...telemetryFull, status: 'sleeping' },
    },
  },
  {
    name: 'InferenceRequest v1',
    schema: inferenceRequestSchema,
    valid: request,
    variants: {
      'wrong type': { ...request, 'context-window': '4096' },
      'missing field': (({ 'model-id': _m, ...rest }) => rest)(request),
      'unknown enum': { ...request, priority: 'urgent' },
      'extra key': { ...request, 'node-id': 'pick-me' },
    },
  },
  {
    name: 'InferenceResult v1',
    schema: inferenceResultSchema,
    valid: resultCompleted,
    variants: {
      'wrong type': { ...resultCompleted, 'latency-ms': '123' },
      'missing field': (({ status: _s, ...rest }) => rest)(resultCompleted),
      'unknown enum': { ...resultCompleted, status: 'timeout' },
      'extra key': { ...resultCompleted, extra: 1 },
    },
  },
  ...((): Broken[] => {
    const d = wireOf(effects.dispatch).message;
    const s = wireOf(effects.summary).message;
    const e = wireOf(effects.system).message;
    const r = wireOf(effects.decisionReserved).message;
    const x = wireOf(effects.decisionRejected).message;
    const n = wireOf(effects.endedCompleted).message;
    const without = (m: Record<string, unknown>, key: string) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== key));
    return [
      {
        name: 'InferenceDispatch v1',
        schema: inferenceDispatchSchema,
        valid: d,
        variants: {
          'wrong type': { ...d, 'context-window': '4096' },
          'missing field': without(d, 'expires-at'),
          'unknown enum': { ...d, priority: 'urgent' },
          'extra key': { ...d, geozone: 'ERCOT' },
          'not a timestamp': { ...d, 'expires-at': 'in 30 s' },
        },
      },
      {
        name: 'RegionalSummary v1',
        schema: regionalSummarySchema,
        valid: s,
        variants: {
          'wrong type': { ...s, 'total-nodes': '10' },
          'missing field': without(s, 'timestamp'),
          'unknown enum (energy source)': { ...s, 'energy-breakdown': { cogen: 3, grid: 2, nuclear: 2 } },
          'extra key': { ...s, 'max-gpu-util': 1 },
          'more active than total': { ...s, 'active-nodes': 11 },
          'breakdown not adding up': { ...s, 'energy-breakdown': { cogen: 3, grid: 2, battery: 1 } },
        },
      },
      {
        name: 'SystemEvent v1',
        schema: systemEventSchema,
        valid: e,
        variants: {
          'wrong type': { ...e, details: 'node went offline' },
          'missing field': without(e, 'message'),
          'unknown enum': { ...e, severity: 'fatal' },
          'extra key': { ...e, geozone: 'CAISO' },
        },
      },
      {
        name: 'InferenceDecision v1',
        schema: inferenceDecisionSchema,
        valid: r,
        variants: {
          'wrong type': { ...r, candidates: '3' },
          'missing field': without(r, 'reason'),
          'unknown enum': { ...r, outcome: 'maybe' },
          'extra key': { ...r, priority: 'normal' },
          'reserved without a node': { ...r, 'node-id': null },
          'rejected with a node': { ...x, 'node-id': 'ERCOT-Austin-007' },
        },
      },
      {
        name: 'ReservationEnded v1',
        schema: reservationEndedSchema,
        valid: n,
        variants: {
          'wrong type': { ...n, 'node-id': 42 },
          'missing field': without(n, 'outcome'),
          'unknown enum': { ...n, outcome: 'vanished' },
          'extra key': { ...n, 'latency-ms': 5 },
        },
      },
    ];
  })(),
];

test('every schema rejects a broken variant: wrong type, missing field, unknown enum, extra key', (t) => {
  for (const { name, schema, valid, variants } of broken) {
    t.true(schema.safeParse(valid).success, `${name}: the valid message passes`);
    for (const required of ['wrong type', 'missing field', 'extra key']) t.truthy(variants[required], `${name} has a '${required}' case`);
    t.truthy(Object.keys(variants).find((k) => k.startsWith('unknown enum')), `${name} has an unknown-enum case`);
    for (const [what, message] of Object.entries(variants)) {
      t.false(schema.safeParse(message).success, `${name} rejects: ${what}`);
    }
  }
  // The input schemas reject through parseWire with the stable code.
  const kinds: [WireKind, Record<string, unknown>][] = [
    ['telemetry', { ...telemetryFull, 'energy-source': 'nuclear' }],
    ['inference', { ...request, priority: 'urgent' }],
    ['result', { ...resultCompleted, 'latency-ms': '1' }],
  ];
  for (const [kind, message] of kinds) {
    const error = t.throws(() => parseWire(kind, JSON.stringify(message)), { instanceOf: ArcError });
    t.is(error.code, 'ARC_ERR_VALIDATION');
  }
});

test('every effect a running region publishes conforms to its wire-out schema', async (t) => {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  const clock = new ManualClock(T0);
  const emitted: RegionEffect[] = [];
  const region = createRegion({ geozones: ['CAISO', 'ERCOT'], store, clock, scheduler: realScheduler, deliverForwards: true, onEffects: (e) => emitted.push(...e) });
  try {
    region.supervisor.recover();
    const at = (ms: number) => {
      clock.set(T0 + ms);
      region.supervisor.advanceTo(T0 + ms);
    };
    const submit = (kind: WireKind, message: Record<string, unknown>) => region.supervisor.submit(parseWire(kind, JSON.stringify(message)), clock.nowMs());
    const node = (id: string, geozone: string, source: string) => ({
      ...telemetryMinimal,
      'node-id': id,
      geozone,
      'energy-source': source,
      'models-loaded': ['llama-3-70b'],
      timestamp: new Date(clock.nowMs()).toISOString(),
    });
    submit('telemetry', node('c1', 'CAISO', 'cogen'));
    submit('telemetry', node('c2', 'CAISO', 'battery'));
    submit('telemetry', node('e1', 'ERCOT', 'grid'));
    at(1_000);
    submit('inference', { ...request, 'request-id': 'r1', 'requester-geozone': 'CAISO' });
    submit('inference', { ...request, 'request-id': 'r1', 'requester-geozone': 'CAISO' });
    submit('inference', { ...request, 'request-id': 'r2', 'model-id': 'no-such-model', 'requester-geozone': 'ERCOT' });
    submit('inference', { ...request, 'request-id': 'r3', 'requester-geozone': 'ERCOT' });
    submit('inference', { ...request, 'request-id': 'r4', 'requester-geozone': 'CAISO' });
    await region.supervisor.whenIdle();
    const dispatched = emitted.filter((e): e is Extract<RegionEffect, { type: 'dispatch' }> => e.type === 'dispatch');
    const first = dispatched.find((d) => d.requestId === 'r1');
    if (first !== undefined) submit('result', { 'request-id': 'r1', 'node-id': first.nodeId, 'latency-ms': 250, status: 'completed' });
    at(2_000);
    // Nodes fall silent; reservations expire; summaries tick.
    for (let ms = 10_000; ms <= 180_000; ms += 10_000) at(ms);
    await region.supervisor.whenIdle();

    const seen = new Set<string>();
    for (const effect of emitted) {
      const wire = effectToWire(effect);
      if (wire === undefined) continue;
      const kind = effect.type as WireOutKind;
      const parsed = wireOutSchemas[kind].safeParse(JSON.parse(JSON.stringify(wire.message)));
      t.true(parsed.success, `${effect.type} ${JSON.stringify(wire.message)}: ${parsed.success ? '' : parsed.error.message}`);
      seen.add(effect.type === 'decision' || effect.type === 'ended' ? `${effect.type}:${effect.outcome}` : effect.type);
    }
    t.log([...seen].sort().join(', '));
    for (const expected of ['dispatch', 'summary', 'system', 'decision:reserved', 'decision:duplicate', 'decision:rejected', 'ended:completed', 'ended:failed', 'ended:rejected']) {
      t.true(seen.has(expected), `the scenario produced a ${expected} effect`);
    }
  } finally {
    await store.close();
    cleanup();
  }
});

// ------------------------------------------------------------------ on the broker

kafkaTest('every wire schema survives a round trip through real topics: produce, consume, parse, deep-equal', async (t) => {
  t.timeout(180_000);
  const run = randomUUID().slice(0, 8);
  const prefix = `t${run}.`;
  const clientLog: string[] = [];
  const kafka = testKafka(`wire-roundtrip-${run}`, clientLog);
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: geozonePartitioner(GEOZONES), idempotent: true, retry: { retries: 5 } });
  const consumer: Consumer = kafka.consumer({ groupId: `wire-roundtrip-${run}`, sessionTimeout: 30_000, rebalanceTimeout: 60_000 });
  const specs = topicSpecs(GEOZONES, { prefix });
  const all = cases(prefix);
  try {
    await admin.connect();
    await ensureTopics(admin, specs);
    const known = new Set(specs.map((s) => s.name));
    for (const c of all) t.true(known.has(c.topic), `${c.name} goes to a topic of topicSpecs (${c.topic})`);

    await producer.connect();
    for (const c of all) {
      await producer.send({ topic: c.topic, acks: -1, messages: [{ key: c.key, value: JSON.stringify(c.message), headers: { 'x-case': c.name } }] });
    }

    const received = new Map<string, { value: Buffer; partition: number; topic: string }>();
    await consumer.connect();
    await consumer.subscribe({ topics: [...new Set(all.map((c) => c.topic))], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        const name = message.headers?.['x-case']?.toString() ?? '?';
        if (message.value !== null) received.set(name, { value: message.value, partition, topic });
        return Promise.resolve();
      },
    });
    for (let waited = 0; received.size < all.length && waited < 90_000; waited += 100) await sleep(100);
    t.is(received.size, all.length, 'every message came back');

    for (const c of all) {
      const got = received.get(c.name);
      if (got === undefined) {
        t.fail(`${c.name} not received`);
        continue;
      }
      t.is(got.topic, c.topic);
      const parsed: unknown = c.schema.parse(JSON.parse(got.value.toString('utf8')));
      t.deepEqual(parsed, c.message, `${c.name}: parsed equals what was sent`);
      const spec = specs.find((s) => s.name === c.topic);
      if (spec?.keying === 'geozone') t.is(got.partition, geozonePartition(c.key, GEOZONES), `${c.name} on its geozone's partition`);
      if (c.kind !== undefined) {
        t.deepEqual(parseWire(c.kind, got.value), wireKinds[c.kind].toInput(c.message as never), `${c.name}: the region input`);
      }
    }
  } catch (err) {
    t.log(clientLog.slice(-40).join('\n'));
    throw err;
  } finally {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    try {
      await admin.deleteTopics({ topics: specs.map((s) => s.name), timeout: 30_000 });
    } catch (err) {
      t.log(`could not delete the test topics: ${String(err)}`);
    }
    await admin.disconnect();
  }
});
