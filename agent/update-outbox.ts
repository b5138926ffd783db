import type { TrainingUpdateV1 } from '../actors/training-wire.js';
import { OwedOutbox } from './owed-outbox.js';

/** A training update's identity: one per job and round for a node. */
export const updateKey = (jobId: string, round: number): string => `${jobId}/${round}`;

/**
 * Training updates the agent owes the region, keyed by job and round: each is
 * owed from the moment local training ended until the region accepted it (the
 * region counts one update per node and round, so a repeat is harmless). One
 * dropped for the bound belongs to a round closed long ago.
 */
export class UpdateOutbox extends OwedOutbox<TrainingUpdateV1> {
  constructor(maxOwed: number) {
    super(maxOwed, (update) => updateKey(update['job-id'], update.round));
  }
}
