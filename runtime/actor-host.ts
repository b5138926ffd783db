import { createActor, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import type { ActorKind } from './actor-kind.js';
import { ArcError, ErrorCodes, invariant } from './errors.js';
import type { JournalEvent } from './journal.js';
import type { PersistedActor } from './snapshot-store.js';

/** The scope a machine's transition takes. */
type MachineScope = Parameters<AnyStateMachine['transition']>[2];

/** An actor's snapshot as it was when taken (see currentSnapshots). */
export interface HeldSnapshot {
  readonly id: string;
  readonly kind: ActorKind;
  readonly snapshot: AnyMachineSnapshot;
}

/** The persisted form of a held snapshot, as persistAll gives it. */
export function persistHeld(held: HeldSnapshot): PersistedActor {
  return { id: held.id, kind: held.kind.name, snapshot: held.kind.machine.getPersistedSnapshot(held.snapshot) };
}

/** The fields of a persisted XState machine snapshot that decide how it is restored. */
interface PersistedShape {
  readonly status?: unknown;
  readonly value?: unknown;
  readonly context?: unknown;
  readonly children?: unknown;
  readonly historyValue?: unknown;
  readonly output?: unknown;
  readonly error?: unknown;
}

/** Distinct (kind, status, state value) templates kept; past it, restoreSnapshot does the rest. */
const MAX_RESTORE_TEMPLATES = 4096;
/** Context nesting searched for actor references; deeper contexts take restoreSnapshot. */
const MAX_CONTEXT_DEPTH = 32;

function isEmptyRecord(value: unknown): boolean {
  if (value === undefined) return true;
  if (value === null || typeof value !== 'object') return false;
  for (const _ in value) return false;
  return true;
}

/**
 * Whether a persisted context holds an actor reference (what restoreSnapshot
 * revives into a child), or is nested too deep to tell cheaply: either way the
 * template cannot stand in for restoreSnapshot.
 */
function holdsActorReference(value: object, depth: number): boolean {
  if (depth > MAX_CONTEXT_DEPTH) return true;
  if ('xstate$$type' in value) return true;
  for (const key in value) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner !== null && typeof inner === 'object' && holdsActorReference(inner, depth + 1)) return true;
  }
  return false;
}

interface Hosted {
  readonly kind: ActorKind;
  snapshot: AnyMachineSnapshot;
}

/**
 * The actors of one shard, by id: each is its XState v5 machine's current
 * snapshot, and an event moves it with the machine's own `transition`, which is
 * what a started actor's `send` runs. Every machine here is pure (assign-only),
 * so a transition is a deterministic step and nothing else: there are no
 * actions to run, children, timers or subscribers that would need an actor.
 *
 * Why not one started actor per id: an XState actor object costs about 4 KB of
 * heap beside its ~0.6 KB snapshot (100,000 node actors: ~400 MB against ~60 MB),
 * and `send` is about half as fast as `transition` with a scope made once per
 * kind (xstate's exported `transition()` helper builds an actor to make a scope
 * on every call, which is why it measured slower). The snapshots, and so the
 * journal, persisted snapshots and state hash, are the same either way.
 */
export class ActorHost {
  private readonly actors = new Map<string, Hosted>();
  private readonly kinds: ReadonlyMap<string, ActorKind>;
  /** One inert scope per kind: the machines never touch it (no actions, no children), transition requires one. */
  private readonly scopes = new Map<string, MachineScope>();
  /** Restored snapshots by (kind, status, state value), whose fields all but the context every actor in that state shares. */
  private readonly templates = new Map<string, AnyMachineSnapshot>();

  constructor(kinds: readonly ActorKind[]) {
    this.kinds = new Map(kinds.map((k) => [k.name, k]));
  }

  kind(name: string): ActorKind {
    const kind = this.kinds.get(name);
    if (kind === undefined) throw new ArcError(ErrorCodes.INVARIANT, `unknown actor kind '${name}'`);
    return kind;
  }

  get size(): number {
    return this.actors.size;
  }

  has(id: string): boolean {
    return this.actors.has(id);
  }

  kindOf(id: string): ActorKind | undefined {
    return this.actors.get(id)?.kind;
  }

  snapshot(id: string): AnyMachineSnapshot | undefined {
    return this.actors.get(id)?.snapshot;
  }

  spawn(kindName: string, id: string, input: unknown): AnyMachineSnapshot {
    invariant(!this.actors.has(id), `actor '${id}' already exists`);
    const kind = this.kind(kindName);
    const snapshot = kind.machine.getInitialSnapshot(this.scopeOf(kind), input) as AnyMachineSnapshot;
    this.actors.set(id, { kind, snapshot });
    return snapshot;
  }

  restore(actor: PersistedActor): AnyMachineSnapshot {
    invariant(!this.actors.has(actor.id), `actor '${actor.id}' already exists`);
    const kind = this.kind(actor.kind);
    const snapshot = this.restoreFromTemplate(kind, actor.snapshot) ?? (kind.machine.restoreSnapshot(actor.snapshot as never, this.scopeOf(kind)) as AnyMachineSnapshot);
    this.actors.set(actor.id, { kind, snapshot });
    return snapshot;
  }

  /**
   * XState's restoreSnapshot resolves the state nodes of the persisted value,
   * revives history and children, and walks the context for actor references:
   * about 15 µs an actor, most of a 10,000-actor restore. For a persisted
   * snapshot with no children and no history (every actor of an assign-only
   * machine), everything but the context depends on the state value alone, so
   * one snapshot restored per (kind, status, value) serves as a template and each
   * actor is that template with its own context: the same fields, in the same
   * order, that restoreSnapshot would produce. Anything else (children, history,
   * an actor reference in the context, output or error) takes restoreSnapshot.
   */
  private restoreFromTemplate(kind: ActorKind, persisted: unknown): AnyMachineSnapshot | undefined {
    const p = persisted as PersistedShape;
    if (!isEmptyRecord(p.children) || !isEmptyRecord(p.historyValue) || p.output !== undefined || p.error !== undefined) return undefined;
    if (p.context !== null && typeof p.context === 'object' && holdsActorReference(p.context, 0)) return undefined;
    const key = `${kind.name}\u0000${String(p.status)}\u0000${typeof p.value === 'string' ? p.value : JSON.stringify(p.value)}`;
    let template = this.templates.get(key);
    if (template === undefined) {
      if (this.templates.size >= MAX_RESTORE_TEMPLATES) return undefined;
      template = kind.machine.restoreSnapshot({ ...p, context: {} } as never, this.scopeOf(kind)) as AnyMachineSnapshot;
      this.templates.set(key, template);
    }
    return { ...template, context: p.context } as AnyMachineSnapshot;
  }

  /**
   * Sends one event; returns the snapshot after it (the same object when nothing
   * changed). An actor that is no longer active ignores events, as a stopped
   * XState actor does. A guard or assignment that throws throws here, to the step
   * that sent the event (which undoes the step), and leaves the actor as it was.
   */
  send(id: string, event: JournalEvent): AnyMachineSnapshot {
    const hosted = this.actors.get(id);
    if (hosted === undefined) throw new ArcError(ErrorCodes.INVARIANT, `no actor '${id}'`);
    if (hosted.snapshot.status !== 'active') return hosted.snapshot;
    hosted.snapshot = hosted.kind.machine.transition(hosted.snapshot, event, this.scopeOf(hosted.kind)) as AnyMachineSnapshot;
    return hosted.snapshot;
  }

  /**
   * Puts an actor back to an earlier snapshot of it (undefined: it did not
   * exist), for a step that is being undone. The actor is re-created from the
   * snapshot's persisted form, exactly as a restore from a shard snapshot would.
   */
  revert(id: string, kindName: string, before: AnyMachineSnapshot | undefined): AnyMachineSnapshot | undefined {
    this.remove(id);
    if (before === undefined) return undefined;
    const kind = this.kind(kindName);
    return this.restore({ id, kind: kind.name, snapshot: kind.machine.getPersistedSnapshot(before) });
  }

  remove(id: string): void {
    const hosted = this.actors.get(id);
    if (hosted === undefined) return;
    this.actors.delete(id);
  }

  ids(): IterableIterator<string> {
    return this.actors.keys();
  }

  *entries(): IterableIterator<[string, ActorKind, AnyMachineSnapshot]> {
    for (const [id, hosted] of this.actors) yield [id, hosted.kind, hosted.snapshot];
  }

  /**
   * Every actor's current snapshot object, in no particular order. Snapshots are
   * never changed in place (a transition makes a new one; the machines only
   * assign), so these references stay what they were now, whatever happens
   * after: a snapshot can be persisted from them later, a slice at a time.
   */
  currentSnapshots(): HeldSnapshot[] {
    const held: HeldSnapshot[] = new Array<HeldSnapshot>(this.actors.size);
    let i = 0;
    for (const [id, hosted] of this.actors) held[i++] = { id, kind: hosted.kind, snapshot: hosted.snapshot };
    return held;
  }

  /** Every actor's persisted state, sorted by id so snapshots are canonical. */
  persistAll(): PersistedActor[] {
    const ids = [...this.actors.keys()].sort();
    return ids.map((id) => {
      const hosted = this.actors.get(id) as Hosted;
      return { id, kind: hosted.kind.name, snapshot: hosted.kind.machine.getPersistedSnapshot(hosted.snapshot) };
    });
  }

  clear(): void {
    this.actors.clear();
  }

  /**
   * The kind's scope, made once: what xstate's own inert scope is (an actor of
   * the machine that is never started as `self`, and its system), with no-op
   * hooks. An action reaching the executor would mean a machine that is not
   * pure: that is refused rather than silently dropped.
   */
  private scopeOf(kind: ActorKind): MachineScope {
    let scope = this.scopes.get(kind.name);
    if (scope === undefined) {
      const self = createActor(kind.machine);
      scope = {
        self,
        id: '',
        sessionId: '',
        system: self.system,
        logger: () => undefined,
        defer: () => undefined,
        emit: () => undefined,
        stopChild: () => undefined,
        actionExecutor: (action: { type: string }) => {
          throw new ArcError(ErrorCodes.INVARIANT, `actor kind '${kind.name}' ran action '${action.type}': machines must be assign-only`);
        },
      } as MachineScope;
      this.scopes.set(kind.name, scope);
    }
    return scope;
  }
}
