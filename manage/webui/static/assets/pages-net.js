// Network pages: dashboard, devices, device detail, tunnels.
import { get, post, put, patch, del, all, list, features } from './api.js';
import { h, clear, table, badge, when, ago, bytes, num, ms, short, form, action, section, kv, toast, errorBox } from './dom.js';
import { lineChart, rates } from './chart.js';
import { every } from './timers.js';

const enc = encodeURIComponent;
const O = (org) => '/organizations/' + enc(org);

function devName(d) {
  return d ? d.name || d.hostname || short(d.id) : '?';
}

function devLink(org, d) {
  return h('a', { href: '#/o/' + enc(org) + '/devices/' + enc(d.id) }, devName(d));
}

// ---------------------------------------------------------------- dashboard

export async function dashboard(main, ctx) {
  const { org } = ctx;
  const [devices, tunnels, feats, lim] = await Promise.all([all(O(org) + '/devices'), all(O(org) + '/tunnels'), features(), resourceLimits(org)]);
  const byId = Object.fromEntries(devices.map((d) => [d.id, d]));
  const approved = devices.filter((d) => d.approval === 'approved');
  const up = tunnels.filter((t) => t.status === 'up').length;
  const totals = h('div', { class: 'tiles' });
  const chartBox = h('div', { id: 'traffic-chart' });
  clear(main,
    h('h1', null, 'Dashboard'),
    h('div', { class: 'tiles' },
      tile('Devices', devices.length, `${devices.filter((d) => d.conn_state === 'connected').length} connected`),
      tile('Pending approval', devices.filter((d) => d.approval === 'pending').length, 'waiting', devices.some((d) => d.approval === 'pending') ? 'warn' : ''),
      tile('In sync', approved.filter((d) => d.sync_status === 'in-sync').length + ' / ' + approved.length, 'approved devices'),
      tile('Tunnels up', up + ' / ' + tunnels.length, `${tunnels.filter((t) => t.status === 'down').length} down`, tunnels.some((t) => t.status === 'down') ? 'bad' : '')),
    section('Traffic', totals, chartBox),
    section('Sites', sites(org, devices)),
    section('Tunnel health', matrix(org, approved, tunnels, byId)));

  // Totals and rates from the devices' latest stats; history from the
  // API when this manage has it, else sampled while the page is open.
  const samples = [];
  const hasHistory = feats.has(/stats\/history/);
  const sample = async () => {
    let rx = 0, tx = 0, rp = 0, tp = 0, n = 0;
    const inet = {}; // device id → [WANs reaching the Internet, WANs checked, reasons]
    const health = {}; // device id → the health of its latest report
    await Promise.all(approved.map(async (d) => {
      try {
        const st = await get(O(org) + '/devices/' + enc(d.id) + '/stats');
        const x = (inet[d.id] = [0, 0, []]);
        if (st.stats && st.stats.health && typeof st.stats.health === 'object') health[d.id] = st.stats.health;
        for (const i of (st.stats && st.stats.interfaces) || []) {
          rx += i.rx_bytes; tx += i.tx_bytes; rp += i.rx_packets; tp += i.tx_packets;
          if (i.internet && typeof i.internet === 'object') {
            x[1]++;
            if (i.internet.reachable) x[0]++;
            else x[2].push(i.name + ': ' + (i.internet.error || 'unreachable'));
          }
        }
        n++;
      } catch { /* no report yet */ }
    }));
    if (!ctx.alive()) return;
    // The Internet column of the sites: WANs that reach it of those checked.
    for (const el of main.querySelectorAll('.inetsum')) {
      const x = inet[el.dataset.device];
      if (!x || !x[1]) { clear(el, '—'); el.title = 'no Internet check reported'; continue; }
      clear(el, badge(x[0] + ' / ' + x[1] + ' WAN' + (x[1] > 1 ? 's' : ''), x[0] === x[1] ? 'ok' : x[0] ? 'warn' : 'bad'));
      el.title = x[2].join('; ') || 'every checked WAN reaches the Internet';
    }
    // The Health column: CPU, memory and disk use, the highest coloured.
    for (const el of main.querySelectorAll('.healthsum')) {
      const hl = health[el.dataset.device];
      const v = (k) => (hl && typeof hl[k] === 'number' && isFinite(hl[k]) ? hl[k] : null);
      const parts = [['CPU', 'cpu_pct'], ['mem', 'mem_used_pct'], ['disk', 'disk_used_pct']].map(([k, f]) => [k, v(f), f]).filter(([, x]) => x !== null);
      if (!parts.length) { clear(el, '—'); continue; }
      const levels = parts.map(([, x, f]) => resourceLevel(x, lim ? lim[f] || { warning: 0, critical: 0 } : null));
      const worst = levels.includes('bad') ? 'bad' : levels.includes('warn') ? 'warn' : '';
      clear(el, h('span', { class: worst }, parts.map(([k, x]) => k + ' ' + x.toFixed(0) + ' %').join(', ')));
    }
    samples.push([Date.now(), rx, tx, rp, tp]);
    if (samples.length > 360) samples.shift();
    clear(totals,
      tile('Received', bytes(rx), `${num(rp)} packets`),
      tile('Sent', bytes(tx), `${num(tp)} packets`),
      tile('Reporting', n + ' / ' + approved.length, 'devices with stats'));
    if (!hasHistory) {
      const col = (k) => samples.map((p) => [p[0], p[k]]);
      clear(chartBox,
        samples.length < 2 ? h('p', { class: 'muted' }, 'Rates appear after the next sample (every 5 s while this page is open).')
          : h('div', { class: 'charts' },
            lineChart([{ name: 'in', color: '#2b8a6e', points: rates(col(1)).map(([t, v]) => [t, v * 8]) },
              { name: 'out', color: '#3d6fd8', points: rates(col(2)).map(([t, v]) => [t, v * 8]) }], { title: 'Bandwidth (bit/s)', fmt: bits }),
            lineChart([{ name: 'in', color: '#2b8a6e', points: rates(col(3)) }, { name: 'out', color: '#3d6fd8', points: rates(col(4)) }],
              { title: 'Packets per second', fmt: (v) => v.toFixed(0) })),
        h('p', { class: 'muted small' }, 'Sampled by this page while it is open; this manage has no stats history endpoint.'));
    }
  };
  await sample();
  every(5000, sample);
  if (hasHistory) {
    // Every 5 s until the history has points (a new organization's
    // first samples), then every 30 s.
    let drawn = 0, had = false;
    const draw = async () => {
      if (had && Date.now() - drawn < 30000) return;
      had = await history(org, chartBox);
      drawn = Date.now();
    };
    await draw();
    every(5000, draw);
  }
}

// hist fetches series from the statistics history API and returns them as
// [[t(ms), value]] per series key; values of the same key and time (e.g.
// both ends of a tunnel) are added up, or the worst kept with combine 'max'.
async function hist(org, params, combine = 'sum') {
  const r = await list(O(org) + '/stats/history', params);
  const out = {};
  for (const sr of r.series || []) {
    const k = sr.kind === 'device' ? sr.metric : sr.key;
    const m = (out[k] = out[k] || new Map());
    for (const p of sr.points || []) {
      const t = new Date(p.t).getTime();
      m.set(t, combine === 'max' ? Math.max(m.get(t) ?? -Infinity, p.avg) : (m.get(t) || 0) + p.avg);
    }
  }
  const res = {};
  for (const [k, m] of Object.entries(out)) res[k] = [...m.entries()].sort((x, y) => x[0] - y[0]);
  // The range asked for, as the x axis of the charts (not enumerable).
  Object.defineProperty(res, 'range', { value: [new Date(r.from).getTime(), new Date(r.to).getTime()] });
  return res;
}

const IN = '#2b8a6e', OUT = '#3d6fd8', PALETTE = ['#2b8a6e', '#3d6fd8', '#c05621', '#805ad5', '#d53f8c', '#2c7a7b', '#b7791f', '#4a5568'];

// history draws the organization's totals of the last hour from the
// statistics history API; true when there were points to draw.
async function history(org, box) {
  try {
    const [rxb, txb, rxp, txp] = await Promise.all(['rx_bps', 'tx_bps', 'rx_pps', 'tx_pps'].map((metric) => hist(org, { total: 'true', metric })));
    const one = (r) => Object.values(r)[0] || [];
    const any = [rxb, txb, rxp, txp].some((r) => one(r).length > 0);
    clear(box, h('div', { class: 'charts' },
      lineChart([{ name: 'in', color: IN, points: one(rxb) }, { name: 'out', color: OUT, points: one(txb) }], { title: 'Bandwidth, last hour (WAN totals)', fmt: bits, range: rxb.range }),
      lineChart([{ name: 'in', color: IN, points: one(rxp) }, { name: 'out', color: OUT, points: one(txp) }], { title: 'Packets per second, last hour', fmt: (v) => v.toFixed(0), range: rxp.range })));
    return any;
  } catch (err) {
    clear(box, errorBox(err));
    return false;
  }
}

// deviceHistory draws a device's WAN bandwidth and its tunnels' RTT and
// loss over the last hour.
async function deviceHistory(org, id, box, ctx) {
  const [dev, rtt, loss, wanRTT] = await Promise.all([
    hist(org, { device_id: id, kind: 'device' }),
    hist(org, { device_id: id, kind: 'tunnel', metric: 'rtt_ms' }, 'max'),
    hist(org, { device_id: id, kind: 'tunnel', metric: 'loss_pct' }, 'max'),
    // Internet checks of the WANs (a manage without them refuses the metric).
    hist(org, { device_id: id, kind: 'interface', metric: 'internet_rtt_ms' }, 'max').catch(() => ({})),
  ]);
  if (ctx && !ctx.alive()) return;
  const per = (r) => Object.entries(r).map(([k, pts], i) => ({ name: 'tunnel ' + k, color: PALETTE[i % PALETTE.length], points: pts }));
  const hasHealth = ['cpu_pct', 'mem_used_pct', 'disk_used_pct', 'load1'].some((k) => (dev[k] || []).length);
  clear(box, h('div', { class: 'charts' },
    hasHealth ? lineChart([
      { name: 'CPU', color: PALETTE[2], points: dev.cpu_pct || [] },
      { name: 'memory', color: PALETTE[1], points: dev.mem_used_pct || [] },
      { name: 'disk', color: PALETTE[3], points: dev.disk_used_pct || [] },
    ], { title: 'CPU, memory and disk use, last hour', fmt: pct, range: dev.range, max: 100, id: 'chart-resources' }) : null,
    hasHealth ? lineChart([{ name: 'load (1 min)', color: PALETTE[6], points: dev.load1 || [] }],
      { title: 'Load, last hour', fmt: (v) => v.toFixed(v < 10 ? 2 : 0), range: dev.range, id: 'chart-load' }) : null,
    lineChart([{ name: 'in', color: IN, points: dev.rx_bps || [] }, { name: 'out', color: OUT, points: dev.tx_bps || [] }], { title: 'WAN bandwidth, last hour', fmt: bits, range: dev.range }),
    Object.keys(wanRTT).length ? lineChart(Object.entries(wanRTT).map(([k, pts], i) => ({ name: k, color: PALETTE[i % PALETTE.length], points: pts })),
      { title: 'Internet RTT per WAN, last hour', fmt: msec, range: wanRTT.range, id: 'chart-internet' }) : null,
    lineChart(per(rtt), { title: 'Tunnel RTT, last hour', fmt: msec, range: rtt.range }),
    lineChart(per(loss), { title: 'Tunnel loss, last hour', fmt: pct, range: loss.range })));
}

function pct(v) {
  return v.toFixed(v < 10 ? 1 : 0) + ' %';
}

function msec(v) {
  return v.toFixed(v < 10 ? 1 : 0) + ' ms';
}

function bits(v) {
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  while (v >= 1000 && i < 3) { v /= 1000; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + ' ' + u[i];
}

function tile(label, value, sub, kind = '') {
  return h('div', { class: 'tile ' + kind }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, String(value)), sub ? h('div', { class: 'sub' }, sub) : null);
}

function sites(org, devices) {
  return table([
    ['Device', (d) => devLink(org, d)],
    ['Site', (d) => d.site || '—'],
    ['Status', (d) => d.approval === 'pending' ? badge('pending') : badge(d.conn_state)],
    ['Config', (d) => d.approval === 'pending' ? '—' : badge(d.sync_status)],
    ['Internet', (d) => h('span', { class: 'inetsum', dataset: { device: d.id } }, '—')],
    ['Health', (d) => h('span', { class: 'healthsum', dataset: { device: d.id } }, '—')],
    ['Last seen', (d) => ago(d.last_seen_at)],
  ], devices, { empty: 'No devices yet: create an organization token (Tokens) and start trellis-edge with it.', class: 'sites', rowAttrs: (d) => ({ dataset: { device: d.hostname } }) });
}

// matrix: devices × devices, each cell the best tunnel between the pair.
function matrix(org, devices, tunnels, byId) {
  if (devices.length < 2) return h('p', { class: 'empty' }, 'The matrix needs two approved devices.');
  const pair = {};
  const rank = { up: 3, pending: 2, down: 1 };
  for (const t of tunnels) {
    for (const k of [t.device_a + '|' + t.device_b, t.device_b + '|' + t.device_a]) {
      const cur = pair[k];
      if (!cur || (rank[t.status] || 0) > (rank[cur.status] || 0)) pair[k] = t;
    }
  }
  return h('div', { class: 'tablewrap' }, h('table', { class: 'matrix', id: 'tunnel-matrix' },
    h('thead', null, h('tr', null, h('th', null, ''), devices.map((d) => h('th', { scope: 'col' }, devName(d))))),
    h('tbody', null, devices.map((a) => h('tr', null, h('th', { scope: 'row' }, devName(a)),
      devices.map((b) => {
        if (a.id === b.id) return h('td', { class: 'self' }, '');
        const t = pair[a.id + '|' + b.id];
        if (!t) return h('td', { class: 'none', title: 'no tunnel' }, '·');
        return h('td', { class: 'cell ' + t.status, title: `tunnel ${t.number}: ${t.status}${t.reason ? ' — ' + t.reason : ''}` },
          t.status === 'up' ? ms(t.rtt_ms) : t.status);
      }))))),
  h('p', { class: 'legend small' }, h('span', { class: 'cell up' }, 'up'), ' ', h('span', { class: 'cell pending' }, 'pending'), ' ', h('span', { class: 'cell down' }, 'down'), ' · no tunnel'));
}

// ------------------------------------------------------------------ devices

export async function devices(main, ctx) {
  const { org } = ctx;
  const filter = h('select', { id: 'device-filter', 'aria-label': 'Filter' },
    [['', 'All devices'], ['pending', 'Pending approval'], ['approved', 'Approved']].map(([v, l]) => h('option', { value: v }, l)));
  const body = h('div');
  const load = async () => {
    const items = await all(O(org) + '/devices', filter.value ? { approval: filter.value } : {});
    if (!ctx.alive()) return;
    clear(body, table([
      ['Name', (d) => devLink(org, d)],
      ['Site', (d) => d.site || '—'],
      ['Hostname', (d) => d.hostname],
      ['Approval', (d) => d.approval === 'pending'
        ? h('span', null, badge('pending'), ' ', action('Approve', async () => {
          await post(O(org) + '/devices/' + enc(d.id) + '/approve');
          toast(devName(d) + ' approved');
          await load();
        }, { class: 'primary small approve', title: 'Approve ' + devName(d) }))
        : badge('approved')],
      ['Connection', (d) => badge(d.conn_state)],
      ['Config', (d) => h('span', { title: d.sync_error || '' }, badge(d.sync_status))],
      ['Version', (d) => (d.versions && (d.versions.edge || d.versions.trellis || Object.values(d.versions)[0])) || '—'],
      ['Last seen', (d) => ago(d.last_seen_at)],
    ], items, { empty: 'No devices. Create an organization token and start trellis-edge with it.', rowAttrs: (d) => ({ dataset: { device: d.hostname } }) }));
  };
  filter.addEventListener('change', load);
  clear(main, h('div', { class: 'head' }, h('h1', null, 'Devices'), filter), body);
  await load();
  every(15000, load);
}

export async function deviceDetail(main, ctx) {
  const { org, id } = ctx;
  const P = O(org) + '/devices/' + enc(id);
  const d = await get(P);
  const parts = {
    info: h('div'), apps: h('div', { id: 'device-apps' }), health: h('div', { id: 'device-health' }), charts: h('div', { id: 'device-charts' }), ifaces: h('div'), tunnels: h('div'), routes: h('div'), leases: h('div'), jobs: h('div'), stats: h('div'), policies: h('div'),
  };
  const rename = form([
    { name: 'name', label: 'Name', value: d.name },
    { name: 'site', label: 'Site', value: d.site },
    { name: 'description', label: 'Description', value: d.description },
  ], 'Save', async (v) => {
    await patch(P, v);
    toast('Saved');
  }, { id: 'dev', class: 'inline' });
  clear(main,
    h('div', { class: 'head' }, h('h1', null, devName(d)),
      d.approval === 'pending' ? action('Approve', async () => { await post(P + '/approve'); toast('Approved'); ctx.go('/o/' + enc(org) + '/devices/' + enc(id)); }, { class: 'primary' }) : null,
      action('Delete device', async () => { await del(P); toast('Deleted'); ctx.go('/o/' + enc(org) + '/devices'); }, { class: 'danger', confirm: 'Delete this device and revoke its credential?' })),
    section('Overview', parts.info, h('details', null, h('summary', null, 'Rename / site'), rename)),
    section('Health', parts.health),
    section('Interfaces', parts.ifaces),
    section('Tunnels', parts.tunnels),
    section('Static routes', parts.routes),
    section('DHCP leases', parts.leases),
    section('Statistics', parts.charts, parts.stats),
    section('Traffic per application', parts.apps),
    section('Policies', parts.policies),
    section('Jobs', parts.jobs));
  clear(parts.info, kv([
    ['ID', h('code', null, d.id)], ['Hostname', d.hostname], ['Machine ID', h('code', null, d.machine_id)], ['OS', d.os],
    ['Approval', badge(d.approval)], ['Connection', badge(d.conn_state)], ['Config', badge(d.sync_status)],
    d.sync_error ? ['Sync error', h('span', { class: 'bad' }, d.sync_error)] : null,
    ['Desired / applied', h('code', null, short(d.desired_version) + ' / ' + short(d.applied_version))],
    ['Versions', Object.entries(d.versions || {}).map(([k, v]) => k + ' ' + v).join(', ') || '—'],
    ['Last seen', when(d.last_seen_at)], ['Registered', when(d.created_at)],
  ]));
  const loaders = [
    () => interfaces(org, P, parts.ifaces, ctx),
    () => deviceTunnels(org, P, parts.tunnels),
    () => routes(P, parts.routes),
    () => leases(P, parts.leases),
    async () => {
      // The organization's resource thresholds colour the health tiles.
      const lim = await resourceLimits(org);
      await stats(P, parts.stats, parts.health, null, lim);
      every(10000, () => stats(P, parts.stats, parts.health, ctx, lim));
    },
    async () => {
      if (!(await features()).has(/stats\/history$/)) return;
      await deviceHistory(org, id, parts.charts);
      every(30000, () => deviceHistory(org, id, parts.charts, ctx));
    },
    async () => {
      await appStats(P, parts.apps);
      every(10000, () => appStats(P, parts.apps, ctx));
    },
    () => devicePolicies(org, P, parts.policies),
    () => jobs(P, parts.jobs, ctx),
  ];
  await Promise.all(loaders.map((f) => f().catch((err) => toast(err.message, 'bad'))));
}

// interfaces shows the device's interfaces (refreshed every 10 s: link,
// status and Internet checks change) and the form assigning one (kept
// open across refreshes).
async function interfaces(org, P, box, ctx) {
  const listBox = h('div', { id: 'iface-list' });
  const editor = h('div', { id: 'iface-editor' });
  clear(box, listBox, editor);
  let labels = await all(O(org) + '/path-labels');
  const draw = async () => {
    const r = await get(P + '/interfaces');
    if (!ctx.alive()) return;
    drawList(r, labels);
  };
  const edit = (i) => {
    const a = i.assignment || {};
    const f = form([
      { name: 'role', label: 'Role', type: 'select', value: a.role || 'unassigned', options: [['unassigned', 'Unassigned'], ['wan', 'WAN'], ['lan', 'LAN']] },
      { name: 'dhcp', label: 'DHCP client (WAN)', type: 'checkbox', value: a.dhcp },
      { name: 'address', label: 'Address (CIDR)', value: a.address, placeholder: '192.0.2.2/24' },
      { name: 'gateway', label: 'Gateway (WAN)', value: a.gateway },
      { name: 'labels', label: 'Path labels (WAN)', type: 'select', multiple: true, value: a.labels || [], options: labels.map((l) => [l.id, l.name + ' (' + l.type + ')']) },
      { name: 'nat', label: 'Internet breakout with NAT (WAN)', type: 'checkbox', value: a.nat },
      { name: 'public_address', label: 'Public address override (WAN)', value: a.public_address },
      { name: 'public_port', label: 'Public port override (WAN)', type: 'number', value: a.public_port || '' },
      { name: 'dhcp_server', label: 'DHCP server range (LAN): start-end', value: a.dhcp_server ? a.dhcp_server.range_start + '-' + a.dhcp_server.range_end : '', placeholder: '10.1.0.100-10.1.0.200' },
    ], 'Save ' + i.name, async (v) => {
      const body = { role: v.role };
      if (v.role === 'wan') {
        body.dhcp = v.dhcp;
        if (!v.dhcp) { body.address = v.address; if (v.gateway) body.gateway = v.gateway; }
        body.labels = v.labels;
        body.nat = v.nat;
        if (v.public_address) body.public_address = v.public_address;
        if (v.public_port) body.public_port = v.public_port;
      } else if (v.role === 'lan') {
        body.address = v.address;
        if (v.dhcp_server) {
          const [s, e] = v.dhcp_server.split('-').map((x) => x.trim());
          body.dhcp_server = { range_start: s, range_end: e || '' };
        }
      }
      await put(P + '/interfaces/' + enc(i.name), body);
      toast(i.name + ' saved');
      clear(editor);
      labels = await all(O(org) + '/path-labels');
      await draw();
    }, { id: 'if-' + i.name });
    clear(editor, h('h3', null, 'Assign ' + i.name), f);
    f.querySelector('select').focus();
  };
  const drawList = (r, labels) => {
    const labelName = Object.fromEntries(labels.map((l) => [l.id, l.name]));
    clear(listBox, table([
      ['Name', (i) => h('code', null, i.name)],
      ['Role', (i) => (i.assignment && i.assignment.role) || 'unassigned'],
      ['Addresses', (i) => ((i.addresses || []).join(', ') || (i.assignment && i.assignment.address) || '—')],
      ['Link', (i) => i.reported ? (i.link_up ? 'up' : 'down') : 'not reported'],
      ['Status', (i) => h('span', { title: i.reason || '' }, badge(i.status), i.reason ? h('small', { class: 'muted' }, ' ' + i.reason) : null)],
      ['Labels', (i) => ((i.assignment && i.assignment.labels) || []).map((l) => labelName[l] || short(l)).join(', ') || '—'],
      ['Internet', (i) => internetCell(i)],
      ['Endpoint', (i) => i.endpoint || i.endpoint_pending || '—'],
      ['', (i) => action('Assign', async () => edit(i), { class: 'small assign', title: 'Assign ' + i.name })],
    ], r.items || [], { empty: 'The device has reported no interfaces yet.', rowAttrs: (i) => ({ dataset: { iface: i.name } }) }));
  };
  await draw();
  every(10000, draw);
}

// internetCell shows a WAN's last Internet check ("internet" of the
// interface list: reachable, target, rtt_ms, loss_pct, checked_at, since,
// error), absent when the device reports none (checks off, not a WAN,
// an older edge or manage).
function internetCell(i) {
  const n = i.internet;
  if (!n || typeof n !== 'object') {
    const wan = i.assignment && i.assignment.role === 'wan';
    return h('span', { class: 'internet muted', dataset: { internet: 'unknown' } }, wan ? 'not checked' : '—');
  }
  const ok = !!n.reachable;
  const bits = [];
  if (ok && n.target) bits.push('via ' + n.target);
  if (ok && typeof n.rtt_ms === 'number') bits.push(ms(n.rtt_ms));
  if (typeof n.loss_pct === 'number' && n.loss_pct > 0) bits.push(pct(n.loss_pct) + ' loss');
  if (n.since) bits.push((ok ? 'up ' : 'down ') + 'since ' + when(n.since));
  const title = [n.error, n.checked_at ? 'checked ' + when(n.checked_at) : ''].filter(Boolean).join(' — ');
  return h('span', { class: 'internet', title, dataset: { internet: ok ? 'reachable' : 'unreachable' } },
    badge(ok ? 'reachable' : 'unreachable', ok ? 'ok' : 'bad'),
    bits.length ? h('small', { class: 'muted' }, ' ' + bits.join(', ')) : null,
    !ok && n.error ? h('small', { class: 'bad block' }, n.error) : null);
}

async function deviceTunnels(org, P, box) {
  const ts = await all(P + '/tunnels');
  clear(box, tunnelTable(org, ts, null));
}

async function routes(P, box) {
  const rs = await all(P + '/routes');
  const add = form([
    { name: 'destination', label: 'Destination (CIDR)', required: true, placeholder: '10.50.0.0/16' },
    { name: 'gateway', label: 'Gateway', placeholder: 'or a tunnel number below' },
    { name: 'tunnel', label: 'Tunnel number', type: 'number' },
    { name: 'metric', label: 'Metric', type: 'number' },
    { name: 'description', label: 'Description' },
  ], 'Add route', async (v) => {
    const body = { destination: v.destination };
    if (v.gateway) body.gateway = v.gateway;
    if (v.tunnel) body.tunnel = v.tunnel;
    if (v.metric !== undefined) body.metric = v.metric;
    if (v.description) body.description = v.description;
    await post(P + '/routes', body);
    toast('Route added');
    await routes(P, box);
  }, { id: 'route', class: 'inline' });
  const editBox = h('div', { id: 'route-edit' });
  // edit changes a route: every field is sent (an empty gateway and
  // tunnel 0 switch between the two kinds of next hop).
  const edit = (r) => {
    clear(editBox, h('h3', null, 'Change the route to ' + r.destination), form([
      { name: 'destination', label: 'Destination (CIDR)', required: true, value: r.destination },
      { name: 'gateway', label: 'Gateway', value: r.gateway || '' },
      { name: 'tunnel', label: 'Tunnel number', type: 'number', value: r.tunnel || '' },
      { name: 'metric', label: 'Metric', type: 'number', value: r.metric ?? '' },
      { name: 'description', label: 'Description', value: r.description || '' },
    ], 'Save route', async (v) => {
      await patch(P + '/routes/' + enc(r.id), { destination: v.destination, gateway: v.gateway, tunnel: v.tunnel || 0, metric: v.metric || 0, description: v.description });
      toast('Route saved');
      await routes(P, box);
    }, { id: 'routeedit', class: 'inline' }));
    editBox.querySelector('input').focus();
  };
  clear(box, table([
    ['Destination', (r) => h('code', null, r.destination)],
    ['Via', (r) => r.tunnel ? 'tunnel ' + r.tunnel : r.gateway],
    ['Metric', (r) => r.metric],
    ['Description', (r) => r.description || '—'],
    ['', (r) => h('span', { class: 'rowactions' }, action('Change', async () => edit(r), { class: 'small edit' }),
      action('Delete', async () => { await del(P + '/routes/' + enc(r.id)); await routes(P, box); }, { class: 'small danger' }))],
  ], rs, { empty: 'No static routes.', rowAttrs: (r) => ({ dataset: { route: r.destination } }) }), editBox, h('details', null, h('summary', null, 'Add a static route'), add));
}

async function leases(P, box) {
  const r = await get(P + '/dhcp-leases');
  clear(box, table([
    ['Interface', (l) => l.interface], ['Address', (l) => l.address], ['MAC', (l) => h('code', null, l.mac)],
    ['Hostname', (l) => l.hostname || '—'], ['Expires', (l) => l.static ? 'static' : when(l.expires)],
  ], r.items || [], { empty: 'No leases reported.' }), r.reported_at ? h('p', { class: 'muted small' }, 'Reported ' + ago(r.reported_at)) : null);
}

async function stats(P, box, healthBox, ctx, lim) {
  let st;
  try {
    st = await get(P + '/stats');
  } catch (err) {
    if (err.status === 404) {
      clear(healthBox, h('p', { class: 'empty' }, 'The device has not reported its health yet.'));
      return clear(box, h('p', { class: 'empty' }, 'The device has not reported stats yet.'));
    }
    throw err;
  }
  if (ctx && !ctx.alive()) return;
  const s = st.stats || {};
  health(healthBox, s.health, st.at, lim);
  clear(box, h('p', { class: 'muted small' }, 'Reported ' + ago(st.at)),
    table([
      ['Interface', (i) => i.name], ['Link', (i) => i.link_up ? 'up' : 'down'],
      ['Received', (i) => bytes(i.rx_bytes) + ' / ' + num(i.rx_packets) + ' pkts'],
      ['Sent', (i) => bytes(i.tx_bytes) + ' / ' + num(i.tx_packets) + ' pkts'],
    ], s.interfaces || [], { empty: 'No interface counters.' }),
    table([
      ['Tunnel', (t) => t.number], ['State', (t) => badge(t.up ? 'up' : 'down')], ['RTT', (t) => ms(t.rtt_ms)], ['Jitter', (t) => ms(t.jitter_ms)],
      ['Loss', (t) => (t.loss_pct || 0).toFixed(1) + ' %'], ['Traffic', (t) => bytes(t.rx_bytes) + ' in / ' + bytes(t.tx_bytes) + ' out'],
    ], s.tunnels || [], { empty: 'No tunnel counters.' }));
}

// appStats shows the device's traffic per identified application (its
// latest report, busiest first; "" is traffic no application matched).
async function appStats(P, box, ctx) {
  const r = await get(P + '/app-stats');
  if (ctx && !ctx.alive()) return;
  clear(box, table([
    ['Application', (a) => a.id ? a.name || a.id : h('span', { class: 'muted' }, 'unidentified')],
    ['Category', (a) => a.category || '—'], ['Class', (a) => a.service_class || '—'], ['Flows', (a) => num(a.flows)],
    ['Received', (a) => bytes(a.rx_bytes) + ' / ' + num(a.rx_packets) + ' pkts'], ['Sent', (a) => bytes(a.tx_bytes) + ' / ' + num(a.tx_packets) + ' pkts'],
  ], r.items || [], { empty: 'The device has reported no application traffic yet.', rowAttrs: (a) => ({ dataset: { app: a.id } }) }),
  r.reported_at ? h('p', { class: 'muted small' }, 'Reported ' + ago(r.reported_at) + '; counted since the edge started') : null);
}

// health shows the device's latest resource use (the stats report's
// health, absent from edges that do not report it).
// resourceLimits are the organization's device resource thresholds
// ("resources" of GET .../alert-thresholds), or null (no such API).
async function resourceLimits(org) {
  try {
    const th = await get(O(org) + '/alert-thresholds');
    return th && th.resources && typeof th.resources === 'object' ? th.resources : null;
  } catch {
    return null;
  }
}

// resourceLevel is the colour of a use figure: bad at or above the
// critical threshold, warn at or above the warning one (0: that level
// is off); without thresholds, 95 and 85 %.
function resourceLevel(v, l) {
  if (v === null || v === undefined) return '';
  const crit = l ? l.critical : 95, warn = l ? l.warning : 85;
  return crit > 0 && v >= crit ? 'bad' : warn > 0 && v >= warn ? 'warn' : '';
}

function health(box, hl, at, lim) {
  if (!hl || typeof hl !== 'object') return clear(box, h('p', { class: 'empty' }, 'The device reports no health figures (an older edge, or it could not read them).'));
  const n = (v) => (typeof v === 'number' && isFinite(v) ? v : null);
  const limOf = (k) => (lim ? lim[k] || { warning: 0, critical: 0 } : null);
  const p = (v) => (v === null ? '—' : v.toFixed(1) + ' %');
  const cpu = n(hl.cpu_pct), mem = n(hl.mem_used_pct), disk = n(hl.disk_used_pct), load = n(hl.load1), up = n(hl.uptime_seconds);
  clear(box, h('div', { class: 'tiles health' },
    tile('CPU', p(cpu), 'busy, all cores', resourceLevel(cpu, limOf('cpu_pct'))),
    tile('Memory', p(mem), hl.mem_total_bytes ? 'used of ' + bytes(hl.mem_total_bytes) : 'used', resourceLevel(mem, limOf('mem_used_pct'))),
    tile('Disk', p(disk), 'used (state directory)', resourceLevel(disk, limOf('disk_used_pct'))),
    tile('Load', load === null ? '—' : load.toFixed(2), '1-minute average'),
    tile('Uptime', up === null || up === 0 ? '—' : duration(up), 'since the box booted')),
  h('p', { class: 'muted small' }, 'Reported ' + ago(at)));
}

// duration formats seconds as "3 d 4 h", "5 h 12 min", "42 s".
function duration(sec) {
  sec = Math.floor(sec);
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  if (d) return d + ' d ' + hh + ' h';
  if (hh) return hh + ' h ' + m + ' min';
  if (m) return m + ' min';
  return sec + ' s';
}

async function devicePolicies(org, P, box) {
  const [cur, pols, qos, ifs] = await Promise.all([get(P + '/policies'), all(O(org) + '/policies'), get(P + '/qos'), get(P + '/interfaces')]);
  const wans = (ifs.items || []).filter((i) => i.assignment && i.assignment.role === 'wan').map((i) => i.name);
  const bw = Object.fromEntries((qos.wans || []).map((w) => [w.interface, w]));
  const qosForm = wans.length ? form(wans.flatMap((n) => [
    { name: n + '.up', label: n + ' uplink (kbit/s, 0: unlimited)', type: 'number', min: 0, value: (bw[n] || {}).uplink_kbps || 0 },
    { name: n + '.down', label: n + ' downlink (kbit/s)', type: 'number', min: 0, value: (bw[n] || {}).downlink_kbps || 0 },
  ]), 'Save bandwidths', async (v) => {
    await put(P + '/qos', { wans: wans.map((n) => ({ interface: n, uplink_kbps: v[n + '.up'] || 0, downlink_kbps: v[n + '.down'] || 0 })) });
    toast('WAN bandwidths saved');
  }, { id: 'devqos', class: 'inline' }) : h('p', { class: 'muted small' }, 'Assign a WAN to set its bandwidth for QoS.');
  const opts = (kind) => [['', 'none'], ...pols.filter((p) => p.kind === kind).map((p) => [p.id, p.name])];
  clear(box, form([
    { name: 'path_policy_id', label: 'Path selection', type: 'select', value: cur.path_policy_id || '', options: opts('path') },
    { name: 'breakout_policy_id', label: 'Breakout', type: 'select', value: cur.breakout_policy_id || '', options: opts('breakout') },
    { name: 'firewall_policy_id', label: 'Firewall', type: 'select', value: cur.firewall_policy_id || '', options: opts('firewall') },
  ], 'Assign policies', async (v) => {
    await put(P + '/policies', v);
    toast('Policies assigned');
  }, { id: 'devpol', class: 'inline' }), h('h3', null, 'WAN bandwidths (QoS)'), qosForm);
}

const jobKinds = [['ping', 'Ping'], ['traceroute', 'Traceroute'], ['logs', 'Fetch logs'], ['running_config', 'Running configuration'], ['restart', 'Restart agent']];

async function jobs(P, box, ctx) {
  const out = h('div', { id: 'jobs-list' });
  const load = async () => {
    const r = await list(P + '/jobs', { limit: 20 });
    if (!ctx.alive()) return;
    clear(out, table([
      ['Kind', (j) => j.kind], ['State', (j) => badge(j.state)], ['Created', (j) => when(j.created_at)],
      ['Result', (j) => j.error ? h('span', { class: 'bad' }, j.error)
        : j.output ? h('details', null, h('summary', null, 'output'), h('pre', null, j.output)) : '—'],
    ], r.items || [], { empty: 'No jobs yet.' }));
  };
  const run = form([
    { name: 'kind', label: 'Job', type: 'select', value: 'ping', options: jobKinds },
    { name: 'target', label: 'Target (ping, traceroute)', placeholder: '10.100.0.1' },
    { name: 'count', label: 'Count (ping)', type: 'number', min: 1, max: 100 },
  ], 'Run', async (v) => {
    const body = { kind: v.kind };
    if (v.kind === 'ping' || v.kind === 'traceroute') {
      body.args = { target: v.target };
      if (v.kind === 'ping' && v.count) body.args.count = v.count;
    }
    await post(P + '/jobs', body);
    toast('Job queued');
    await load();
  }, { id: 'job', class: 'inline' });
  clear(box, run, out);
  await load();
  every(5000, load);
}

// ------------------------------------------------------------------ tunnels

function tunnelTable(org, ts, byId, actions) {
  const name = (id) => (byId && byId[id] ? devName(byId[id]) : short(id));
  return table([
    ['#', (t) => t.number],
    ['Between', (t) => h('span', null, name(t.device_a), ' ', h('small', { class: 'muted' }, t.interface_a), ' ↔ ', name(t.device_b), ' ', h('small', { class: 'muted' }, t.interface_b))],
    ['Status', (t) => h('span', { class: 'tstatus' }, badge(t.status))],
    ['RTT', (t) => ms(t.rtt_ms)],
    ['Loss', (t) => t.status === 'pending' ? '—' : (t.loss_pct || 0).toFixed(1) + ' %'],
    ['Reason', (t) => t.reason || (t.method ? 'via ' + t.method : '—')],
    ['Overlay', (t) => h('code', null, t.overlay_a + ' / ' + t.overlay_b)],
    ['Keys', (t) => 'gen ' + t.key_generation + (t.rotation_phase ? ' (' + t.rotation_phase + ')' : '')],
    ...(actions ? [['', actions]] : []),
  ], ts, { empty: 'No tunnels.', class: 'tunnels', rowAttrs: (t) => ({ dataset: { number: t.number, status: t.status } }) });
}

export async function tunnels(main, ctx) {
  const { org } = ctx;
  const listBox = h('div', { id: 'tunnel-list' });
  const result = h('div', { id: 'tunnel-result' });
  const [devs, labels] = await Promise.all([all(O(org) + '/devices', { approval: 'approved' }), all(O(org) + '/path-labels', { type: 'tunnel' })]);
  const byId = Object.fromEntries(devs.map((d) => [d.id, d]));
  const load = async () => {
    const ts = await all(O(org) + '/tunnels');
    if (!ctx.alive()) return;
    clear(listBox, tunnelTable(org, ts, byId, (t) => h('span', { class: 'rowactions' },
      action('Rotate keys', async () => { await post(O(org) + '/tunnels/' + enc(t.id) + '/rotate-keys'); toast('Key rotation started'); await load(); }, { class: 'small' }),
      action('Delete', async () => { await del(O(org) + '/tunnels/' + enc(t.id)); toast('Tunnel ' + t.number + ' deleted'); await load(); },
        { class: 'small danger', confirm: 'Delete tunnel ' + t.number + ' from both devices (and the static routes through it)?' }))));
  };
  const devOpts = devs.map((d) => [d.id, devName(d)]);
  const create = form([
    { name: 'topology', label: 'Topology', type: 'select', value: 'mesh', options: [['mesh', 'Full mesh'], ['hub-spoke', 'Hub and spoke'], ['pair', 'Pair']] },
    { name: 'devices', label: 'Devices', type: 'select', multiple: true, options: devOpts, value: devs.map((d) => d.id) },
    { name: 'hubs', label: 'Hubs (hub and spoke)', type: 'select', multiple: true, options: devOpts, value: [] },
    { name: 'labels', label: 'Only these path labels (none: all)', type: 'select', multiple: true, options: labels.map((l) => [l.id, l.name]), value: [] },
    { name: 'transform', label: 'Cipher', type: 'select', value: 'aes128gcm16', options: [['aes128gcm16', 'AES-128-GCM'], ['aes128cbc-sha256', 'AES-128-CBC + HMAC-SHA-256']] },
  ], 'Create tunnels', async (v) => {
    const body = { topology: v.topology, devices: v.devices, transform: v.transform };
    if (v.topology === 'hub-spoke') body.hubs = v.hubs;
    if (v.labels.length) body.labels = v.labels;
    const r = await post(O(org) + '/tunnels', body);
    const c = (r.created || []).length, e = (r.existing || []).length, s = r.skipped || [];
    clear(result, h('div', { class: 'notice', role: 'status' }, `${c} created, ${e} already existed, ${s.length} skipped.`,
      s.length ? h('ul', null, s.map((x) => h('li', null, `${devName(byId[x.device_a]) || short(x.device_a)} ↔ ${devName(byId[x.device_b]) || short(x.device_b)}: ${x.reason}`))) : null));
    await load();
  }, { id: 'tunnel' });
  const charts = h('div', { id: 'tunnel-charts' });
  clear(main, h('h1', null, 'Tunnels'),
    section('Create', devs.length < 2 ? h('p', { class: 'empty' }, 'Approve at least two devices to build tunnels.') : create, result),
    section('All tunnels', listBox),
    section('RTT and loss', charts));
  await load();
  every(5000, load);
  if ((await features()).has(/stats\/history$/)) {
    const draw = async () => {
      const [rtt, loss] = await Promise.all([hist(org, { kind: 'tunnel', metric: 'rtt_ms' }, 'max'), hist(org, { kind: 'tunnel', metric: 'loss_pct' }, 'max')]);
      const per = (r) => Object.entries(r).map(([k, pts], i) => ({ name: 'tunnel ' + k, color: PALETTE[i % PALETTE.length], points: pts }));
      clear(charts, h('div', { class: 'charts' },
        lineChart(per(rtt), { title: 'RTT, last hour (worse end)', fmt: msec, range: rtt.range }),
        lineChart(per(loss), { title: 'Loss, last hour (worse end)', fmt: pct, range: loss.range })));
    };
    await draw().catch((err) => clear(charts, errorBox(err)));
    every(30000, draw);
  } else {
    clear(charts, h('p', { class: 'muted' }, 'This manage keeps no statistics history; the list shows the latest RTT and loss.'));
  }
}
