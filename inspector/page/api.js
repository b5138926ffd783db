// The inspector's API client. The key lives in sessionStorage (this tab only);
// a key in the URL fragment (#key=...) is moved there and erased from the
// address bar, so it never reaches the server's logs or the history.
const KEY_ITEM = 'arcnet.inspector.key';

export class Refused extends Error {
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

export function storeKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

function headers() {
  const key = storedKey();
  return key === null ? {} : { authorization: `Bearer ${key}` };
}

/** GET /inspector/api/<path>; throws Refused for 401/403/429 and an Error with the coded message otherwise. */
export async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  const url = `/inspector/api/${path}${query.size > 0 ? `?${query}` : ''}`;
  const response = await fetch(url, { headers: headers(), cache: 'no-store' });
  const body = await response.json().catch(() => ({}));
  if (response.ok) return body;
  if (response.status === 401 || response.status === 403 || response.status === 429) throw new Refused(response.status, body.code, body.message);
  const error = new Error(body.message ?? `HTTP ${response.status}`);
  error.status = response.status;
  error.code = body.code;
  throw error;
}

/** A console ticket for the WebSocket (browsers cannot set its headers); null when the server has no keys. */
export async function consoleTicket() {
  const response = await fetch('/v1/console/tickets', { method: 'POST', headers: headers() });
  if (response.status === 201) return (await response.json()).ticket;
  if (response.status === 404) return null;
  throw new Error(`no console ticket (HTTP ${response.status})`);
}
