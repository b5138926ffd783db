// The inspector page: asks for a key (or takes it from #key=...), then shows
// the statecharts with live counts, the actors, one actor's history, time
// travel and a map of the nodes. Live counts come over the console WebSocket
// (`actors` messages) when the server offers it, and by polling otherwise.
// The DOM classes checked with instanceof below (the lint config names only the page's other browser globals).
/* global HTMLElement, HTMLInputElement, HTMLSelectElement, HTMLCanvasElement */
import { ActorList } from './actor-list.js';
import { api, consoleTicket, forgetKey, Refused, storedKey, storeKey, takeKeyFromFragment } from './api.js';
import { drawDiagram } from './diagram.js';
import { drawMap } from './map.js';

/**
 * @import { ActorDetail, ActorsMessage, ApiError, EventDetails, Info, KindStateCounts, MachineDiagram, PointState, RequestRates } from './api.js'
 * @typedef {ReturnType<typeof drawDiagram>} DrawnDiagram
 */

/**
 * The page's element with this id, of the type the code uses (HTMLElement unless `type` says more).
 * index.html ships with this script, so an element missing or of another type is a broken page: said here, plainly.
 * @template {HTMLElement} [E=HTMLElement]
 * @param {string} id
 * @param {new () => E} [type]
 * @returns {E}
 */
const $ = (id, type) => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the inspector page has no #${id}`);
  const expected = type ?? HTMLElement;
  if (!(element instanceof expected)) throw new Error(`#${id} is not a ${expected.name}`);
  // E is HTMLElement when no type is given, and `type` itself otherwise: both checked just above.
  return /** @type {E} */ (element);
};
const POLL_MS = 1000;
const MAP_EVERY_MS = 5000;
const LIST_EVERY_MS = 5000;

/**
 * @typedef {object} PageState
 * @property {MachineDiagram[]} diagrams
 * @property {DrawnDiagram | null} drawn
 * @property {MachineDiagram | null} machine
 * @property {Map<string, { counts: KindStateCounts, atMs: number }>} counts geozone → { counts, atMs } as last received.
 * @property {Map<string, { at: number, totals: RequestRates }>} previousTotals geozone → previous totals, for rates when polling.
 * @property {Map<string, RequestRates>} rates
 * @property {ActorDetail | null} actor
 * @property {number[]} timers
 * @property {WebSocket | null} socket
 * @property {boolean} polling
 */
/** @type {PageState} */
const state = {
  diagrams: [],
  drawn: null,
  machine: null,
  counts: new Map(),
  previousTotals: new Map(),
  rates: new Map(),
  actor: null,
  timers: [],
  socket: null,
  polling: false,
};

/** @param {Refused} [refusal] */
function showLogin(refusal) {
  $('app').hidden = true;
  $('login').hidden = false;
  $('geozone-pick').hidden = true;
  $('rates').hidden = true;
  $('forget-key').hidden = true;
  const refused = $('refused');
  refused.hidden = refusal === undefined;
  if (refusal !== undefined) refused.textContent = `This key was refused (${refusal.code ?? refusal.status}): ${refusal.message}`;
}

async function start() {
  takeKeyFromFragment();
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('key-input', HTMLInputElement);
    storeKey(input.value.trim());
    input.value = '';
    void open();
  });
  // A key pasted into the address bar later (#key=...) is taken the same way.
  window.addEventListener('hashchange', () => {
    if (!location.hash.includes('key=')) return;
    takeKeyFromFragment();
    location.reload();
  });
  $('forget-key').addEventListener('click', () => {
    forgetKey();
    location.reload();
  });
  await open();
}

async function open() {
  let info;
  try {
    info = await api('info');
  } catch (error) {
    if (!(error instanceof Refused)) throw error;
    const hadKey = storedKey() !== null;
    forgetKey();
    // No key yet: just the form. A key that was refused: say so, plainly, and nothing else.
    showLogin(hadKey || error.status !== 401 ? error : undefined);
    return;
  }
  $('login').hidden = true;
  $('app').hidden = false;
  $('forget-key').hidden = storedKey() === null;
  $('mode').textContent = `${info.mode === 'live' ? 'live region' : 'journal (read-only)'} · key ${info.key.id} (${info.key.role})`;
  const pick = $('geozone', HTMLSelectElement);
  for (const geozone of info.geozones) pick.append(new Option(geozone, geozone));
  $('geozone-pick').hidden = false;
  pick.addEventListener('change', () => renderCounts());

  await showMachines();
  const list = setUpActors();
  setUpTimeTravel(info);
  await refreshCounts();
  startLiveCounts(info);
  void refreshMap();
  if (info.mode === 'live') {
    state.timers.push(setInterval(() => void refreshMap(), MAP_EVERY_MS));
    state.timers.push(setInterval(() => void list.refresh(), LIST_EVERY_MS));
  }
}

// ------------------------------------------------------------------ statecharts and counts

async function showMachines() {
  const { machines } = await api('machines');
  state.diagrams = machines;
  const tabs = $('machine-tabs');
  tabs.replaceChildren();
  for (const diagram of machines) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = diagram.kind === null ? diagram.machine : `${diagram.machine} (${diagram.kind})`;
    button.dataset.machine = diagram.machine;
    button.setAttribute('data-testid', `machine-tab-${diagram.machine}`);
    button.addEventListener('click', () => selectMachine(diagram.machine));
    tabs.appendChild(button);
  }
  const kinds = $('actor-kind', HTMLSelectElement);
  for (const diagram of machines) if (diagram.kind !== null) kinds.append(new Option(diagram.kind, diagram.kind));
  const first = machines[0];
  if (first === undefined) throw new Error('the server lists no machines');
  selectMachine(first.machine);
  performance.mark('first-diagram');
}

/**
 * Shows one machine's diagram (unless it is already shown); returns it, as drawn.
 * @param {string} machine
 * @returns {DrawnDiagram}
 */
function selectMachine(machine) {
  if (state.drawn?.machine === machine) return state.drawn;
  const diagram = state.diagrams.find((d) => d.machine === machine);
  if (diagram === undefined) throw new Error(`no diagram of machine '${machine}'`);
  state.machine = diagram;
  for (const button of $('machine-tabs').children) if (button instanceof HTMLElement) button.setAttribute('aria-selected', String(button.dataset.machine === machine));
  const drawn = drawDiagram($('diagram'), diagram);
  state.drawn = drawn;
  renderCounts();
  const actor = state.actor;
  if (actor !== null && state.diagrams.find((d) => d.kind === actor.kind)?.machine === machine) drawn.highlight(actor.state);
  return drawn;
}

/**
 * Counts of the selected geozone (or all visible ones summed) for one actor kind.
 * @param {string} kind
 */
function countsOf(kind) {
  const selected = $('geozone', HTMLSelectElement).value;
  /** @type {Record<string, number>} */
  const sum = {};
  for (const [geozone, entry] of state.counts) {
    if (selected !== '' && geozone !== selected) continue;
    for (const [s, n] of Object.entries(entry.counts[kind] ?? {})) sum[s] = (sum[s] ?? 0) + n;
  }
  return sum;
}

function renderCounts() {
  performance.mark('counts-update-start');
  const diagram = state.machine;
  if (diagram !== null && state.drawn !== null) {
    state.drawn.setCounts(diagram.kind === null ? {} : countsOf(diagram.kind));
    renderCountTable($('state-counts'), diagram.kind, [...state.counts.entries()].map(([geozone, entry]) => [geozone, entry.counts]));
  }
  const selected = $('geozone', HTMLSelectElement).value;
  let routed = 0, rejected = 0, expired = 0;
  for (const [geozone, rate] of state.rates) {
    if (selected !== '' && geozone !== selected) continue;
    routed += rate.routed; rejected += rate.rejected; expired += rate.expired;
  }
  const rates = $('rates');
  rates.hidden = false;
  rates.textContent = `routed ${routed.toFixed(1)}/s · rejected ${rejected.toFixed(1)}/s · expired ${expired.toFixed(1)}/s`;
  performance.measure('counts-update', 'counts-update-start');
}

/**
 * A geozone × state table for one kind (every kind when `kind` is undefined; none when it is null).
 * @param {HTMLElement} table
 * @param {string | null | undefined} kind
 * @param {[geozone: string, counts: KindStateCounts][]} rows
 */
function renderCountTable(table, kind, rows) {
  const kinds = kind === undefined ? [...new Set(rows.flatMap(([, counts]) => Object.keys(counts)))].sort() : kind === null ? [] : [kind];
  /** @type {[kind: string, state: string][]} */
  const columns = [];
  for (const k of kinds) {
    const states = [...new Set(rows.flatMap(([, counts]) => Object.keys(counts[k] ?? {})))].sort();
    for (const s of states) columns.push([k, s]);
  }
  const head = document.createElement('tr');
  for (const title of ['geozone', ...columns.map(([k, s]) => (kind === undefined ? `${k} ${s}` : s))]) {
    const th = document.createElement('th');
    th.textContent = title;
    head.appendChild(th);
  }
  const body = rows.map(([geozone, counts]) => {
    const tr = document.createElement('tr');
    tr.dataset.geozone = geozone;
    for (const value of [geozone, ...columns.map(([k, s]) => counts[k]?.[s] ?? 0)]) {
      const td = document.createElement('td');
      td.textContent = String(value);
      tr.appendChild(td);
    }
    return tr;
  });
  table.replaceChildren(head, ...body);
}

/**
 * @param {string} geozone
 * @param {KindStateCounts} counts
 * @param {number} atMs
 */
function applyCounts(geozone, counts, atMs) {
  state.counts.set(geozone, { counts, atMs });
}

async function refreshCounts() {
  const { geozones } = await api('counts');
  const nowMs = performance.now();
  for (const entry of geozones) {
    applyCounts(entry.geozone, entry.counts, entry.atMs);
    const before = state.previousTotals.get(entry.geozone);
    if (before !== undefined) {
      const seconds = (nowMs - before.at) / 1000;
      /** @param {keyof RequestRates} k */
      const rate = (k) => (seconds > 0 ? Math.max(0, entry.totals[k] - before.totals[k]) / seconds : 0);
      state.rates.set(entry.geozone, { routed: rate('routed'), rejected: rate('rejected'), expired: rate('expired') });
    }
    state.previousTotals.set(entry.geozone, { at: nowMs, totals: entry.totals });
  }
  renderCounts();
}

/** @param {Info} info */
function startPolling(info) {
  if (info.mode !== 'live' || state.polling) return;
  state.polling = true;
  state.timers.push(setInterval(() => void refreshCounts().catch(() => undefined), POLL_MS));
}

/**
 * The console WebSocket when the server names one; polling when it does not, or when it fails.
 * @param {Info} info
 */
async function startLiveCounts(info) {
  if (info.mode !== 'live') return;
  if (info.consolePath === null) return startPolling(info);
  try {
    const ticket = await consoleTicket();
    const url = new URL(info.consolePath, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    if (ticket !== null) url.searchParams.set('ticket', ticket);
    url.searchParams.set('types', 'actors');
    const socket = new WebSocket(url);
    state.socket = socket;
    let heard = false;
    const fallback = setTimeout(() => {
      if (!heard) {
        socket.close();
        startPolling(info);
      }
    }, 3 * POLL_MS);
    socket.addEventListener('message', (event) => {
      /** @type {{ type: string }} */
      const message = JSON.parse(event.data);
      // Only `actors` messages were asked for (types=actors); anything else is ignored.
      if (message.type !== 'actors') return;
      const { geozone, counts, timestamp, rates } = /** @type {ActorsMessage} */ (message);
      heard = true;
      clearTimeout(fallback);
      applyCounts(geozone, counts, Date.parse(timestamp));
      state.rates.set(geozone, rates);
      renderCounts();
    });
    socket.addEventListener('close', () => {
      clearTimeout(fallback);
      startPolling(info);
    });
  } catch {
    startPolling(info);
  }
}

// ------------------------------------------------------------------ actors

/** Sets up the actor list and its filters; returns the list. */
function setUpActors() {
  const filters = () => ({
    q: $('actor-search', HTMLInputElement).value.trim(),
    kind: $('actor-kind', HTMLSelectElement).value,
    state: $('actor-state', HTMLInputElement).value.trim(),
    geozone: $('geozone', HTMLSelectElement).value,
  });
  const list = new ActorList(
    $('actor-list'),
    (offset, limit) => api('actors', { ...filters(), offset, limit }),
    (row) => void showActor(row.id),
    (total) => ($('actor-total').textContent = `(${total.toLocaleString('en')})`),
  );
  let debounce = 0;
  const again = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void list.reset(), 200);
  };
  for (const id of ['actor-search', 'actor-state']) $(id).addEventListener('input', again);
  for (const id of ['actor-kind', 'geozone']) $(id).addEventListener('change', again);
  void list.reset();
  return list;
}

/** @param {HTMLElement} table */
function bodyOf(table) {
  const body = table.querySelector('tbody');
  if (body === null) throw new Error(`#${table.id} has no tbody`);
  return body;
}

/** @param {string} id */
async function showActor(id) {
  const actor = await api('actor', { id });
  state.actor = actor;
  $('actor-panel').hidden = false;
  $('actor-id').textContent = actor.id;
  $('actor-kind-label').textContent = actor.kind;
  $('actor-geozone').textContent = actor.geozone;
  $('actor-state-label').textContent = actor.state;
  $('actor-context').textContent = JSON.stringify(actor.context, null, 2);
  const machine = state.diagrams.find((d) => d.kind === actor.kind);
  if (machine !== undefined) selectMachine(machine.machine).highlight(actor.state);
  bodyOf($('actor-history')).replaceChildren();
  await loadHistory(id, undefined);
}

/**
 * @param {string} id
 * @param {number | null | undefined} before Where the entries already shown start (undefined: the latest).
 */
async function loadHistory(id, before) {
  const history = await api('history', { id, before, limit: 200 });
  if (state.actor?.id !== id) return;
  const body = bodyOf($('actor-history'));
  const rows = history.entries.map((entry) => {
    const tr = document.createElement('tr');
    tr.setAttribute('data-testid', 'history-row');
    const decision = entry.event.startsWith('route.') ? `${entry.candidates} candidates · ${entry.reason}${entry.details.nodeId ? ` → ${entry.details.nodeId}` : ''}${entry.details.toGeozone ? ` → ${entry.details.toGeozone}` : ''}` : summarise(entry.details);
    for (const value of [entry.offset, new Date(entry.atMs).toISOString(), entry.event, entry.state, decision]) {
      const td = document.createElement('td');
      td.textContent = String(value);
      tr.appendChild(td);
    }
    return tr;
  });
  body.prepend(...rows);
  const earlier = $('history-earlier');
  earlier.hidden = history.earlier === null;
  earlier.onclick = () => void loadHistory(id, history.earlier);
}

/** @param {EventDetails} details */
function summarise(details) {
  const { atMs: _atMs, report, input, ...rest } = details;
  if (report !== undefined) return `gpu ${Math.round(report.gpuUtilization * 100)}% · battery ${Math.round(report.batteryLevel * 100)}% · ${report.energySource}`;
  if (input !== undefined) return 'spawned';
  const text = JSON.stringify(rest);
  return text === '{}' ? '' : text;
}

// ------------------------------------------------------------------ time travel

/** @param {Info} info */
function setUpTimeTravel(info) {
  if (!info.timeTravel) {
    $('time-controls').hidden = true;
    $('time-unavailable').hidden = false;
    $('time-unavailable').textContent = 'Time travel needs the region\'s LMDB journal; this server has none.';
    return;
  }
  const geozoneSelect = $('tt-geozone', HTMLSelectElement);
  for (const geozone of info.geozones) geozoneSelect.append(new Option(geozone, geozone));
  const slider = $('tt-slider', HTMLInputElement);
  const offsetInput = $('tt-offset', HTMLInputElement);
  let sequence = 0;
  let debounce = 0;

  const loadRange = async () => {
    const { geozones } = await api('range');
    const range = geozones.find((g) => g.geozone === geozoneSelect.value);
    slider.max = String(Math.max(0, range?.lastOffset ?? 0));
    offsetInput.max = slider.max;
    return range;
  };
  /** @param {{ geozone: string, offset: number } | { time: string }} params */
  const travel = async (params) => {
    const mine = ++sequence;
    $('tt-status').textContent = 'replaying…';
    try {
      const result = await api('at', params);
      if (mine !== sequence) return;
      showPoint(result);
    } catch (caught) {
      // What api() throws: a Refused or a coded Error (or fetch's own TypeError, without status or code).
      const error = /** @type {ApiError} */ (caught);
      // A newer request took this one's place (409): its answer is the one to show.
      if (mine !== sequence || error.status === 409) return;
      $('tt-status').textContent = `${error.code ?? ''} ${error.message}`;
    }
  };
  /** @param {number} offset */
  const toOffset = (offset) => {
    const clamped = Math.max(0, Math.min(Number(slider.max), offset));
    slider.value = String(clamped);
    offsetInput.value = String(clamped);
    return travel({ geozone: geozoneSelect.value, offset: clamped });
  };
  slider.addEventListener('input', () => {
    offsetInput.value = slider.value;
    clearTimeout(debounce);
    debounce = setTimeout(() => void toOffset(Number(slider.value)), 120);
  });
  slider.addEventListener('change', () => {
    clearTimeout(debounce);
    void toOffset(Number(slider.value));
  });
  offsetInput.addEventListener('change', () => void toOffset(Number(offsetInput.value)));
  $('tt-back').addEventListener('click', () => void toOffset(Number(slider.value) - 1));
  $('tt-forward').addEventListener('click', () => void toOffset(Number(slider.value) + 1));
  $('tt-go-time').addEventListener('click', () => {
    const raw = $('tt-time', HTMLInputElement).value.trim();
    void travel({ time: /^\d+$/.test(raw) ? raw : new Date(raw).toISOString() });
  });
  geozoneSelect.addEventListener('change', () => void loadRange().then((range) => toOffset(range?.lastOffset ?? 0)));
  void loadRange().then((range) => toOffset(range?.lastOffset ?? 0));
}

/** @param {PointState} result */
function showPoint(result) {
  const offsets = Object.entries(result.point.offsets).map(([g, o]) => `${g}@${o}`).join(' ');
  $('tt-point').textContent = `${new Date(result.point.atMs).toISOString()} (${result.point.atMs}) · ${offsets}`;
  $('tt-hash').textContent = result.stateHash ?? '(this key does not see every geozone: per-geozone hashes below)';
  const anchor = result.shards.find((s) => s.geozone === result.point.geozone) ?? result.shards[0];
  const record = anchor?.record;
  const from = Object.entries(result.fromSnapshot).map(([g, o]) => `${g} ${o < 0 ? 'from the start' : `from snapshot @${o}`}`).join(', ');
  $('tt-status').textContent = record === undefined ? `replayed ${result.replayedRecords} records (${from})` : `last event: ${record.actorId} ${record.event.type} → ${record.state} · replayed ${result.replayedRecords} records (${from})`;
  renderCountTable($('tt-counts'), undefined, result.shards.map((s) => [s.geozone, s.counts]));
  for (const shard of result.shards) {
    const row = $('tt-counts').querySelector(`tr[data-geozone="${shard.geozone}"]`);
    if (row instanceof HTMLElement) row.title = `shard hash ${shard.stateHash}`;
  }
}

// ------------------------------------------------------------------ map

async function refreshMap() {
  const { geozones } = await api('map');
  const selected = $('geozone', HTMLSelectElement).value;
  drawMap($('map', HTMLCanvasElement), geozones.filter((g) => selected === '' || g.geozone === selected));
}

void start();
