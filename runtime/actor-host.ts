import { createActor, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { ActorKind } from './actor-kind.js';
import { ArcError, ErrorCodes, invariant } from './errors.js';
import type { JournalEvent } from './journal.js';
import type { PersistedActor } from './snapshot-store.js';

interface Hosted {
  readonly kind: ActorKind;
  readonly ref: AnyActorRef;
}

/**
 * The live XState actors of one shard, by id. Every actor is a started XState v5
 * actor whose machine is pure (assign-only), so sending it an event is a
 * deterministic state transition and nothing else.
 */
export class ActorHost {
  private readonly actors = new Map<string, Hosted>();
  private readonly kinds: ReadonlyMap<string, ActorKind>;

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
    return this.actors.get(id)?.ref.getSnapshot() as AnyMachineSnapshot | undefined;
  }

  spawn(kindName: string, id: string, input: unknown): AnyMachineSnapshot {
    invariant(!this.actors.has(id), `actor '${id}' already exists`);
    const kind = this.kind(kindName);
    const ref = createActor(kind.machine, { input, id });
    ref.start();
    this.actors.set(id, { kind, ref });
    return ref.getSnapshot() as AnyMachineSnapshot;
  }

  restore(actor: PersistedActor): AnyMachineSnapshot {
    invariant(!this.actors.has(actor.id), `actor '${actor.id}' already exists`);
    const kind = this.kind(actor.kind);
    const ref = createActor(kind.machine, { snapshot: actor.snapshot as never, id: actor.id });
    ref.start();
    this.actors.set(actor.id, { kind, ref });
    return ref.getSnapshot() as AnyMachineSnapshot;
  }

  /** Sends one event; returns the snapshot after it (the same object when nothing changed). */
  send(id: string, event: JournalEvent): AnyMachineSnapshot {
    const hosted = this.actors.get(id);
    if (hosted === undefined) throw new ArcError(ErrorCodes.INVARIANT, `no actor '${id}'`);
    hosted.ref.send(event);
    return hosted.ref.getSnapshot() as AnyMachineSnapshot;
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
    hosted.ref.stop();
    this.actors.delete(id);
  }

  ids(): IterableIterator<string> {
    return this.actors.keys();
  }

  *entries(): IterableIterator<[string, ActorKind, AnyMachineSnapshot]> {
    for (const [id, hosted] of this.actors) yield [id, hosted.kind, hosted.ref.getSnapshot() as AnyMachineSnapshot];
  }

  /** Every actor's persisted state, sorted by id so snapshots are canonical. */
  persistAll(): PersistedActor[] {
    const ids = [...this.actors.keys()].sort();
    return ids.map((id) => {
      const hosted = this.actors.get(id) as Hosted;
      return { id, kind: hosted.kind.name, snapshot: hosted.ref.getPersistedSnapshot() };
    });
  }

  clear(): void {
    for (const hosted of this.actors.values()) hosted.ref.stop();
    this.actors.clear();
  }
}
