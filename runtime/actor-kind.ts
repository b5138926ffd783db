import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';

/**
 * What the runtime needs to know about one kind of actor: the machine it runs and
 * where its deadline lives. Everything else about the kind (what its events mean)
 * belongs to the behaviour that drives it, outside runtime/.
 */
export interface ActorKind {
  readonly name: string;
  readonly machine: AnyStateMachine;
  /** The actor's next deadline in absolute logical ms, read from its context (deadlines are data). */
  deadlineOf(snapshot: AnyMachineSnapshot): number | undefined;
}

/** A state value flattened to one string: 'online', 'training.collecting', 'a.x,b.y' for parallel regions. */
export function stateString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const parts = Object.keys(value)
      .sort()
      .map((key) => {
        const inner = stateString((value as Record<string, unknown>)[key]);
        return inner === '' ? key : `${key}.${inner}`;
      });
    return parts.join(',');
  }
  return '';
}
