import type { AnyMachineSnapshot } from 'xstate';
import { federatedRoundMachine, type FederatedRoundContext } from '../machines/federated-round.js';
import type { ActorKind } from '../runtime/actor-kind.js';

/** Federated-training actors: one per job, in the shard of the job's geozone, running the rounds. */
export const TRAINING_KIND = 'federated-round';

export const trainingActorId = (jobId: string): string => `training/${jobId}`;

export const trainingKind: ActorKind = {
  name: TRAINING_KIND,
  machine: federatedRoundMachine,
  // The round deadline is data in context; the timer wheel fires it as a `deadline` event.
  deadlineOf: (snapshot) => (snapshot.value === 'training' ? ((snapshot.context as FederatedRoundContext).roundDeadlineAtMs ?? undefined) : undefined),
};

export function trainingView(snapshot: AnyMachineSnapshot): { state: string; context: FederatedRoundContext } {
  return { state: snapshot.value as string, context: snapshot.context as FederatedRoundContext };
}
