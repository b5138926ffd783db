import test from 'ava';
import { createMachine, setup, type AnyStateMachine } from 'xstate';
import { inspectedMachines, machineDiagrams } from '../../inspector/machines.js';
import { statechartOf } from '../../inspector/statechart.js';

/**
 * The diagrams are generated from the machines: here each graph is compared with
 * the machine's own configuration (the object literal in machines/), read
 * independently of the state tree the graph is built from.
 */
interface ConfigNode {
  initial?: string;
  type?: string;
  states?: Record<string, ConfigNode>;
  on?: Record<string, unknown>;
  always?: unknown;
}

function asList(value: unknown): { target?: string; guard?: unknown }[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((entry) => (typeof entry === 'string' ? { target: entry } : (entry as { target?: string; guard?: unknown })));
}

/** States and transitions as the config declares them: 'path' and 'source|event|order|target path|guarded'. */
function fromConfig(machine: AnyStateMachine): { states: string[]; transitions: string[]; finals: string[]; initials: string[] } {
  const states: string[] = [];
  const transitions: string[] = [];
  const finals: string[] = [];
  const initials: string[] = [];
  const resolve = (path: string[], target: string): string => {
    if (target.startsWith('.')) return [...path, target.slice(1)].join('.');
    return [...path.slice(0, -1), target].join('.');
  };
  const walk = (node: ConfigNode, path: string[]): void => {
    states.push(path.join('.'));
    if (node.type === 'final') finals.push(path.join('.'));
    if (node.initial !== undefined) initials.push(`${path.join('.')}>${[...path, node.initial].join('.')}`);
    const declared = Object.entries(node.on ?? {});
    if (node.always !== undefined) declared.push(['always', node.always]);
    for (const [event, spec] of declared) {
      asList(spec).forEach((t, order) => {
        transitions.push(`${path.join('.')}|${event}|${order}|${t.target === undefined ? '-' : resolve(path, t.target)}|${t.guard === undefined ? 'unguarded' : 'guarded'}`);
      });
    }
    for (const [key, child] of Object.entries(node.states ?? {})) walk(child, [...path, key]);
  };
  walk(machine.config as ConfigNode, []);
  return { states: states.sort(), transitions: transitions.sort(), finals: finals.sort(), initials: initials.sort() };
}

function fromGraph(machine: AnyStateMachine): { states: string[]; transitions: string[]; finals: string[]; initials: string[] } {
  const graph = statechartOf(machine);
  const pathOf = new Map(graph.states.map((s) => [s.id, s.path]));
  return {
    states: graph.states.map((s) => s.path).sort(),
    transitions: graph.transitions
      .map((t) => `${pathOf.get(t.source)}|${t.event}|${t.order}|${t.target === null ? '-' : pathOf.get(t.target)}|${t.guard === null ? 'unguarded' : 'guarded'}`)
      .sort(),
    finals: graph.states.filter((s) => s.type === 'final').map((s) => s.path).sort(),
    initials: graph.states.filter((s) => s.initial !== null).map((s) => `${s.path}>${pathOf.get(s.initial as string)}`).sort(),
  };
}

for (const { machine } of inspectedMachines) {
  test(`the ${machine.id} graph has exactly the states, initial states, final states and transitions its definition declares`, (t) => {
    const expected = fromConfig(machine);
    const actual = fromGraph(machine);
    // The root and at least two states: a machine the walk read nothing of would pass the comparisons.
    t.true(expected.states.length >= 3);
    t.deepEqual(actual.states, expected.states);
    t.deepEqual(actual.initials, expected.initials);
    t.deepEqual(actual.finals, expected.finals);
    t.deepEqual(actual.transitions, expected.transitions);
  });
}

test('guards are named as the machine names them, combinators included', (t) => {
  const graph = statechartOf(inspectedMachines.find((m) => m.machine.id === 'reservation')?.machine as AnyStateMachine);
  const guards = new Set(graph.transitions.map((t) => t.guard));
  t.true(guards.has('isDue'));
  t.true(guards.has('and(fromHolder, canRetry)'));
  const node = statechartOf(inspectedMachines.find((m) => m.machine.id === 'node')?.machine as AnyStateMachine);
  t.true(node.transitions.some((tr) => tr.event === 'always' && tr.guard === 'shouldDrain' && tr.target === 'node.draining'));
  // The resume transition's guard is an inline function in the definition.
  t.true(node.transitions.some((tr) => tr.event === 'resume' && tr.guard === 'inline'));
});

test('every diagram is laid out: each state a box inside the picture, each state-changing transition an arrow with its label', async (t) => {
  const diagrams = await machineDiagrams();
  t.is(diagrams.length, inspectedMachines.length);
  for (const diagram of diagrams) {
    const boxes = diagram.nodes.filter((n) => n.role === 'state');
    t.is(boxes.length, diagram.graph.states.length - 1, `${diagram.machine}: one box per state but the root`);
    for (const box of boxes) {
      t.true(box.x >= 0 && box.y >= 0 && box.x + box.width <= diagram.width + 0.5 && box.y + box.height <= diagram.height + 0.5, `${diagram.machine}: ${box.id} inside`);
    }
    const moving = diagram.graph.transitions.filter((tr) => tr.target !== null);
    for (const transition of moving) {
      const edge = diagram.edges.find((e) => e.transition === transition.id);
      t.truthy(edge, `${diagram.machine}: arrow for ${transition.id}`);
      t.true((edge?.points.length ?? 0) >= 2);
      t.is(edge?.label?.text, transition.guard === null ? transition.event : `${transition.event} [${transition.guard}]`);
    }
    const staying = diagram.graph.transitions.filter((tr) => tr.target === null).length;
    t.is(diagram.nodes.reduce((sum, n) => sum + n.internal.length, 0), staying, `${diagram.machine}: transitions that stay are listed in their box`);
  }
});

test('a change to a machine changes its picture: nested states, a new transition and a new final state appear', async (t) => {
  const changed = setup({ guards: { ready: () => true } }).createMachine({
    id: 'lamp',
    initial: 'off',
    states: {
      off: { on: { flip: 'on' } },
      on: {
        initial: 'dim',
        states: { dim: { on: { brighter: { target: 'bright', guard: 'ready' } } }, bright: {} },
        on: { flip: 'off', break: 'broken' },
      },
      broken: { type: 'final' },
    },
  });
  const before = createMachine({ id: 'lamp', initial: 'off', states: { off: { on: { flip: 'on' } }, on: { on: { flip: 'off' } } } });
  const [small, big] = await machineDiagrams([
    { machine: before, kind: null },
    { machine: changed, kind: null },
  ]);
  t.deepEqual(small?.nodes.filter((n) => n.role === 'state').map((n) => n.state?.path).sort(), ['off', 'on']);
  t.deepEqual(big?.nodes.filter((n) => n.role === 'state').map((n) => n.state?.path).sort(), ['broken', 'off', 'on', 'on.bright', 'on.dim']);
  const bright = big?.nodes.find((n) => n.state?.path === 'on.bright');
  const on = big?.nodes.find((n) => n.state?.path === 'on');
  t.truthy(bright && on && bright.x >= on.x && bright.x + bright.width <= on.x + on.width, 'a nested state is drawn inside its parent');
  t.true(big?.edges.some((e) => e.label?.text === 'brighter [ready]'));
  t.true(big?.edges.some((e) => e.label?.text === 'break'));
  t.is(big?.nodes.find((n) => n.state?.path === 'broken')?.state?.type, 'final');
});
