// Trellis web UI: hash router, shell, login. Pages live in pages-*.js.
import { session, setSession, onUnauthorized, get, post, api, APIError, features } from './api.js';
import { h, clear, form, errorBox, toast, totpKey } from './dom.js';
import { stopAll } from './timers.js';
import * as net from './pages-net.js';
import * as more from './pages-more.js';

const root = document.getElementById('app');

export function go(path) {
  if (location.hash !== '#' + path) location.hash = path;
  else render();
}

onUnauthorized((err) => {
  setSession(null);
  if (!location.hash.startsWith('#/login')) {
    sessionStorage.setItem('trellis.notice', err.code === 'mfa_required' ? 'Complete the second factor to continue.' : 'Your session ended: log in again.');
    go('/login');
  }
});

// Routes: [pattern, page, needs an organization].
const routes = [
  [/^\/orgs$/, more.orgPicker],
  [/^\/accounts$/, more.accounts],
  [/^\/access$/, more.access],
  [/^\/me$/, more.me],
  [/^\/o\/([^/]+)\/dashboard$/, net.dashboard, true],
  [/^\/o\/([^/]+)\/devices$/, net.devices, true],
  [/^\/o\/([^/]+)\/devices\/([^/]+)$/, net.deviceDetail, true],
  [/^\/o\/([^/]+)\/tunnels$/, net.tunnels, true],
  [/^\/o\/([^/]+)\/labels$/, more.labels, true],
  [/^\/o\/([^/]+)\/applications$/, more.applications, true],
  [/^\/o\/([^/]+)\/policies$/, more.policies, true],
  [/^\/o\/([^/]+)\/policies\/([^/]+)$/, more.policyDetail, true],
  [/^\/o\/([^/]+)\/notifications$/, more.notifications, true],
  [/^\/o\/([^/]+)\/tokens$/, more.tokens, true],
  [/^\/o\/([^/]+)\/audit$/, more.audit, true],
  [/^\/o\/([^/]+)\/settings$/, more.orgSettings, true],
];

let renderSeq = 0;

async function render() {
  stopAll();
  const seq = ++renderSeq;
  const path = location.hash.replace(/^#/, '') || '/';
  if (path.startsWith('/login')) return login();
  if (path.startsWith('/accept')) {
    const main = h('main', { class: 'center' });
    clear(root, main);
    return more.accept(main, { go }).catch((err) => clear(main, errorBox(err)));
  }
  const s = session();
  if (!s || !s.token || s.partial) return go('/login');
  if (path === '/' || path === '') return go('/orgs');
  for (const [re, page, org] of routes) {
    const m = path.match(re);
    if (!m) continue;
    const main = h('main', { id: 'main', tabindex: '-1' }, h('p', { class: 'loading' }, 'Loading…'));
    clear(root, await shell(org ? decodeURIComponent(m[1]) : null, path), main);
    try {
      await page(main, { org: org ? decodeURIComponent(m[1]) : null, id: m[2] ? decodeURIComponent(m[2]) : null, alive: () => seq === renderSeq, go });
    } catch (err) {
      if (seq === renderSeq) clear(main, errorBox(err));
    }
    return;
  }
  clear(root, await shell(null, path), h('main', { id: 'main' }, h('h1', null, 'Not found'), h('p', null, 'No page at ' + path + '. '), h('a', { href: '#/orgs' }, 'Organizations')));
}

let orgCache = {};

async function shell(org, path) {
  const s = session();
  let orgName = '';
  if (org) {
    if (!orgCache[org]) {
      try {
        orgCache[org] = await get('/organizations/' + encodeURIComponent(org));
      } catch {
        orgCache[org] = { name: org };
      }
    }
    orgName = orgCache[org].name;
  }
  const link = (href, label) => h('a', { href: '#' + href, class: path === href || path.startsWith(href + '/') ? 'active' : '' }, label);
  const o = (p) => '/o/' + encodeURIComponent(org) + p;
  const nav = h('nav', { class: 'nav', id: 'nav', 'aria-label': 'Main' },
    org
      ? [link(o('/dashboard'), 'Dashboard'), link(o('/devices'), 'Devices'), link(o('/tunnels'), 'Tunnels'), link(o('/labels'), 'Path labels'),
         link(o('/applications'), 'Applications'), link(o('/policies'), 'Policies'), link(o('/notifications'), 'Notifications'),
         link(o('/tokens'), 'Tokens'), link(o('/audit'), 'Audit'), link(o('/settings'), 'Settings')]
      : [],
    h('span', { class: 'sep' }),
    link('/orgs', 'Organizations'), link('/accounts', 'Accounts'), link('/access', 'Users & keys'));
  if (org) unread(nav.querySelector('a[href$="/notifications"]'));
  const toggle = h('button', { type: 'button', class: 'menu', 'aria-controls': 'nav', 'aria-expanded': 'false' }, '☰');
  toggle.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  const logout = h('button', { type: 'button', class: 'link', id: 'logout' }, 'Log out');
  logout.addEventListener('click', async () => {
    try {
      await post('/auth/logout');
    } catch {
      /* the session may be gone already */
    }
    setSession(null);
    orgCache = {};
    go('/login');
  });
  return h('header', { class: 'top' },
    h('a', { class: 'brand', href: '#/orgs' }, h('img', { src: '/assets/favicon.svg', alt: '', width: 24, height: 24 }), 'Trellis'),
    orgName ? h('span', { class: 'org', title: org }, orgName) : null,
    toggle,
    h('span', { class: 'user' }, h('a', { href: '#/me' }, (s && s.email) || ''), ' ', logout),
    nav);
}

// unread puts the number of my unread notifications on the menu entry.
async function unread(a) {
  if (!a || !(await features()).has(/^\/notifications\/summary$/)) return;
  try {
    const r = await get('/notifications/summary');
    if (r.unread > 0) a.appendChild(h('span', { class: 'count', id: 'unread-count', title: r.unread + ' unread' }, String(r.unread)));
  } catch {
    /* not essential */
  }
}

// login: email and password, then a TOTP or recovery code, or a forced
// TOTP enrollment (secret shown, first code activates it).
function login() {
  const notice = sessionStorage.getItem('trellis.notice');
  sessionStorage.removeItem('trellis.notice');
  const box = h('div', { class: 'login card' });
  clear(root, h('main', { class: 'center' }, box));
  const step1 = () => {
    const s = session();
    if (s && s.token && s.partial) setSession(null);
    clear(box, h('h1', null, 'Trellis'), h('p', { class: 'muted' }, 'Log in to manage your network.'),
      notice ? h('p', { class: 'notice' }, notice) : null,
      form([
        { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
        { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
      ], 'Log in', async (v) => {
        if (!v.email) throw new APIError(422, 'invalid', 'enter your email address', 'email');
        if (!v.password) throw new APIError(422, 'invalid', 'enter your password', 'password');
        const r = await post('/auth/login', { email: v.email, password: v.password });
        setSession({ token: r.token, email: r.user.email, user: r.user, partial: r.mfa_required, expires_at: r.expires_at });
        if (!r.mfa_required) return done();
        if (r.user.totp_enabled) return verify();
        return enroll();
      }, { id: 'login' }),
      h('p', { class: 'small' }, h('a', { href: '#/accept' }, 'Accept an invitation')));
    box.querySelector('input').focus();
  };
  const verify = () => {
    let recovery = false;
    const draw = () => {
      const other = h('button', { type: 'button', class: 'link' }, recovery ? 'Use an authenticator code' : 'Use a recovery code');
      other.addEventListener('click', () => { recovery = !recovery; draw(); });
      clear(box, h('h1', null, 'Second factor'),
        h('p', { class: 'muted' }, recovery ? 'Enter one of your recovery codes (each works once).' : 'Enter the 6-digit code from your authenticator app.'),
        form([recovery
          ? { name: 'recovery_code', label: 'Recovery code', required: true }
          : { name: 'code', label: 'Code', required: true, inputmode: 'numeric', autocomplete: 'one-time-code' }],
        'Verify', async (v) => {
          await api('POST', '/auth/totp/verify', recovery ? { recovery_code: v.recovery_code } : { code: v.code }, { no401: true });
          done();
        }, { id: 'totp', extra: other }));
      box.querySelector('input').focus();
    };
    draw();
  };
  const enroll = async () => {
    clear(box, h('p', { class: 'loading' }, 'Preparing enrollment…'));
    let e;
    try {
      e = await api('POST', '/auth/totp/enroll', {}, { no401: true });
    } catch (err) {
      clear(box, errorBox(err));
      return;
    }
    clear(box, h('h1', null, 'Set up two-factor login'),
      h('p', null, 'Your account requires a second factor. Add this key to an authenticator app (scan the code, type the key in, or open the link on the phone that has the app), then enter the code it shows.'),
      totpKey(e),
      form([{ name: 'code', label: 'First code', required: true, inputmode: 'numeric', autocomplete: 'one-time-code' }], 'Activate', async (v) => {
        const r = await api('POST', '/auth/totp/activate', { code: v.code }, { no401: true });
        const cont = h('button', { type: 'button', class: 'primary' }, 'I saved them — continue');
        cont.addEventListener('click', done);
        clear(box, h('h1', null, 'Recovery codes'), h('p', null, 'Each code logs you in once if you lose your authenticator. They are shown only now: store them safely.'),
          h('ol', { class: 'codes', id: 'recovery-codes' }, r.recovery_codes.map((c) => h('li', null, h('code', null, c)))), cont);
      }, { id: 'enroll' }));
  };
  const done = async () => {
    const s = session();
    s.partial = false;
    setSession(s);
    toast('Logged in as ' + s.email);
    go('/orgs');
  };
  step1();
}

window.addEventListener('hashchange', render);
render();
