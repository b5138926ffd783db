import type { AnyMachineSnapshot } from 'xstate';
import { nodeMachine, type NodeContext, type NodeStatus } from '../machines/node.js';
import type { ActorKind } from '../runtime/actor-kind.js';

/** Compute-node actors: one per node id, in the shard of the node's geozone. */
export const NODE_KIND = 'node';

export const nodeActorId = (nodeId: string): string => `node/${nodeId}`;

export const nodeKind: ActorKind = {
  name: NODE_KIND,
  machine: nodeMachine,
  // Offline nodes have no deadline: they wait for telemetry.
  deadlineOf: (snapshot) => (snapshot.value === 'offline' ? undefined : (snapshot.context as NodeContext).silentAfterMs),
};

export function nodeView(snapshot: AnyMachineSnapshot): { status: NodeStatus; context: NodeContext } {
  return { status: snapshot.value as NodeStatus, context: snapshot.context as NodeContext };
}
