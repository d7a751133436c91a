// DOM helpers. Text is always set as text (never parsed as HTML), so
// values from the API cannot inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) {
    if (c === undefined || c === null) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 2000) return '—';
  return d.toLocaleString();
}

export function ago(t) {
  if (!t) return 'never';
  const d = (Date.now() - new Date(t).getTime()) / 1000;
  if (d < 0 || isNaN(d)) return when(t);
  if (d < 60) return Math.round(d) + ' s ago';
  if (d < 3600) return Math.round(d / 60) + ' min ago';
  if (d < 86400) return Math.round(d / 3600) + ' h ago';
  return Math.round(d / 86400) + ' d ago';
}

export function bytes(n) {
  n = Number(n) || 0;
  const u = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) {
    n /= 1000;
    i++;
  }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

export function num(n) {
  return (Number(n) || 0).toLocaleString();
}

export function ms(v) {
  return v ? Number(v).toFixed(1) + ' ms' : '—';
}

export function short(id) {
  return id ? String(id).slice(0, 8) : '';
}

// badge renders a status word with a colour class (ok, warn, bad, idle).
export function badge(text, kind) {
  const k =
    kind ||
    ({ up: 'ok', connected: 'ok', approved: 'ok', 'in-sync': 'ok', done: 'ok', ok: 'ok',
       pending: 'warn', queued: 'warn', running: 'warn', no_address: 'warn', not_reported: 'idle',
       down: 'bad', failed: 'bad', disconnected: 'idle', expired: 'idle', no_link: 'bad',
       critical: 'bad', warning: 'warn', info: 'idle' })[text] || 'idle';
  return h('span', { class: 'badge ' + k }, text || '—');
}

// table renders rows; cols are [header, row => cell content].
export function table(cols, rows, opts = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, opts.empty || 'Nothing here yet.');
  return h('div', { class: 'tablewrap' },
    h('table', { class: opts.class || '' },
      h('thead', null, h('tr', null, cols.map(([t]) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null,
        cols.map(([t, f]) => h('td', { 'data-label': t }, f(r))))))));
}

// errorBox shows an API error (code and message).
export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('div', { class: 'error', role: 'alert' }, msg, err && err.code ? h('span', { class: 'code' }, ' (' + err.code + ')') : null);
}

// form builds a form from fields and submits through fn; an API error
// with a field lands under that input, anything else above the buttons.
// fields: {name, label, type?, value?, options?: [[value,label]], required?, placeholder?, help?, multiple?}
export function form(fields, submitLabel, fn, opts = {}) {
  const status = h('div', { class: 'formstatus' });
  const inputs = {};
  const rows = fields.map((f) => {
    let input;
    const id = 'f-' + (opts.id || 'x') + '-' + f.name.replace(/[^a-z0-9]/gi, '_');
    if (f.type === 'select') {
      input = h('select', { id, name: f.name, multiple: f.multiple, required: f.required },
        (f.options || []).map(([v, l]) => h('option', { value: v, selected: Array.isArray(f.value) ? f.value.includes(v) : f.value === v }, l)));
    } else if (f.type === 'checkbox') {
      input = h('input', { id, name: f.name, type: 'checkbox', checked: !!f.value });
    } else if (f.type === 'checkboxes') {
      // options [[value, label, title]]; the value is the list checked.
      input = h('div', { id, class: 'checks', role: 'group', 'aria-label': f.label },
        (f.options || []).map(([v, l, title]) => h('label', { title }, h('input', { type: 'checkbox', name: f.name, value: v, checked: (f.value || []).includes(v) }), ' ', l)));
    } else if (f.type === 'textarea') {
      input = h('textarea', { id, name: f.name, rows: f.rows || 6, placeholder: f.placeholder, required: f.required }, f.value || '');
    } else {
      input = h('input', { id, name: f.name, type: f.type || 'text', value: f.value ?? '', placeholder: f.placeholder,
        required: f.required, autocomplete: f.autocomplete || 'off', inputmode: f.inputmode, min: f.min, max: f.max });
    }
    inputs[f.name] = input;
    const err = h('div', { class: 'fielderror', id: id + '-err', role: 'alert' });
    input.setAttribute('aria-describedby', id + '-err');
    return h('div', { class: 'field' + (f.type === 'checkbox' ? ' check' : ''), dataset: { field: f.name } },
      h('label', { for: id }, f.label), input, f.help ? h('small', null, f.help) : null, err);
  });
  const button = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const el = h('form', { class: 'form ' + (opts.class || ''), novalidate: true }, rows, status, h('div', { class: 'actions' }, button, opts.extra || null));
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const r of el.querySelectorAll('.fielderror')) r.textContent = '';
    for (const r of el.querySelectorAll('.invalid')) r.classList.remove('invalid');
    clear(status);
    const values = {};
    for (const f of fields) {
      const i = inputs[f.name];
      if (f.type === 'checkbox') values[f.name] = i.checked;
      else if (f.type === 'checkboxes') values[f.name] = [...i.querySelectorAll('input:checked')].map((x) => x.value);
      else if (f.type === 'select' && f.multiple) values[f.name] = [...i.selectedOptions].map((o) => o.value);
      else if (f.type === 'number') values[f.name] = i.value === '' ? undefined : Number(i.value);
      else values[f.name] = i.value.trim();
    }
    button.disabled = true;
    try {
      await fn(values, status);
    } catch (err) {
      showError(el, status, err, fields);
    } finally {
      button.disabled = false;
    }
  });
  el.inputs = inputs;
  return el;
}

function showError(el, status, err, fields) {
  if (err && err.field) {
    // Match "address", "dhcp_server.range_start" or "rules[0].x" to the
    // longest field name the form has that starts it.
    const names = fields.map((f) => f.name).sort((a, b) => b.length - a.length);
    const hit = names.find((n) => err.field === n || err.field.startsWith(n + '.') || err.field.startsWith(n + '['));
    if (hit) {
      const box = el.querySelector('[data-field="' + CSS.escape(hit) + '"]');
      box.querySelector('.fielderror').textContent = err.message + (err.field !== hit ? ' (' + err.field + ')' : '');
      box.querySelector('input,select,textarea').classList.add('invalid');
      box.querySelector('input,select,textarea').focus();
      return;
    }
  }
  clear(status, errorBox(err));
}

// toast shows a short message at the bottom of the screen.
export function toast(text, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', role: 'status' });
    document.body.appendChild(box);
  }
  const t = h('div', { class: 'toast ' + kind }, text);
  box.appendChild(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), 4000);
}

// action returns a button that runs fn, showing errors as a toast.
export function action(label, fn, opts = {}) {
  const b = h('button', { type: 'button', class: opts.class || '', title: opts.title }, label);
  b.addEventListener('click', async () => {
    if (opts.confirm && !window.confirm(opts.confirm)) return;
    b.disabled = true;
    try {
      await fn();
    } catch (err) {
      toast(err.message || String(err), 'bad');
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), children);
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? '—')]));
}

// totpKey shows a TOTP enrollment answer: the QR code of the otpauth URL
// to scan (when the API sends one), the secret grouped by four to type in,
// and the otpauth link for a phone that has the app.
export function totpKey(e) {
  const qr = typeof e.qr_png === 'string' && e.qr_png.startsWith('data:image/png;base64,')
    ? h('img', { src: e.qr_png, class: 'qr', id: 'totp-qr', alt: 'QR code of the authenticator key' }) : null;
  return h('div', { class: 'totpkey' }, qr,
    h('div', null,
      h('p', { class: 'small muted' }, qr ? 'Scan the code with the app, or type in the key:' : 'Type this key into the app:'),
      h('p', { class: 'secret', id: 'totp-secret' }, String(e.secret || '').replace(/(.{4})/g, '$1 ').trim()),
      e.otpauth_url ? h('p', null, h('a', { href: e.otpauth_url, id: 'otpauth' }, 'Open in authenticator app')) : null));
}
