// The inspector's API client. The key lives in sessionStorage (this tab only);
// a key in the URL fragment (#key=...) is moved there and erased from the
// address bar, so it never reaches the server's logs or the history.
const KEY_ITEM = 'arcnet.inspector.key';

// The JSON the API answers with, as the page reads it. The page is served as
// it is, so it cannot import the server's types: these mirror them (in
// inspector/source.ts, layout.ts, machines.ts, statechart.ts, point-in-time.ts
// and the console's `actors` message) and must follow them when they change.
/**
 * @typedef {Record<string, Record<string, number>>} KindStateCounts kind → state → actors.
 * @typedef {{ routed: number, rejected: number, expired: number }} RequestRates
 * @typedef {object} Info
 * @property {'live' | 'journal'} mode
 * @property {string[]} geozones
 * @property {boolean} timeTravel
 * @property {string | null} consolePath
 * @property {{ id: string, role: string }} key
 *
 * @typedef {object} StateInfo
 * @property {string} id
 * @property {string} key
 * @property {string} path The flattened path live counts are keyed by.
 * @property {'atomic' | 'compound' | 'parallel' | 'final' | 'history'} type
 * @property {string | null} description
 * @typedef {{ x: number, y: number, width: number, height: number, internal: string[] }} Box
 * @typedef {Box & ({ role: 'state', state: StateInfo } | { role: 'initial', state: null } | { role: 'any', state: null })} DiagramNode
 * @typedef {object} DiagramEdge
 * @property {[number, number][]} points
 * @property {{ text: string, x: number, y: number, width: number, height: number } | null} label
 * @typedef {object} MachineDiagram
 * @property {string} machine
 * @property {string | null} kind The actor kind that runs it (null: none in the region).
 * @property {number} width
 * @property {number} height
 * @property {DiagramNode[]} nodes
 * @property {DiagramEdge[]} edges
 *
 * @typedef {{ geozone: string, atMs: number, lastOffset: number, counts: KindStateCounts, totals: RequestRates }} GeozoneCounts
 * @typedef {{ id: string, kind: string, state: string, geozone: string }} ActorRow
 * @typedef {{ total: number, offset: number, rows: ActorRow[] }} ActorPage
 * @typedef {ActorRow & { status: string, context: unknown }} ActorDetail
 * @typedef {{ gpuUtilization: number, batteryLevel: number, energySource: string }} NodeReport
 * @typedef {{ report?: NodeReport, input?: unknown, nodeId?: string, toGeozone?: string } & Record<string, unknown>} EventDetails
 * @typedef {object} HistoryEntry
 * @property {number} offset
 * @property {number} atMs
 * @property {string} event
 * @property {string} state
 * @property {EventDetails} details What the event carried, without its type.
 * @property {number} [candidates] Routing decisions (route.*) only.
 * @property {string} [reason] Routing decisions (route.*) only.
 * @typedef {{ id: string, geozone: string, entries: HistoryEntry[], earlier: number | null }} ActorHistory
 * @typedef {[geohash: string, status: string, energy: string]} NodeDot
 * @typedef {{ geozone: string, nodes: NodeDot[] }} GeozoneNodes
 * @typedef {{ geozone: string, firstAtMs: number | null, lastAtMs: number | null, lastOffset: number }} JournalRange
 * @typedef {object} ShardAtPoint
 * @property {string} geozone
 * @property {number} offset
 * @property {number} atMs
 * @property {string} stateHash
 * @property {KindStateCounts} counts
 * @property {{ actorId: string, event: { type: string }, state: string }} [record] The last event included, if any.
 * @typedef {object} PointState
 * @property {{ atMs: number, offsets: Record<string, number>, geozone?: string }} point
 * @property {string | null} stateHash Null unless the key sees every geozone.
 * @property {ShardAtPoint[]} shards
 * @property {Record<string, number>} fromSnapshot
 * @property {number} replayedRecords
 * @typedef {{ type: 'actors', geozone: string, timestamp: string, counts: KindStateCounts, rates: RequestRates }} ActorsMessage
 *
 * @typedef {object} Answers What each path under /inspector/api/ answers.
 * @property {Info} info
 * @property {{ machines: MachineDiagram[] }} machines
 * @property {{ geozones: GeozoneCounts[] }} counts
 * @property {ActorPage} actors
 * @property {ActorDetail} actor
 * @property {ActorHistory} history
 * @property {{ geozones: GeozoneNodes[] }} map
 * @property {{ geozones: JournalRange[] }} range
 * @property {PointState} at
 */

/** @typedef {Error & { status?: number, code?: string }} ApiError An API failure other than a refusal. */

export class Refused extends Error {
  /**
   * @param {number} status
   * @param {string | undefined} code
   * @param {string | undefined} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function takeKeyFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const key = fragment.get('key');
  if (key === null || key === '') return;
  sessionStorage.setItem(KEY_ITEM, key);
  history.replaceState(null, '', location.pathname + location.search);
}

export function storedKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

/** @param {string} key */
export function storeKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

/** @returns {Record<string, string>} */
function headers() {
  const key = storedKey();
  return key === null ? {} : { authorization: `Bearer ${key}` };
}

/**
 * GET /inspector/api/<path>; throws Refused for 401/403/429 and an Error with the coded message otherwise.
 * @template {keyof Answers} P
 * @param {P} path
 * @param {Record<string, string | number | null | undefined>} [params] Left out when undefined, null or ''.
 * @returns {Promise<Answers[P]>}
 */
export async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  const url = `/inspector/api/${path}${query.size > 0 ? `?${query}` : ''}`;
  const response = await fetch(url, { headers: headers(), cache: 'no-store' });
  /** @type {unknown} */
  const body = await response.json().catch(() => ({}));
  // The server's answer, trusted to be the route's shape (see Answers).
  if (response.ok) return /** @type {Answers[P]} */ (body);
  const { code, message } = /** @type {{ code?: string, message?: string }} */ (body);
  if (response.status === 401 || response.status === 403 || response.status === 429) throw new Refused(response.status, code, message);
  /** @type {ApiError} */
  const error = new Error(message ?? `HTTP ${response.status}`);
  error.status = response.status;
  error.code = code;
  throw error;
}

/**
 * A console ticket for the WebSocket (browsers cannot set its headers); null when the server has no keys.
 * @returns {Promise<string | null>}
 */
export async function consoleTicket() {
  const response = await fetch('/v1/console/tickets', { method: 'POST', headers: headers() });
  if (response.status === 201) return /** @type {{ ticket: string }} */ (await response.json()).ticket;
  if (response.status === 404) return null;
  throw new Error(`no console ticket (HTTP ${response.status})`);
}
