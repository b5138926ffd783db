import type { AnyStateMachine } from 'xstate';

/**
 * A machine's statechart as plain JSON, read from the machine itself (its
 * resolved state tree, `machine.root`), so the inspector's diagrams follow the
 * definitions in machines/: a new state or transition there is a new box or
 * arrow here, with nothing drawn by hand.
 */
export interface StateInfo {
  /** XState's id, e.g. 'node.online' (the machine id for the root). */
  readonly id: string;
  readonly key: string;
  /** The flattened path, as journal records name states ('online', 'training.collecting'); '' for the root. */
  readonly path: string;
  /** Id of the enclosing state; null for the root. */
  readonly parent: string | null;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Id of the child entered first (compound states). */
  readonly initial: string | null;
  /** The comment above the state in its machine, when XState carries one (`description`). */
  readonly description: string | null;
}

export interface TransitionInfo {
  readonly id: string;
  /** The state whose `on`/`always` declares it. */
  readonly source: string;
  /** Null for a transition that stays in its state (it only runs actions). */
  readonly target: string | null;
  /** The event type; 'always' for eventless transitions. */
  readonly event: string;
  /** The guard's name ('isDue', 'and(fromHolder, canRetry)', 'inline'); null when unguarded. */
  readonly guard: string | null;
  /** Declaration order among the source's transitions for this event (XState tries them in this order). */
  readonly order: number;
}

export interface StatechartGraph {
  /** The machine's id (e.g. 'node', 'hpcJob'). */
  readonly machine: string;
  readonly root: string;
  readonly states: readonly StateInfo[];
  readonly transitions: readonly TransitionInfo[];
}

/** The part of XState's StateNode this model reads (kept narrow: it is internal API). */
interface StateNodeLike {
  readonly id: string;
  readonly key: string;
  readonly path: readonly string[];
  readonly type: StateInfo['type'];
  readonly description?: string | undefined;
  readonly states: Readonly<Record<string, StateNodeLike>>;
  readonly parent?: StateNodeLike | undefined;
  readonly initial?: { readonly target: readonly StateNodeLike[] } | undefined;
  readonly transitions: ReadonlyMap<string, readonly TransitionLike[]>;
  readonly always?: readonly TransitionLike[] | undefined;
}

interface TransitionLike {
  readonly target?: readonly StateNodeLike[] | undefined;
  readonly guard?: unknown;
}

/** Combinator names as XState's and()/or()/not() guards carry them (their `check` function). */
const combinators: Readonly<Record<string, string>> = { checkAnd: 'and', checkOr: 'or', checkNot: 'not' };

/** A readable name for a guard as XState stores it: a name, a { type } object, a combinator, or an inline function. */
export function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const composite = guard as { check?: { name?: string }; guards?: readonly unknown[] };
    const combinator = combinators[composite.check?.name ?? ''];
    if (combinator !== undefined && Array.isArray(composite.guards)) {
      return `${combinator}(${composite.guards.map((g) => guardName(g) ?? '?').join(', ')})`;
    }
    return 'inline';
  }
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  return 'inline';
}

export function statechartOf(machine: AnyStateMachine): StatechartGraph {
  const root = machine.root as unknown as StateNodeLike;
  const states: StateInfo[] = [];
  const transitions: TransitionInfo[] = [];
  const visit = (node: StateNodeLike): void => {
    states.push({
      id: node.id,
      key: node.key,
      path: node.path.join('.'),
      parent: node.parent?.id ?? null,
      type: node.type,
      initial: node.initial?.target[0]?.id ?? null,
      description: node.description ?? null,
    });
    const declared: [string, readonly TransitionLike[]][] = [...node.transitions.entries()];
    if (node.always !== undefined && node.always.length > 0) declared.push(['always', node.always]);
    for (const [event, list] of declared) {
      list.forEach((transition, order) => {
        transitions.push({
          id: `${node.id}:${event}:${order}`,
          source: node.id,
          target: transition.target?.[0]?.id ?? null,
          event,
          guard: guardName(transition.guard),
          order,
        });
      });
    }
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(root);
  return { machine: machine.id, root: root.id, states, transitions };
}
