import type { InferenceResultV1 } from '../actors/wire.js';
import { OwedOutbox } from './owed-outbox.js';

/**
 * Inference results the agent owes the region, keyed by request id: each is
 * owed from the moment its model call ended until the region accepted it.
 * A region gone long enough to drop the oldest has expired those reservations.
 */
export class ResultOutbox extends OwedOutbox<InferenceResultV1> {
  constructor(maxOwed: number) {
    super(maxOwed, (result) => result['request-id']);
  }
}
