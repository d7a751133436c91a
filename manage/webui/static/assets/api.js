// REST client of the web UI: every call goes to the documented API under
// /api/v1 with the session token as a Bearer header. The token lives in
// sessionStorage (gone when the tab closes); the HttpOnly cookie the login
// also sets is not used by scripts.

const KEY = 'trellis.session';

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

export function setSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

// APIError carries the API's {"error":{code,message,field}}.
export class APIError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
  }
}

let unauthorized = () => {};

// onUnauthorized sets what happens when a call answers 401 (back to login).
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  const s = session();
  if (s && s.token) headers.Authorization = 'Bearer ' + s.token;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/api/v1' + path, init);
  } catch (e) {
    throw new APIError(0, 'network', 'manage is unreachable: ' + e.message + ' (check the connection and try again)');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new APIError(res.status, e.code || 'http_' + res.status, e.message || res.statusText || 'request failed', e.field);
    if (res.status === 401 && !opts.no401) unauthorized(err);
    throw err;
  }
  return data;
}

export const get = (p, opts) => api('GET', p, undefined, opts);
export const post = (p, b) => api('POST', p, b === undefined ? {} : b);
export const put = (p, b) => api('PUT', p, b);
export const patch = (p, b) => api('PATCH', p, b);
export const del = (p) => api('DELETE', p);

// list fetches one page of a list endpoint with query parameters.
export function list(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return get(path + (qs ? '?' + qs : ''));
}

// all fetches every item of a list (pages of 1000).
export async function all(path, params = {}) {
  const out = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await list(path, { ...params, limit: 1000, offset });
    out.push(...(page.items || []));
    if (!page.items || out.length >= page.total || page.items.length === 0) return out;
  }
}

let openapi = null;

// features reads the OpenAPI document once to see which optional routes
// (notifications, stats history) this manage offers.
export async function features() {
  if (!openapi) {
    try {
      const doc = await get('/openapi.json', { no401: true });
      openapi = (doc && doc.paths) || {};
    } catch {
      openapi = {};
    }
  }
  const paths = Object.keys(openapi);
  return {
    paths,
    // methods lists the HTTP methods (upper case) a path offers.
    methods: (p) => Object.keys(openapi[p] || {}).map((m) => m.toUpperCase()),
    has: (re) => paths.some((p) => re.test(p)),
    find: (re) => paths.filter((p) => re.test(p)),
  };
}
