import test from 'ava';
import fc from 'fast-check';
import { limits, parseWire } from '../../actors/wire.js';
import { ArcError } from '../../runtime/errors.js';

const telemetry = {
  'node-id': 'CAISO-SanJose-042',
  geozone: 'CAISO',
  geohash: '9q9hvu',
  'energy-source': 'cogen',
  'battery-level': 0.87,
  'gpu-utilization': 0.42,
  'models-loaded': ['llama-3-70b', 'stable-diffusion-xl'],
  timestamp: '2025-12-28T18:45:00Z',
};
const request = { 'request-id': 'req-1', 'model-id': 'llama-3-70b', 'context-window': 4096, priority: 'normal', 'requester-geozone': 'CAISO' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof ArcError ? error.code : 'not-an-ArcError';
  }
}

test('the seed\'s telemetry example parses into a region input', (t) => {
  const input = parseWire('telemetry', JSON.stringify(telemetry));
  t.is(input.type, 'telemetry');
  if (input.type !== 'telemetry') return;
  t.is(input.nodeId, 'CAISO-SanJose-042');
  t.is(input.report.energySource, 'cogen');
  t.is(input.report.reportedAtMs, Date.parse('2025-12-28T18:45:00Z'));
  t.is(input.report.gpuCount, 8);
});

test('requests and results parse', (t) => {
  t.is(parseWire('inference', request).type, 'inference');
  t.is(parseWire('result', { 'request-id': 'req-1', 'node-id': 'n1', 'latency-ms': 120, status: 'completed' }).type, 'result');
});

test('bad input gets a stable code: wrong types, missing fields, unknown enum values, extra keys', (t) => {
  t.is(codeOf(() => parseWire('telemetry', { ...telemetry, 'battery-level': '0.8' })), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('telemetry', { ...telemetry, 'battery-level': 1.5 })), 'ARC_ERR_VALIDATION');
  const { geohash: _g, ...missing } = telemetry;
  t.is(codeOf(() => parseWire('telemetry', missing)), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('telemetry', { ...telemetry, 'energy-source': 'nuclear' })), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('inference', { ...request, priority: 'urgent' })), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('inference', { ...request, admin: true })), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('result', { 'request-id': 'r', 'node-id': 'n', 'latency-ms': -1, status: 'completed' })), 'ARC_ERR_VALIDATION');
  t.is(codeOf(() => parseWire('telemetry', { ...telemetry, timestamp: 'yesterday' })), 'ARC_ERR_VALIDATION');
});

test('malformed JSON and oversized payloads are refused before parsing', (t) => {
  t.is(codeOf(() => parseWire('inference', '{"request-id": ')), 'ARC_ERR_MALFORMED_JSON');
  const huge = JSON.stringify({ ...request, 'model-id': 'x'.repeat(limits.maxMessageBytes) });
  t.is(codeOf(() => parseWire('inference', huge)), 'ARC_ERR_PAYLOAD_TOO_LARGE');
});

test('the validation error names the field and what is wrong', (t) => {
  const error = t.throws(() => parseWire('inference', { ...request, 'context-window': 'big' }), { instanceOf: ArcError });
  t.regex(error.message, /context-window/);
});

test('fuzzed messages either parse or fail with a coded ArcError, never anything else', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.json(), fc.string(), fc.anything()), fc.constantFrom<('telemetry' | 'inference' | 'result')[]>('telemetry', 'inference', 'result'), (raw, kind) => {
      const code = codeOf(() => parseWire(kind, raw));
      return code === undefined || code.startsWith('ARC_ERR_');
    }),
    { numRuns: 500 },
  );
  t.pass();
});
