import type { RegionInput } from '../actors/region-io.js';
import { parseWire } from '../actors/wire.js';
import type { InProcessBus } from '../adapters/bus/in-process-bus.js';
import { topics } from '../adapters/bus/topics.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';

export interface EdgeCounters {
  accepted: number;
  /** Failed validation: sent to the dead-letter topic with the coded reason, never to an actor. */
  invalid: number;
  /** Valid but refused by the region (overloaded, unknown geozone). */
  refused: number;
}

/**
 * The region's edge on the bus: every raw message on an input topic is size-
 * checked, parsed and validated (actors/wire.ts) before it can reach an actor.
 * A bad one goes to the dead-letter topic with its error code, and the consumer
 * goes on with the next message.
 */
/** One input topic of a role and the edge decoder of its messages (size, JSON, strict schema; ArcError when bad). */
export interface InputTopic {
  readonly topic: string;
  /** What it carries, as dead letters name it (telemetry, TrainingJob, ...). */
  readonly kind: string;
  readonly decode: (raw: unknown) => RegionInput;
}

/** The region's input topics: NodeTelemetry v2, InferenceRequest v1, InferenceResult v1. */
export const regionInputTopics: readonly InputTopic[] = [
  { topic: topics.telemetry, kind: 'telemetry', decode: (raw) => parseWire('telemetry', raw) },
  { topic: topics.inference, kind: 'inference', decode: (raw) => parseWire('inference', raw) },
  { topic: topics.result, kind: 'result', decode: (raw) => parseWire('result', raw) },
];

export function connectInputs(
  bus: InProcessBus,
  inputTopics: readonly InputTopic[],
  submit: (input: RegionInput) => void,
  stopped: () => boolean,
  onRefused: (error: unknown, topic: string) => void,
): EdgeCounters {
  const counters: EdgeCounters = { accepted: 0, invalid: 0, refused: 0 };
  for (const { topic, decode } of inputTopics) {
    bus.subscribe(topic, (raw) => {
      if (stopped()) return;
      let input: RegionInput;
      try {
        input = decode(raw);
      } catch (error) {
        counters.invalid++;
        const reason = error instanceof ArcError ? error.toJSON() : { code: ErrorCodes.VALIDATION, message: String(error) };
        const sample = typeof raw === 'string' ? raw.slice(0, 1024) : null;
        bus.publish(topics.deadLetter, JSON.stringify({ topic, reason, message: sample }));
        return;
      }
      try {
        submit(input);
        counters.accepted++;
      } catch (error) {
        counters.refused++;
        onRefused(error, topic);
      }
    });
  }
  return counters;
}

/** What the federated path takes from the bus: a FederatedTask v1 or a TrainingUpdate v1 (raw), resolved once durable. */
export type TrainingIngress = (kind: 'task' | 'update', raw: string) => Promise<void>;

/** Codes that say the message itself is bad (dead-lettered), not that the region could not take it now. */
const POISON_CODES: ReadonlySet<string> = new Set([ErrorCodes.VALIDATION, ErrorCodes.MALFORMED_JSON, ErrorCodes.PAYLOAD_TOO_LARGE, ErrorCodes.DATASET, ErrorCodes.BLOB_MISSING, ErrorCodes.NOT_FOUND, ErrorCodes.DUPLICATE_JOB]);

/**
 * The federated path's edge on the bus: FederatedTask v1 on arc.scheduler.training
 * and TrainingUpdate v1 on arc.result.training, through the same validation as
 * HTTP and the agent channel (an update's weights are stored by hash first, so
 * handling is asynchronous). A bad message goes to the dead-letter topic with
 * its code. The region's own `train` messages on arc.scheduler.training (for the
 * nodes) are not inputs and are passed over.
 */
export function connectTrainingInputs(bus: InProcessBus, handle: TrainingIngress, stopped: () => boolean, onRefused: (error: unknown, topic: string) => void): EdgeCounters {
  const counters: EdgeCounters = { accepted: 0, invalid: 0, refused: 0 };
  const routes: [string, 'task' | 'update'][] = [
    [topics.training, 'task'],
    [topics.trainingResult, 'update'],
  ];
  for (const [topic, kind] of routes) {
    bus.subscribe(topic, (raw) => {
      if (stopped() || typeof raw !== 'string') return;
      if (kind === 'task' && isTrainTask(raw)) return;
      handle(kind, raw).then(
        () => counters.accepted++,
        (error: unknown) => {
          if (error instanceof ArcError && POISON_CODES.has(error.code)) {
            counters.invalid++;
            bus.publish(topics.deadLetter, JSON.stringify({ topic, reason: error.toJSON(), message: raw.slice(0, 1024) }));
            return;
          }
          counters.refused++;
          onRefused(error, topic);
        },
      );
    });
  }
  return counters;
}

/** A TrainTask the region itself published for a node (`"type":"train"`), cheaply told apart from a FederatedTask. */
function isTrainTask(raw: string): boolean {
  if (!raw.includes('"train"')) return false;
  try {
    const value = JSON.parse(raw) as { type?: unknown } | null;
    return typeof value === 'object' && value !== null && value.type === 'train';
  } catch {
    return false;
  }
}
