// Forms for path-selection and breakout rules, firewall sections and
// application rules: rows of fields instead of raw JSON (an "Edit as
// JSON" view stays for power users). Every editor element has get(),
// which returns the value exactly as the API takes it (docs/policies.md).
//
// API field errors ("rules[2].match.applications[0]",
// "outbound[0].action", "port_forwards[1].ports") land under the input
// that feeds that field: inputs carry data-rel (their path inside a row)
// and rows and lists data-base ("rules", "[2]"), renumbered whenever rows
// move, so the full path is known at the time of the error.
import { h, clear, errorBox } from './dom.js';

export const CLASSES = ['real-time', 'control-signalling', 'prime', 'standard', 'best-effort'];
export const IMPORTANCE = ['high', 'medium', 'low'];
const PROTOCOLS = [['', 'any'], ['tcp', 'tcp'], ['udp', 'udp'], ['icmp', 'icmp']];
const FW_SECTIONS = [
  ['outbound', 'Outbound (LAN to WAN and to tunnels)'],
  ['lan_to_lan', 'LAN to LAN (this site and through tunnels)'],
  ['inbound', 'Inbound (to the edge itself)'],
];

let seq = 0;
const uid = (p) => 'pf-' + p + '-' + ++seq;

// split reads a list typed as "a, b c" (commas or spaces).
export function split(s) {
  return String(s || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

function num(input) {
  const v = input.value.trim();
  return v === '' ? 0 : Number(v);
}

function button(label, title, fn, cls = 'small') {
  const b = h('button', { type: 'button', class: cls, title, 'aria-label': title }, label);
  b.addEventListener('click', fn);
  return b;
}

// fld is one labelled input of a row; rel is the API field it feeds,
// relative to its row ("match.ports").
function fld(label, input, rel, help) {
  const focus = input.focusable || input;
  if (!focus.id) focus.id = uid('i');
  if (rel) input.dataset.rel = rel;
  const err = h('div', { class: 'fielderror', role: 'alert', id: focus.id + '-err' });
  focus.setAttribute('aria-describedby', focus.id + '-err');
  return h('div', { class: 'field' }, h('label', { for: focus.id }, label), input, help ? h('small', null, help) : null, err);
}

function text(value, attrs = {}) {
  return h('input', { type: 'text', value: value ?? '', autocomplete: 'off', ...attrs });
}

function number(value, attrs = {}) {
  return h('input', { type: 'number', value: value ? value : '', min: 0, step: 'any', ...attrs });
}

function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, l]) => h('option', { value: v, selected: v === (value ?? '') }, l)));
}

// picker chooses values from options as removable chips; ordered ones
// (path labels) show their rank and move up. get() returns the values.
export function picker(options, values, { ordered = false, label = '', name = '' } = {}) {
  const cur = Array.isArray(values) ? values.filter((v) => typeof v === 'string') : [];
  const names = new Map(options);
  const chips = h('span', { class: 'chips' });
  const sel = h('select', { class: 'pick', name: name || undefined, 'aria-label': 'Add ' + label });
  const wrap = h('div', { class: 'picker' }, chips, sel);
  const draw = () => {
    clear(chips, cur.map((v, i) => h('span', { class: 'chip', dataset: { value: v } },
      ordered ? h('b', null, i + 1 + '.') : null, ' ', names.get(v) || v,
      ordered && i > 0 ? button('↑', 'Move ' + (names.get(v) || v) + ' up', () => { [cur[i - 1], cur[i]] = [cur[i], cur[i - 1]]; draw(); }, 'chipbtn') : null,
      button('×', 'Remove ' + (names.get(v) || v), () => { cur.splice(i, 1); draw(); }, 'chipbtn'))));
    const left = options.filter(([v]) => !cur.includes(v));
    clear(sel, h('option', { value: '' }, left.length ? (cur.length ? 'add…' : 'choose…') : cur.length ? '—' : 'none available'),
      left.map(([v, l]) => h('option', { value: v }, l)));
    sel.value = '';
    sel.hidden = !left.length && cur.length > 0;
  };
  sel.addEventListener('change', () => {
    if (sel.value && !cur.includes(sel.value)) cur.push(sel.value);
    draw();
  });
  draw();
  wrap.get = () => [...cur];
  wrap.focusable = sel;
  return wrap;
}

// rowList is an ordered list of rows (make(value) builds one; each row
// has get()) with add, remove and move up/down; base is its field name.
function rowList(base, values, make, { addLabel, empty, ordered = true, cls = '' }) {
  if (values !== null && values !== undefined && !Array.isArray(values)) throw new Error(base + ' is not a list');
  const list = h('div', { class: 'rows ' + cls, dataset: { base } });
  const none = h('p', { class: 'empty small' }, empty);
  const renumber = () => {
    const rows = [...list.children].filter((r) => r.classList.contains('rule'));
    rows.forEach((r, i) => {
      r.dataset.base = '[' + i + ']';
      const n = r.querySelector(':scope > .rulehead .rulenum');
      if (n) n.textContent = '#' + (i + 1);
    });
    none.hidden = rows.length > 0;
  };
  const add = (v) => {
    const body = make(v || null);
    const row = h('fieldset', { class: 'rule' });
    row.append(h('div', { class: 'rulehead' }, h('span', { class: 'rulenum' }),
      ordered ? button('↑', 'Move up', () => { if (row.previousElementSibling) { list.insertBefore(row, row.previousElementSibling); renumber(); } }) : null,
      ordered ? button('↓', 'Move down', () => { if (row.nextElementSibling) { list.insertBefore(row.nextElementSibling, row); renumber(); } }) : null,
      button('Remove', 'Remove this row', () => { row.remove(); renumber(); }, 'small danger')), body);
    row.get = body.get;
    list.appendChild(row);
    renumber();
    return row;
  };
  (values || []).forEach((v) => add(v));
  const addBtn = button(addLabel, addLabel, () => {
    const row = add(null);
    const first = row.querySelector('input,select,textarea');
    if (first) first.focus();
  }, 'small addrow');
  const el = h('div', { class: 'rowlist' }, list, none, addBtn);
  renumber();
  el.get = () => [...list.children].filter((r) => r.classList.contains('rule')).map((r, i) => r.get(i));
  return el;
}

// matchEditor edits a match {applications, categories, service_classes,
// importance, sources, destinations, protocol, ports}; get() leaves out
// the empty parts.
function matchEditor(m, refs) {
  m = m && typeof m === 'object' ? m : {};
  const list = (v) => (Array.isArray(v) ? v : []);
  const apps = picker(refs.apps, m.applications, { label: 'application', name: 'applications' });
  const cats = picker(refs.categories.map((c) => [c, c]), m.categories, { label: 'category', name: 'categories' });
  const classes = picker(CLASSES.map((c) => [c, c]), m.service_classes, { label: 'service class', name: 'service_classes' });
  const imp = picker(IMPORTANCE.map((c) => [c, c]), m.importance, { label: 'importance', name: 'importance' });
  const src = text(list(m.sources).join(', '), { name: 'sources', placeholder: '10.1.0.0/24, …' });
  const dst = text(list(m.destinations).join(', '), { name: 'destinations', placeholder: '198.51.100.0/24, …' });
  const proto = select(PROTOCOLS, m.protocol, { name: 'protocol' });
  const ports = text(list(m.ports).join(', '), { name: 'ports', placeholder: '443, 5060-5061' });
  const el = h('div', { class: 'match' }, h('h4', null, 'Match (every part given must match; empty: all traffic)'),
    h('div', { class: 'grid' },
      fld('Applications', apps, 'match.applications'), fld('Categories', cats, 'match.categories'),
      fld('Service classes', classes, 'match.service_classes'), fld('Importance', imp, 'match.importance'),
      fld('Sources (CIDR)', src, 'match.sources'), fld('Destinations (CIDR)', dst, 'match.destinations'),
      fld('Protocol', proto, 'match.protocol'), fld('Destination ports', ports, 'match.ports', 'tcp or udp')));
  el.get = () => {
    const out = {};
    const set = (k, v) => { if (v.length) out[k] = v; };
    set('applications', apps.get()); set('categories', cats.get()); set('service_classes', classes.get()); set('importance', imp.get());
    set('sources', split(src.value)); set('destinations', split(dst.value)); set('ports', split(ports.value));
    if (proto.value) out.protocol = proto.value;
    return out;
  };
  return el;
}

// pathRuleEditor edits the rules of a path-selection (labels of type
// tunnel) or breakout (labels of type dia) policy. Row order is the
// evaluation order: priorities are given as 10, 20, 30 … on save.
export function pathRuleEditor(kind, rules, refs) {
  const want = kind === 'breakout' ? 'dia' : 'tunnel';
  const labelOpts = refs.labels.filter((l) => l.type === want).map((l) => [l.id, l.name]);
  if (rules !== null && rules !== undefined && !Array.isArray(rules)) throw new Error('rules is not a list');
  const sorted = [...(rules || [])].sort((a, b) => ((a && a.priority) || 0) - ((b && b.priority) || 0));
  return rowList('rules', sorted, (r) => {
    r = r && typeof r === 'object' ? r : {};
    const name = text(r.name, { name: 'name', placeholder: 'optional, e.g. zoom over MPLS' });
    const match = matchEditor(r.match, refs);
    const action = select([['paths', 'send over path labels'], ['block', 'block (drop)']], r.block ? 'block' : 'paths', { name: 'action' });
    const labels = picker(labelOpts, r.labels, { ordered: true, label: want + ' label', name: 'labels' });
    const mode = select([['priority', 'priority: first usable label'], ['balance', 'balance: spread flows'], ['quality', 'quality: paths meeting the thresholds']], r.mode || 'priority', { name: 'mode' });
    const fallback = select([['routing', 'follow the routing table'], ['drop', 'drop']], r.fallback || 'routing', { name: 'fallback' });
    const loss = number(r.max_loss_pct, { name: 'max_loss_pct', max: 100 });
    const lat = number(r.max_latency_ms, { name: 'max_latency_ms' });
    const jit = number(r.max_jitter_ms, { name: 'max_jitter_ms' });
    const paths = h('div', null, h('h4', null, 'Action'), h('div', { class: 'grid' },
      fld('Path labels, in order of preference', labels, 'labels', labelOpts.length ? null : 'no ' + want + ' labels yet: create them under Path labels'),
      fld('Mode', mode, 'mode'), fld('When no label has a usable path', fallback, 'fallback'),
      fld('Max loss (%)', loss, 'max_loss_pct', '0: no limit'), fld('Max latency (ms)', lat, 'max_latency_ms', '0: no limit'), fld('Max jitter (ms)', jit, 'max_jitter_ms', '0: no limit')));
    const sync = () => { paths.hidden = action.value === 'block'; };
    action.addEventListener('change', sync);
    sync();
    const el = h('div', null, h('div', { class: 'grid' }, fld('Name', name, 'name'), fld('Action', action, 'block')), match, paths);
    el.get = (i) => {
      const out = { priority: (i + 1) * 10, match: match.get() };
      if (r.id) out.id = r.id;
      if (name.value.trim()) out.name = name.value.trim();
      if (action.value === 'block') return { ...out, block: true };
      out.labels = labels.get();
      if (mode.value !== 'priority') out.mode = mode.value;
      if (fallback.value !== 'routing') out.fallback = fallback.value;
      for (const [k, inp] of [['max_loss_pct', loss], ['max_latency_ms', lat], ['max_jitter_ms', jit]]) if (num(inp)) out[k] = num(inp);
      return out;
    };
    return el;
  }, { addLabel: 'Add rule', empty: 'No rules: flows follow the routing table.' });
}

function fwRules(section, rules, refs) {
  if (rules !== null && rules !== undefined && !Array.isArray(rules)) throw new Error(section + ' is not a list');
  const sorted = [...(rules || [])].sort((a, b) => ((a && a.priority) || 0) - ((b && b.priority) || 0));
  return rowList(section, sorted, (r) => {
    r = r && typeof r === 'object' ? r : {};
    const action = select([['allow', 'allow'], ['deny', 'deny']], r.action || 'deny', { name: 'fw_action' });
    const inIf = text(r.in_interface, { name: 'in_interface', placeholder: 'any, eth1 or tunnel' });
    const outIf = text(r.out_interface, { name: 'out_interface', placeholder: 'any, eth0 or tunnel' });
    const desc = text(r.description, { name: 'description' });
    const match = matchEditor(r.match, refs);
    const el = h('div', null, h('div', { class: 'grid' }, fld('Action', action, 'action'), fld('In interface', inIf, 'in_interface'),
      fld('Out interface', outIf, 'out_interface'), fld('Description', desc, 'description')), match);
    el.get = (i) => {
      const out = { priority: (i + 1) * 10, action: action.value, match: match.get() };
      if (r.id) out.id = r.id;
      if (inIf.value.trim()) out.in_interface = inIf.value.trim();
      if (outIf.value.trim()) out.out_interface = outIf.value.trim();
      if (desc.value.trim()) out.description = desc.value.trim();
      return out;
    };
    return el;
  }, { addLabel: 'Add rule', empty: 'No rules: the default applies.' });
}

// firewallEditor edits a firewall policy's five sections.
export function firewallEditor(fw, refs) {
  if (fw !== null && fw !== undefined && (typeof fw !== 'object' || Array.isArray(fw))) throw new Error('the firewall is an object of sections');
  fw = fw || {};
  const secs = FW_SECTIONS.map(([k, title]) => [k, title, fwRules(k, fw[k], refs)]);
  const fwd = rowList('port_forwards', fw.port_forwards, (p) => {
    p = p && typeof p === 'object' ? p : {};
    const iface = text(p.interface, { name: 'interface', placeholder: 'eth0' });
    const proto = select([['tcp', 'tcp'], ['udp', 'udp']], p.protocol || 'tcp', { name: 'protocol' });
    const ports = text(p.ports, { name: 'ports', placeholder: '8080 or 8000-8010' });
    const to = text(p.to_address, { name: 'to_address', placeholder: '10.1.0.10' });
    const toPort = number(p.to_port, { name: 'to_port', max: 65535, step: 1 });
    const el = h('div', { class: 'grid' }, fld('WAN interface', iface, 'interface'), fld('Protocol', proto, 'protocol'), fld('Ports', ports, 'ports'),
      fld('To LAN host', to, 'to_address'), fld('To port', toPort, 'to_port', '0 or empty: the same ports'));
    el.get = () => {
      const out = { interface: iface.value.trim(), protocol: proto.value, ports: ports.value.trim(), to_address: to.value.trim() };
      if (p.id) out.id = p.id;
      if (num(toPort)) out.to_port = num(toPort);
      return out;
    };
    return el;
  }, { addLabel: 'Add port forward', empty: 'No port forwards.', ordered: false });
  const nat = rowList('one_to_one', fw.one_to_one, (n) => {
    n = n && typeof n === 'object' ? n : {};
    const iface = text(n.interface, { name: 'interface', placeholder: 'eth0' });
    const pub = text(n.public_address, { name: 'public_address', placeholder: '203.0.113.10' });
    const priv = text(n.private_address, { name: 'private_address', placeholder: '10.1.0.10' });
    const el = h('div', { class: 'grid' }, fld('WAN interface', iface, 'interface'), fld('Public address', pub, 'public_address'), fld('LAN host', priv, 'private_address'));
    el.get = () => {
      const out = { interface: iface.value.trim(), public_address: pub.value.trim(), private_address: priv.value.trim() };
      if (n.id) out.id = n.id;
      return out;
    };
    return el;
  }, { addLabel: 'Add 1:1 NAT', empty: 'No 1:1 NAT.', ordered: false });
  const el = h('div', { class: 'fwedit' },
    secs.map(([k, title, ed]) => h('div', { class: 'fwsection', dataset: { section: k } }, h('h3', null, title), ed)),
    h('div', { class: 'fwsection', dataset: { section: 'port_forwards' } }, h('h3', null, 'Port forwards'), fwd),
    h('div', { class: 'fwsection', dataset: { section: 'one_to_one' } }, h('h3', null, '1:1 NAT'), nat));
  el.get = () => {
    const out = {};
    for (const [k, , ed] of secs) out[k] = ed.get();
    out.port_forwards = fwd.get();
    out.one_to_one = nat.get();
    return out;
  };
  return el;
}

// appRulesEditor edits an application's rules {prefixes, protocol, ports}.
export function appRulesEditor(rules) {
  return rowList('rules', Array.isArray(rules) && rules.length ? rules : rules && !Array.isArray(rules) ? rules : [{}], (r) => {
    r = r && typeof r === 'object' ? r : {};
    const list = (v) => (Array.isArray(v) ? v : []);
    const prefixes = text(list(r.prefixes).join(', '), { name: 'prefixes', placeholder: '198.51.100.0/24, …' });
    const proto = select(PROTOCOLS, r.protocol, { name: 'protocol' });
    const ports = text(list(r.ports).join(', '), { name: 'ports', placeholder: '443, 8000-8010' });
    const el = h('div', { class: 'grid' }, fld('Server prefixes (CIDR)', prefixes, 'prefixes'), fld('Protocol', proto, 'protocol'),
      fld('Server ports', ports, 'ports', 'tcp or udp'));
    el.get = () => {
      const out = {};
      if (split(prefixes.value).length) out.prefixes = split(prefixes.value);
      if (proto.value) out.protocol = proto.value;
      if (split(ports.value).length) out.ports = split(ports.value);
      return out;
    };
    return el;
  }, { addLabel: 'Add rule', empty: 'No rules: add at least one.', ordered: false });
}

// withJSON wraps an editor (made by make(value)) with an "Edit as JSON"
// toggle; get() reads whichever view is shown.
export function withJSON(make, value, field) {
  let ed = make(value);
  let json = null;
  const box = h('div', { class: 'editorbox' }, ed);
  const err = h('div', { class: 'fielderror', role: 'alert' });
  const toggle = button('Edit as JSON', 'Switch between the form and JSON', () => {
    err.textContent = '';
    if (!json) {
      json = h('textarea', { class: 'jsonedit', rows: 14, spellcheck: 'false', 'aria-label': field + ' as JSON' }, JSON.stringify(ed.get(), null, 2));
      json.dataset.rel = field;
      clear(box, h('div', { class: 'field' }, json, err));
      toggle.textContent = 'Back to the form';
      json.focus();
      return;
    }
    let v;
    try {
      v = JSON.parse(json.value);
    } catch (e) {
      err.textContent = 'not valid JSON: ' + e.message;
      return;
    }
    let next;
    try {
      next = make(v);
    } catch (e) {
      err.textContent = 'this JSON does not fit the form (' + e.message + '): fix it, or save it as it is';
      return;
    }
    ed = next;
    json = null;
    clear(box, ed);
    toggle.textContent = 'Edit as JSON';
  }, 'small jsontoggle');
  const el = h('div', { class: 'ruleeditor' }, h('div', { class: 'actions right' }, toggle), box);
  el.get = () => {
    if (!json) return ed.get();
    try {
      return JSON.parse(json.value);
    } catch (e) {
      const x = new Error('not valid JSON: ' + e.message);
      x.field = field;
      x.code = 'invalid';
      throw x;
    }
  };
  return el;
}

// fullPath is the API field an input feeds: the data-base of its rows
// and lists, then its data-rel.
function fullPath(el, root) {
  let base = '';
  for (let p = el.parentElement; p && p !== root; p = p.parentElement) if (p.dataset && p.dataset.base) base = p.dataset.base + base;
  const rel = el.dataset.rel || '';
  return base && rel ? base + '.' + rel : base + rel;
}

// editorForm is a form of labelled parts (inputs with data-rel, editors)
// submitted through fn; an API error with a field lands under the input
// that feeds it (the longest match), anything else above the buttons.
export function editorForm(parts, submitLabel, fn, opts = {}) {
  const status = h('div', { class: 'formstatus' });
  const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const el = h('form', { class: 'form wide ' + (opts.class || ''), novalidate: true, id: opts.id }, parts, status, h('div', { class: 'actions' }, submit));
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const r of el.querySelectorAll('.fielderror')) r.textContent = '';
    for (const r of el.querySelectorAll('.invalid')) r.classList.remove('invalid');
    clear(status);
    submit.disabled = true;
    try {
      await fn();
    } catch (err) {
      showError(el, status, err);
    } finally {
      submit.disabled = false;
    }
  });
  return el;
}

function showError(form, status, err) {
  const f = err && err.field;
  if (f) {
    let best = null, bestLen = -1;
    for (const el of form.querySelectorAll('[data-rel]')) {
      const p = fullPath(el, form);
      if ((f === p || f.startsWith(p + '.') || f.startsWith(p + '[')) && p.length > bestLen) {
        best = el;
        bestLen = p.length;
      }
    }
    const box = best && best.closest('.field');
    if (box) {
      box.querySelector('.fielderror').textContent = err.message + (fullPath(best, form) !== f ? ' (' + f + ')' : '');
      const input = box.querySelector('input,select,textarea');
      if (input) {
        input.classList.add('invalid');
        input.focus();
      }
      box.scrollIntoView({ block: 'center' });
      return;
    }
  }
  clear(status, errorBox(f ? { message: err.message + ' (' + f + ')', code: err.code } : err));
}

// labelled is a top-level input of an editorForm (name, kind, …).
export function labelled(label, input, rel, help) {
  return fld(label, input, rel, help);
}
