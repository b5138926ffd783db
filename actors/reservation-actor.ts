import type { AnyMachineSnapshot } from 'xstate';
import { reservationMachine, type ReservationContext } from '../machines/reservation.js';
import type { ActorKind } from '../runtime/actor-kind.js';

/** Reservation actors: one per inference request id, in the shard that routes it. */
export const RESERVATION_KIND = 'reservation';

export const reservationActorId = (requestId: string): string => `reservation/${requestId}`;

export const reservationKind: ActorKind = {
  name: RESERVATION_KIND,
  machine: reservationMachine,
  deadlineOf: (snapshot) => (snapshot.context as ReservationContext).expiresAtMs ?? undefined,
};

export function reservationView(snapshot: AnyMachineSnapshot): { state: string; context: ReservationContext } {
  return { state: snapshot.value as string, context: snapshot.context as ReservationContext };
}
