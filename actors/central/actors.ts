import { globalViewMachine, type GlobalViewContext } from '../../machines/global-view.js';
import { hpcJobMachine, type HpcJobContext } from '../../machines/hpc-job.js';
import type { ActorKind } from '../../runtime/actor-kind.js';

/** HPC training jobs: one actor per job id, in the orchestrator's shard. */
export const HPC_JOB_KIND = 'hpc-job';
export const hpcJobActorId = (jobId: string): string => `hpc-job/${jobId}`;
export const hpcJobKind: ActorKind = {
  name: HPC_JOB_KIND,
  machine: hpcJobMachine,
  deadlineOf: (snapshot) => (snapshot.context as HpcJobContext).transferDeadlineAtMs ?? undefined,
};

/** The global view: one actor per geozone that ever sent a regional summary. */
export const GLOBAL_VIEW_KIND = 'global-view';
export const globalViewActorId = (geozone: string): string => `global-view/${geozone}`;
export const globalViewKind: ActorKind = {
  name: GLOBAL_VIEW_KIND,
  machine: globalViewMachine,
  deadlineOf: (snapshot) => (snapshot.context as GlobalViewContext).silentAfterMs ?? undefined,
};
