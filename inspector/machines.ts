import type { AnyStateMachine } from 'xstate';
import { GLOBAL_VIEW_KIND, HPC_JOB_KIND } from '../actors/central/actors.js';
import { NODE_KIND } from '../actors/node-actor.js';
import { RESERVATION_KIND } from '../actors/reservation-actor.js';
import { TRAINING_KIND } from '../actors/training-actor.js';
import { federatedRoundMachine } from '../machines/federated-round.js';
import { globalViewMachine } from '../machines/global-view.js';
import { hpcJobMachine } from '../machines/hpc-job.js';
import { nodeMachine } from '../machines/node.js';
import { reservationMachine } from '../machines/reservation.js';
import { layoutStatechart, type Diagram } from './layout.js';
import { statechartOf } from './statechart.js';

/** Every machine in machines/, with the actor kind that runs it (a region's or the central orchestrator's). */
export interface InspectedMachine {
  readonly machine: AnyStateMachine;
  readonly kind: string | null;
}

export const inspectedMachines: readonly InspectedMachine[] = [
  { machine: nodeMachine, kind: NODE_KIND },
  { machine: reservationMachine, kind: RESERVATION_KIND },
  { machine: federatedRoundMachine, kind: TRAINING_KIND },
  { machine: hpcJobMachine, kind: HPC_JOB_KIND },
  { machine: globalViewMachine, kind: GLOBAL_VIEW_KIND },
];

export interface MachineDiagram extends Diagram {
  readonly kind: string | null;
}

let cached: Promise<MachineDiagram[]> | undefined;

/** The laid-out diagram of every machine (computed once per process: machines do not change while it runs). */
export function machineDiagrams(machines: readonly InspectedMachine[] = inspectedMachines): Promise<MachineDiagram[]> {
  const compute = (): Promise<MachineDiagram[]> =>
    Promise.all(machines.map(async ({ machine, kind }) => ({ ...(await layoutStatechart(statechartOf(machine))), kind })));
  if (machines !== inspectedMachines) return compute();
  cached ??= compute();
  return cached;
}
