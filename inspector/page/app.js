// The inspector page: asks for a key (or takes it from #key=...), then shows
// the statecharts with live counts, the actors, one actor's history, time
// travel and a map of the nodes. Live counts come over the console WebSocket
// (`actors` messages) when the server offers it, and by polling otherwise.
import { ActorList } from './actor-list.js';
import { api, consoleTicket, forgetKey, Refused, storedKey, storeKey, takeKeyFromFragment } from './api.js';
import { drawDiagram } from './diagram.js';
import { drawMap } from './map.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const MAP_EVERY_MS = 5000;
const LIST_EVERY_MS = 5000;

const state = {
  info: null,
  diagrams: [],
  drawn: null,
  machine: null,
  /** geozone → { counts, totals, atMs } as last received. */
  counts: new Map(),
  /** geozone → previous totals, for rates when polling. */
  previousTotals: new Map(),
  rates: new Map(),
  actor: null,
  timers: [],
  socket: null,
};

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
    storeKey($('key-input').value.trim());
    $('key-input').value = '';
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
  state.info = info;
  $('login').hidden = true;
  $('app').hidden = false;
  $('forget-key').hidden = storedKey() === null;
  $('mode').textContent = `${info.mode === 'live' ? 'live region' : 'journal (read-only)'} · key ${info.key.id} (${info.key.role})`;
  const pick = $('geozone');
  for (const geozone of info.geozones) pick.append(new Option(geozone, geozone));
  $('geozone-pick').hidden = false;
  pick.addEventListener('change', () => renderCounts());

  await showMachines();
  setUpActors();
  setUpTimeTravel();
  await refreshCounts();
  startLiveCounts();
  void refreshMap();
  if (info.mode === 'live') {
    state.timers.push(setInterval(() => void refreshMap(), MAP_EVERY_MS));
    state.timers.push(setInterval(() => void state.list.refresh(), LIST_EVERY_MS));
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
  const kinds = $('actor-kind');
  for (const diagram of machines) if (diagram.kind !== null) kinds.append(new Option(diagram.kind, diagram.kind));
  selectMachine(machines[0].machine);
  performance.mark('first-diagram');
}

function selectMachine(machine) {
  if (state.drawn?.machine === machine) return;
  const diagram = state.diagrams.find((d) => d.machine === machine);
  state.machine = diagram;
  for (const button of $('machine-tabs').children) button.setAttribute('aria-selected', String(button.dataset.machine === machine));
  state.drawn = drawDiagram($('diagram'), diagram);
  renderCounts();
  if (state.actor !== null && state.diagrams.find((d) => d.kind === state.actor.kind)?.machine === machine) state.drawn.highlight(state.actor.state);
}

/** Counts of the selected geozone (or all visible ones summed) for one actor kind. */
function countsOf(kind) {
  const selected = $('geozone').value;
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
  const selected = $('geozone').value;
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

/** A geozone × state table for one kind (every kind when `kind` is undefined). */
function renderCountTable(table, kind, rows) {
  const kinds = kind === undefined ? [...new Set(rows.flatMap(([, counts]) => Object.keys(counts)))].sort() : kind === null ? [] : [kind];
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
      const rate = (k) => (seconds > 0 ? Math.max(0, entry.totals[k] - before.totals[k]) / seconds : 0);
      state.rates.set(entry.geozone, { routed: rate('routed'), rejected: rate('rejected'), expired: rate('expired') });
    }
    state.previousTotals.set(entry.geozone, { at: nowMs, totals: entry.totals });
  }
  renderCounts();
}

function startPolling() {
  if (state.info.mode !== 'live' || state.polling) return;
  state.polling = true;
  state.timers.push(setInterval(() => void refreshCounts().catch(() => undefined), POLL_MS));
}

/** The console WebSocket when the server names one; polling when it does not, or when it fails. */
async function startLiveCounts() {
  if (state.info.mode !== 'live') return;
  if (state.info.consolePath === null) return startPolling();
  try {
    const ticket = await consoleTicket();
    const url = new URL(state.info.consolePath, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    if (ticket !== null) url.searchParams.set('ticket', ticket);
    url.searchParams.set('types', 'actors');
    const socket = new WebSocket(url);
    state.socket = socket;
    let heard = false;
    const fallback = setTimeout(() => {
      if (!heard) {
        socket.close();
        startPolling();
      }
    }, 3 * POLL_MS);
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== 'actors') return;
      heard = true;
      clearTimeout(fallback);
      applyCounts(message.geozone, message.counts, Date.parse(message.timestamp));
      state.rates.set(message.geozone, message.rates);
      renderCounts();
    });
    socket.addEventListener('close', () => {
      clearTimeout(fallback);
      startPolling();
    });
  } catch {
    startPolling();
  }
}

// ------------------------------------------------------------------ actors

function setUpActors() {
  const filters = () => ({ q: $('actor-search').value.trim(), kind: $('actor-kind').value, state: $('actor-state').value.trim(), geozone: $('geozone').value });
  state.list = new ActorList(
    $('actor-list'),
    (offset, limit) => api('actors', { ...filters(), offset, limit }),
    (row) => void showActor(row.id),
    (total) => ($('actor-total').textContent = `(${total.toLocaleString('en')})`),
  );
  let debounce = 0;
  const again = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void state.list.reset(), 200);
  };
  for (const id of ['actor-search', 'actor-state']) $(id).addEventListener('input', again);
  for (const id of ['actor-kind', 'geozone']) $(id).addEventListener('change', again);
  void state.list.reset();
}

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
  if (machine !== undefined) {
    selectMachine(machine.machine);
    state.drawn.highlight(actor.state);
  }
  const body = $('actor-history').querySelector('tbody');
  body.replaceChildren();
  await loadHistory(id, undefined);
}

async function loadHistory(id, before) {
  const history = await api('history', { id, before, limit: 200 });
  if (state.actor?.id !== id) return;
  const body = $('actor-history').querySelector('tbody');
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

function summarise(details) {
  const { atMs: _atMs, report, input, ...rest } = details;
  if (report !== undefined) return `gpu ${Math.round(report.gpuUtilization * 100)}% · battery ${Math.round(report.batteryLevel * 100)}% · ${report.energySource}`;
  if (input !== undefined) return 'spawned';
  const text = JSON.stringify(rest);
  return text === '{}' ? '' : text;
}

// ------------------------------------------------------------------ time travel

function setUpTimeTravel() {
  if (!state.info.timeTravel) {
    $('time-controls').hidden = true;
    $('time-unavailable').hidden = false;
    $('time-unavailable').textContent = 'Time travel needs the region\'s LMDB journal; this server has none.';
    return;
  }
  const geozoneSelect = $('tt-geozone');
  for (const geozone of state.info.geozones) geozoneSelect.append(new Option(geozone, geozone));
  const slider = $('tt-slider');
  const offsetInput = $('tt-offset');
  let sequence = 0;
  let debounce = 0;

  const loadRange = async () => {
    const { geozones } = await api('range');
    const range = geozones.find((g) => g.geozone === geozoneSelect.value);
    slider.max = String(Math.max(0, range?.lastOffset ?? 0));
    offsetInput.max = slider.max;
    return range;
  };
  const travel = async (params) => {
    const mine = ++sequence;
    $('tt-status').textContent = 'replaying…';
    try {
      const result = await api('at', params);
      if (mine !== sequence) return;
      showPoint(result);
    } catch (error) {
      // A newer request took this one's place (409): its answer is the one to show.
      if (mine !== sequence || error.status === 409) return;
      $('tt-status').textContent = `${error.code ?? ''} ${error.message}`;
    }
  };
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
    const raw = $('tt-time').value.trim();
    void travel({ time: /^\d+$/.test(raw) ? raw : new Date(raw).toISOString() });
  });
  geozoneSelect.addEventListener('change', () => void loadRange().then((range) => toOffset(range?.lastOffset ?? 0)));
  void loadRange().then((range) => toOffset(range?.lastOffset ?? 0));
}

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
    if (row !== null) row.title = `shard hash ${shard.stateHash}`;
  }
}

// ------------------------------------------------------------------ map

async function refreshMap() {
  const { geozones } = await api('map');
  const selected = $('geozone').value;
  drawMap($('map'), geozones.filter((g) => selected === '' || g.geozone === selected));
}

void start();
