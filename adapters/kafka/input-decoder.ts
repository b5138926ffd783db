import type { RegionInput } from '../../actors/region-io.js';
import { limits, parseWire, type WireKind } from '../../actors/wire.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * A message of an input topic as a region input: the seed's schemas (parseWire:
 * size limit, JSON, strict zod), the schema version a producer may declare, and
 * the headers the Kafka region itself adds to forwarded requests. Every refusal
 * is an ArcError whose code goes on the dead letter.
 */

/** Request header carrying the geozones that already tried a forwarded request (JSON string[]). */
export const TRIED_HEADER = 'x-arcnet-tried';
/** Request header marking a forward acknowledgement (value: `{"request-id": ...}`), not a new request. */
export const FORWARD_ACK_HEADER = 'x-arcnet-forward-ack';
/**
 * Optional header naming the message's schema and version ("NodeTelemetry/v2"),
 * as the seed's topic table names them. A message without it is read as the
 * supported version; one that names another schema or version is refused
 * (ARC_ERR_UNSUPPORTED_VERSION) instead of being read as something it is not.
 */
export const SCHEMA_HEADER = 'x-schema';

/** The schema and version each input topic carries (the seed's topic table). */
export const inputSchemas: Readonly<Record<WireKind, string>> = {
  telemetry: 'NodeTelemetry/v2',
  inference: 'InferenceRequest/v1',
  result: 'InferenceResult/v1',
};

const MAX_TRIED_GEOZONES = 64;
/** A header is metadata: anything longer than a message is not one of ours. */
const MAX_HEADER_BYTES = limits.maxMessageBytes;

/** What the decoder reads of a Kafka message (kafkajs's KafkaMessage fits). */
export interface RawInputMessage {
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>> | undefined;
}

export function decodeInput(kind: WireKind, message: RawInputMessage, geozone: string): RegionInput {
  const value = message.value;
  if (value === null) throw new ArcError(ErrorCodes.VALIDATION, `${kind} message has no value (a tombstone)`);
  const schema = header(message, SCHEMA_HEADER);
  if (schema !== undefined && schema !== inputSchemas[kind]) {
    throw new ArcError(ErrorCodes.UNSUPPORTED_VERSION, `${kind} message declares ${SCHEMA_HEADER}: ${schema}; this region reads ${inputSchemas[kind]} only`, {
      declared: schema,
      supported: inputSchemas[kind],
    });
  }
  if (kind !== 'inference') return parseWire(kind, value);
  if (header(message, FORWARD_ACK_HEADER) !== undefined) return forwardAck(value, geozone);
  const input = parseWire(kind, value);
  const tried = header(message, TRIED_HEADER);
  if (tried === undefined || input.type !== 'inference') return input;
  const triedGeozones = parseJson(tried, `${TRIED_HEADER} header`);
  if (!Array.isArray(triedGeozones) || triedGeozones.length > MAX_TRIED_GEOZONES || !triedGeozones.every((g) => typeof g === 'string')) {
    throw new ArcError(ErrorCodes.VALIDATION, `bad ${TRIED_HEADER} header: a JSON array of at most ${MAX_TRIED_GEOZONES} geozones is expected`);
  }
  return { ...input, triedGeozones, targetGeozone: geozone };
}

function forwardAck(value: Buffer, geozone: string): RegionInput {
  if (value.byteLength > limits.maxMessageBytes) {
    throw new ArcError(ErrorCodes.PAYLOAD_TOO_LARGE, `forward ack is ${value.byteLength} bytes; the limit is ${limits.maxMessageBytes}`);
  }
  const ack = parseJson(value.toString('utf8'), 'forward ack') as { 'request-id'?: unknown } | null;
  const requestId = typeof ack === 'object' && ack !== null ? ack['request-id'] : undefined;
  if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > limits.maxIdLength) {
    throw new ArcError(ErrorCodes.VALIDATION, 'forward ack without a request-id');
  }
  return { type: 'forward.ack', requestId, geozone };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ArcError(ErrorCodes.MALFORMED_JSON, `${what} is not valid JSON: ${(error as Error).message}`);
  }
}

function header(message: RawInputMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  if (value === undefined) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  const text = first.toString();
  if (Buffer.byteLength(text, 'utf8') > MAX_HEADER_BYTES) throw new ArcError(ErrorCodes.PAYLOAD_TOO_LARGE, `header ${name} is longer than ${MAX_HEADER_BYTES} bytes`);
  return text;
}
