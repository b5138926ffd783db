import test from 'ava';
import { PendingDispatches } from '../../adapters/agent/pending-dispatches.js';

const entry = (requestId: string, expiresAtMs = 10_000, geozone = 'CAISO') => ({ requestId, geozone, expiresAtMs, frame: Buffer.from(requestId) });
const ids = (store: PendingDispatches, nodeId: string, nowMs = 0): string[] => store.live(nodeId, nowMs).map((e) => e.requestId);

test('a node keeps at most maxPerNode dispatches: the oldest goes first, counted', (t) => {
  const store = new PendingDispatches({ maxPerNode: 3, maxNodes: 10 });
  for (const id of ['a', 'b', 'c', 'd', 'e']) t.truthy(store.add('n1', entry(id), 0));
  t.deepEqual(ids(store, 'n1'), ['c', 'd', 'e']);
  t.is(store.size, 3);
  t.is(store.dropped, 2);
});

test('past maxNodes, the node added to least recently loses its dispatches, counted', (t) => {
  const store = new PendingDispatches({ maxPerNode: 10, maxNodes: 2 });
  store.add('n1', entry('a'), 0);
  store.add('n2', entry('b'), 0);
  store.add('n1', entry('c'), 0); // n1 is now the more recent
  store.add('n3', entry('d'), 0);
  t.deepEqual(ids(store, 'n2'), []);
  t.deepEqual(ids(store, 'n1'), ['a', 'c']);
  t.deepEqual(ids(store, 'n3'), ['d']);
  t.is(store.nodes, 2);
  t.is(store.dropped, 1);
});

test('expired dispatches are not taken, not returned, and swept; each counted once', (t) => {
  const store = new PendingDispatches({ maxPerNode: 10, maxNodes: 10 });
  t.is(store.add('n1', entry('late', 100), 100), undefined, 'expires-at reached on arrival: not kept');
  store.add('n1', entry('a', 200), 150);
  store.add('n1', entry('b', 300), 150);
  store.add('n2', entry('c', 250), 150);
  t.deepEqual(ids(store, 'n1', 200), ['b'], 'an expiry at the current time has passed');
  store.sweep(250);
  t.is(store.nodes, 1);
  t.is(store.size, 1);
  t.is(store.expired, 3);
});

test('acks remove once; the same dispatch offered twice is kept (and sent) once', (t) => {
  const store = new PendingDispatches({ maxPerNode: 10, maxNodes: 10 });
  t.truthy(store.add('n1', entry('a'), 0));
  t.is(store.add('n1', entry('a'), 0), undefined);
  t.is(store.size, 1);
  t.false(store.ack('n2', 'a'), 'another node cannot acknowledge it');
  t.true(store.ack('n1', 'a'));
  t.false(store.ack('n1', 'a'));
  t.is(store.size, 0);
  t.is(store.nodes, 0);
});
