// Organization-level and account pages: organizations, accounts, users and
// access keys, path labels, applications, policies, notifications, tokens,
// audit, settings, my login.
import { get, post, put, patch, del, api, all, list, features, session } from './api.js';
import { h, clear, table, badge, when, ago, short, form, action, section, kv, toast, errorBox, totpKey } from './dom.js';
import { every } from './timers.js';
import { CLASSES, IMPORTANCE, pathRuleEditor, firewallEditor, appRulesEditor, withJSON, editorForm, labelled } from './policy-forms.js';

const enc = encodeURIComponent;
const O = (org) => '/organizations/' + enc(org);
const A = (acc) => '/accounts/' + enc(acc);

// ------------------------------------------------------------ organizations

export async function orgPicker(main, ctx) {
  const [orgs, accounts] = await Promise.all([all('/organizations'), all('/accounts').catch(() => [])]);
  const accName = Object.fromEntries(accounts.map((a) => [a.id, a.name]));
  const create = form([
    { name: 'account_id', label: 'Account', type: 'select', value: accounts[0] && accounts[0].id, options: accounts.map((a) => [a.id, a.name]) },
    { name: 'name', label: 'Name', required: true },
    { name: 'description', label: 'Description' },
    { name: 'tunnel_range', label: 'Tunnel range', placeholder: '10.100.0.0/16' },
  ], 'Create organization', async (v) => {
    const body = { account_id: v.account_id, name: v.name, description: v.description };
    if (v.tunnel_range) body.tunnel_range = v.tunnel_range;
    const o = await post('/organizations', body);
    toast('Organization ' + o.name + ' created');
    ctx.go('/o/' + enc(o.id) + '/dashboard');
  }, { id: 'org' });
  clear(main, h('h1', null, 'Organizations'),
    orgs.length ? h('ul', { class: 'cards', id: 'org-list' }, orgs.map((o) => h('li', null,
      h('a', { class: 'card link', href: '#/o/' + enc(o.id) + '/dashboard' }, h('strong', null, o.name), h('span', { class: 'muted' }, o.description || ''),
        h('small', { class: 'muted' }, accName[o.account_id] || '')))))
      : h('p', { class: 'empty' }, 'You see no organization yet.'),
    accounts.length ? section('New organization', create) : null);
}

export async function orgSettings(main, ctx) {
  const [o, fw, qos, fwPolicies, feats] = await Promise.all([get(O(ctx.org)), get(O(ctx.org) + '/firewall'), get(O(ctx.org) + '/qos'),
    all(O(ctx.org) + '/policies', { kind: 'firewall' }), features()]);
  const inetBox = h('div', { id: 'internet-check' });
  const hasInternet = feats.has(/^\/organizations\/\{org_id\}\/internet-check$/);
  if (hasInternet) await internetCheck(ctx.org, inetBox).catch((err) => clear(inetBox, errorBox(err)));
  const qosBox = h('div', { id: 'qos-classes' });
  const drawQoS = (q) => clear(qosBox,
    h('p', { class: 'muted small' }, q.default ? 'The default classes are in force.' : 'The organization\'s own classes are in force.'),
    table([['Class', (c) => c.class], ['Weight', (c) => c.weight ?? '—'], ['Cap', (c) => c.cap_pct ? c.cap_pct + ' %' : '—'], ['DSCP', (c) => c.dscp]], q.classes || []),
    h('details', null, h('summary', null, 'Change the classes'), qosForm(q)));
  // qosForm: per class its weight (real-time: its cap) and DSCP rewrite;
  // the errors of classes[i].x land under that input.
  const qosForm = (q) => {
    const cls = q.classes || [];
    const f = form(cls.flatMap((c, i) => [
      c.class === 'real-time'
        ? { name: 'classes[' + i + '].cap_pct', label: c.class + ': cap (% of the WAN)', type: 'number', min: 1, max: 90, value: c.cap_pct }
        : { name: 'classes[' + i + '].weight', label: c.class + ': weight', type: 'number', min: 1, max: 1000, value: c.weight },
      { name: 'classes[' + i + '].dscp', label: c.class + ': DSCP (-1 keeps)', type: 'number', min: -1, max: 63, value: c.dscp },
    ]), 'Save classes', async (v) => {
      const body = cls.map((c, i) => {
        const o = { class: c.class, dscp: v['classes[' + i + '].dscp'] ?? 0 };
        if (c.class === 'real-time') o.cap_pct = v['classes[' + i + '].cap_pct'] ?? 0;
        else o.weight = v['classes[' + i + '].weight'] ?? 0;
        return o;
      });
      drawQoS(await put(O(ctx.org) + '/qos', { classes: body }));
      toast('QoS classes saved');
    }, { id: 'qos', class: 'inline', extra: q.default ? null : action('Restore the defaults', async () => {
      drawQoS(await put(O(ctx.org) + '/qos', { classes: [] }));
      toast('Default QoS classes restored');
    }, { class: 'small' }) });
    return f;
  };
  drawQoS(qos);
  clear(main, h('h1', null, 'Settings of ' + o.name),
    section('Organization', kv([['ID', h('code', null, o.id)], ['Account', h('code', null, o.account_id)], ['Group', h('code', null, o.group_id)], ['Created', when(o.created_at)]]),
      form([
        { name: 'name', label: 'Name', value: o.name, required: true },
        { name: 'description', label: 'Description', value: o.description },
        { name: 'tunnel_range', label: 'Tunnel range', value: o.tunnel_range },
        { name: 'vxlan_port', label: 'VxLAN port', type: 'number', value: o.vxlan_port },
      ], 'Save', async (v) => {
        const body = {};
        for (const k of ['name', 'description', 'tunnel_range', 'vxlan_port']) if (v[k] !== o[k] && v[k] !== undefined) body[k] = v[k];
        await patch(O(ctx.org), body);
        toast('Saved');
      }, { id: 'orgset' })),
    section('Organization-wide firewall', form([
      { name: 'policy_id', label: 'Firewall policy applied to every device (before its own)', type: 'select', value: fw.policy_id || '',
        options: [['', 'none'], ...fwPolicies.map((p) => [p.id, p.name])] },
    ], 'Save', async (v) => {
      await put(O(ctx.org) + '/firewall', v);
      toast('Saved');
    }, { id: 'orgfw' })),
    section('QoS classes', qosBox),
    hasInternet ? section('Internet check of the WANs', inetBox) : null,
    section('Danger zone', action('Delete organization', async () => {
      await del(O(ctx.org));
      toast('Deleted');
      ctx.go('/orgs');
    }, { class: 'danger', confirm: 'Delete ' + o.name + ' with all its devices, tunnels and policies?' })));
}

// internetCheck shows and edits the organization's per-WAN Internet
// check (GET/PUT/DELETE /organizations/{org}/internet-check): the
// settings in force, the server's defaults, whether they are the
// organization's own.
async function internetCheck(org, box) {
  const v = await get(O(org) + '/internet-check');
  const cur = v.settings || {}, def = v.defaults || {};
  const targets = (x) => ((x && x.targets) || []).join(', ') || 'none (checks off)';
  clear(box,
    h('p', { class: 'muted small' }, 'Every WAN of the devices pings these IPv4 targets in turn, one each interval; after the given number of failed rounds in a row the WAN counts as cut off from the Internet (the interface list shows it, and a wan_internet_unreachable alert follows). No targets: no checks.'),
    kv([
      ['In force', h('span', { id: 'internet-check-source' }, v.custom ? 'the organization\'s own settings' : 'the server\'s defaults')],
      ['Defaults', `${targets(def)}; every ${def.interval_s ?? '?'} s, timeout ${def.timeout_ms ?? '?'} ms, ${def.fail_rounds ?? '?'} failed rounds`],
    ]),
    form([
      { name: 'targets', label: 'Targets (IPv4, at most 4; empty: no checks)', value: (cur.targets || []).join(', '), placeholder: '1.1.1.1, 8.8.8.8' },
      { name: 'interval_s', label: 'Interval (s)', type: 'number', min: 1, max: 300, value: cur.interval_s },
      { name: 'timeout_ms', label: 'Timeout (ms)', type: 'number', min: 100, max: 10000, value: cur.timeout_ms },
      { name: 'fail_rounds', label: 'Failed rounds before cut off', type: 'number', min: 1, max: 20, value: cur.fail_rounds },
    ], 'Save Internet check', async (f) => {
      const body = { targets: f.targets.split(/[\s,]+/).filter(Boolean) };
      for (const k of ['interval_s', 'timeout_ms', 'fail_rounds']) if (f[k] !== undefined) body[k] = f[k];
      await put(O(org) + '/internet-check', body);
      toast('Internet check saved');
      await internetCheck(org, box);
    }, { id: 'inet', class: 'inline', extra: v.custom ? action('Back to the defaults', async () => {
      await del(O(org) + '/internet-check');
      toast('The server\'s defaults apply');
      await internetCheck(org, box);
    }, { class: 'small', title: 'Remove the organization\'s own settings' }) : null }));
}

// ----------------------------------------------------------------- accounts

export async function accounts(main, ctx) {
  const accs = await all('/accounts');
  const rows = await Promise.all(accs.map(async (a) => ({ ...a, groups: await all(A(a.id) + '/groups').catch(() => []) })));
  const again = () => ctx.go('/accounts');
  const editBox = h('div', { id: 'account-edit' });
  // edit shows one small form (rename a group, change an account) below
  // the tables.
  const edit = (title, fields, label, fn) => {
    clear(editBox, section(title, form(fields, label, async (v) => { await fn(v); again(); }, { id: 'accedit', class: 'inline' })));
    editBox.querySelector('input').focus();
  };
  const groups = rows.flatMap((a) => a.groups.map((g) => ({ ...g, account: a })));
  clear(main, h('h1', null, 'Accounts'),
    table([
      ['Name', (a) => a.name],
      ['Groups', (a) => a.groups.map((g) => g.name).join(', ') || '—'],
      ['Force TOTP', (a) => h('label', null, checkbox(a.force_totp, async (on) => { await patch(A(a.id), { force_totp: on }); toast('Saved'); }), on(a.force_totp))],
      ['Device limit', (a) => a.device_limit || 'unlimited'],
      ['Created', (a) => when(a.created_at)],
      ['', (a) => h('span', { class: 'rowactions' },
        action('Change', async () => edit('Change ' + a.name, [
          { name: 'name', label: 'Name', required: true, value: a.name },
          { name: 'device_limit', label: 'Device limit (0: none)', type: 'number', min: 0, value: a.device_limit || 0 },
        ], 'Save account', async (v) => { await patch(A(a.id), { name: v.name, device_limit: v.device_limit || 0 }); toast('Account saved'); }), { class: 'small' }),
        action('Delete', async () => { await del(A(a.id)); toast('Account ' + a.name + ' deleted'); again(); },
          { class: 'small danger', confirm: 'Delete account ' + a.name + ' with all its organizations, devices and users\' memberships?' }))],
    ], rows, { rowAttrs: (a) => ({ dataset: { account: a.name } }) }),
    section('Groups', table([
      ['Account', (g) => g.account.name], ['Group', (g) => g.name], ['Created', (g) => when(g.created_at)],
      ['', (g) => h('span', { class: 'rowactions' },
        action('Rename', async () => edit('Rename group ' + g.name, [{ name: 'name', label: 'Name', required: true, value: g.name }], 'Rename group',
          async (v) => { await patch(A(g.account.id) + '/groups/' + enc(g.id), { name: v.name }); toast('Group renamed'); }), { class: 'small rename' }),
        action('Delete', async () => { await del(A(g.account.id) + '/groups/' + enc(g.id)); toast('Group ' + g.name + ' deleted'); again(); },
          { class: 'small danger', confirm: 'Delete group ' + g.name + '? (only an empty group can be deleted)' }))],
    ], groups, { empty: 'No groups.', rowAttrs: (g) => ({ dataset: { group: g.name } }) })),
    editBox,
    section('New account', form([
      { name: 'name', label: 'Name', required: true },
      { name: 'force_totp', label: 'Require TOTP for all members', type: 'checkbox' },
      { name: 'device_limit', label: 'Device limit (0: none)', type: 'number' },
    ], 'Create account', async (v) => {
      await post('/accounts', { name: v.name, force_totp: v.force_totp, device_limit: v.device_limit || 0 });
      toast('Account created');
      ctx.go('/accounts');
    }, { id: 'acc' })),
    section('New group', rows.length ? form([
      { name: 'account', label: 'Account', type: 'select', value: rows[0].id, options: rows.map((a) => [a.id, a.name]) },
      { name: 'name', label: 'Name', required: true },
    ], 'Create group', async (v) => {
      await post(A(v.account) + '/groups', { name: v.name });
      toast('Group created');
      ctx.go('/accounts');
    }, { id: 'grp' }) : null));
}

function on(b) {
  return b ? ' on' : ' off';
}

function checkbox(value, fn) {
  const c = h('input', { type: 'checkbox', checked: value });
  c.addEventListener('change', async () => {
    try {
      await fn(c.checked);
    } catch (err) {
      c.checked = !c.checked;
      toast(err.message, 'bad');
    }
  });
  return c;
}

// ------------------------------------------------------- users, access keys

export async function access(main, ctx) {
  const accs = await all('/accounts');
  if (!accs.length) return clear(main, h('h1', null, 'Users & keys'), h('p', { class: 'empty' }, 'You belong to no account.'));
  const pick = h('select', { id: 'access-account', 'aria-label': 'Account' }, accs.map((a) => h('option', { value: a.id }, a.name)));
  const body = h('div');
  const load = async () => {
    const acc = pick.value;
    const orgs = await all('/organizations', { account_id: acc });
    const scopes = [['account', 'Account']];
    const scopeIDs = [[acc, 'this account'], ...orgs.map((o) => [o.id, 'organization ' + o.name])];
    const [members, invites, keys] = await Promise.all([
      all(A(acc) + '/members'), all(A(acc) + '/invitations').catch(() => []), all(A(acc) + '/access-keys', { revoked: 'false' }).catch(() => all(A(acc) + '/access-keys'))]);
    const scopeName = (k, id) => k === 'account' ? 'account' : 'org ' + ((orgs.find((o) => o.id === id) || {}).name || short(id));
    const scopeFields = [
      { name: 'scope_id', label: 'Scope', type: 'select', value: acc, options: scopeIDs },
      { name: 'role', label: 'Role', type: 'select', value: 'viewer', options: [['viewer', 'viewer'], ['manager', 'manager'], ['owner', 'owner']] },
    ];
    const scopeOf = (id) => (id === acc ? 'account' : 'organization');
    const shown = h('div', { id: 'key-shown' });
    clear(body,
      section('Members', table([
        ['User', (m) => h('span', null, m.user_name || '', ' ', h('small', { class: 'muted' }, m.user_email || short(m.user_id)))],
        ['Role', (m) => m.role], ['Scope', (m) => scopeName(m.scope, m.scope_id)], ['Since', (m) => when(m.created_at)],
        ['', (m) => action('Remove', async () => { await del(A(acc) + '/members/' + enc(m.id)); toast('Removed'); await load(); }, { class: 'small danger', confirm: 'Remove this membership?' })],
      ], members),
      h('details', null, h('summary', null, 'Grant an existing user a role'), form([
        { name: 'email', label: 'Email', type: 'email', required: true }, ...scopeFields,
      ], 'Grant', async (v) => {
        await post(A(acc) + '/members', { email: v.email, scope: scopeOf(v.scope_id), scope_id: v.scope_id, role: v.role });
        toast('Granted');
        await load();
      }, { id: 'member' }))),
      section('Invitations', table([
        ['Email', (i) => i.email], ['Role', (i) => i.role], ['Scope', (i) => scopeName(i.scope, i.scope_id)],
        ['Expires', (i) => when(i.expires_at)], ['Accepted', (i) => when(i.accepted_at)],
        ['', (i) => i.accepted_at ? '' : action('Withdraw', async () => { await del(A(acc) + '/invitations/' + enc(i.id)); await load(); }, { class: 'small danger' })],
      ], invites, { empty: 'No invitations.' }),
      h('details', null, h('summary', null, 'Invite someone'), form([
        { name: 'email', label: 'Email', type: 'email', required: true }, ...scopeFields,
      ], 'Invite', async (v, status) => {
        const r = await post(A(acc) + '/invitations', { email: v.email, scope: scopeOf(v.scope_id), scope_id: v.scope_id, role: v.role });
        const link = location.origin + '/#/accept?token=' + encodeURIComponent(r.token);
        clear(status, h('div', { class: 'notice', id: 'invite-shown' }, 'Send this link to ' + v.email + ' (shown once; valid 7 days): ',
          h('code', { class: 'secret wrap', id: 'invite-link' }, link)));
      }, { id: 'invite' }))),
      section('Access keys', table([
        ['Name', (k) => k.name], ['Prefix', (k) => h('code', null, k.prefix)], ['Role', (k) => k.role], ['Scope', (k) => scopeName(k.scope, k.scope_id)],
        ['Last used', (k) => ago(k.last_used_at)], ['Expires', (k) => k.expires_at ? when(k.expires_at) : 'never'],
        ['', (k) => k.revoked_at ? 'revoked' : action('Revoke', async () => { await del(A(acc) + '/access-keys/' + enc(k.id)); toast('Revoked'); await load(); }, { class: 'small danger', confirm: 'Revoke key ' + k.name + '?' })],
      ], keys, { empty: 'No access keys.' }), shown,
      h('details', null, h('summary', null, 'Create an access key'), form([
        { name: 'name', label: 'Name', required: true }, ...scopeFields,
        { name: 'expires_at', label: 'Expires (optional)', type: 'date' },
      ], 'Create key', async (v) => {
        const body = { name: v.name, scope: scopeOf(v.scope_id), scope_id: v.scope_id, role: v.role };
        if (v.expires_at) body.expires_at = new Date(v.expires_at + 'T23:59:59Z').toISOString();
        const r = await post(A(acc) + '/access-keys', body);
        await load();
        const box = body && document.getElementById('key-shown');
        if (box) clear(box, h('div', { class: 'notice' }, 'Your new key (shown once; use it as a Bearer token or with trellisctl): ', h('code', { class: 'secret' }, r.key)));
      }, { id: 'key' }))),
      section('Audit log of the account', h('p', null, 'Each organization has its own audit log (Audit in its menu); this one covers the whole account. ',
        action('Show account audit', async () => showAudit(A(acc) + '/audit', auditBox), { class: 'small' })), auditBox));
  };
  const auditBox = h('div');
  pick.addEventListener('change', () => load().catch((e) => clear(body, errorBox(e))));
  clear(main, h('div', { class: 'head' }, h('h1', null, 'Users & keys'), pick), body);
  await load();
}

// --------------------------------------------------------------------- me

export async function me(main, ctx) {
  const m = await get('/auth/me');
  const totp = h('div');
  const drawTotp = () => {
    if (m.user.totp_enabled) {
      clear(totp, h('p', null, 'Two-factor login is on.'), form([{ name: 'code', label: 'Current code', required: true, inputmode: 'numeric' }], 'Turn off TOTP', async (v) => {
        await post('/auth/totp/disable', { code: v.code });
        m.user.totp_enabled = false;
        toast('TOTP disabled');
        drawTotp();
      }, { id: 'totpoff' }));
      return;
    }
    clear(totp, h('p', null, 'Two-factor login is off.'), action('Set up TOTP', async () => {
      const e = await post('/auth/totp/enroll');
      clear(totp, h('p', null, 'Add this key to your authenticator app, then enter its code:'), totpKey(e),
        form([{ name: 'code', label: 'Code', required: true, inputmode: 'numeric' }], 'Activate', async (v) => {
          const r = await post('/auth/totp/activate', { code: v.code });
          m.user.totp_enabled = true;
          clear(totp, h('p', null, 'TOTP is on. Recovery codes (shown once):'), h('ol', { class: 'codes' }, r.recovery_codes.map((c) => h('li', null, h('code', null, c)))));
        }, { id: 'totpon' }));
    }, { class: 'primary' }));
  };
  drawTotp();
  clear(main, h('h1', null, m.user.name || m.user.email),
    section('Me', kv([['Email', m.user.email], ['Last login', when(m.user.last_login_at)], ['Authenticated by', m.auth.type]]),
      table([['Role', (x) => x.role], ['Scope', (x) => x.scope], ['Scope id', (x) => h('code', null, short(x.scope_id))]], m.memberships || [])),
    section('Two-factor login', totp),
    (await features()).has(/^\/notifications\/preferences$/) ? section('Notifications I receive', await prefs()) : null,
    section('Password', form([
      { name: 'current_password', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' },
      { name: 'new_password', label: 'New password', type: 'password', required: true, autocomplete: 'new-password' },
    ], 'Change password', async (v) => {
      await post('/auth/password', v);
      toast('Password changed; other sessions ended');
    }, { id: 'pw' })));
}

// alertTypes is the field choosing alert types: checkboxes from GET
// /alert-types (each described on hover) when this manage has it, else a
// comma-separated list. Nothing chosen means every type.
async function alertTypesField(value) {
  const f = await features();
  if (f.has(/^\/alert-types$/)) {
    try {
      const r = await get('/alert-types');
      const known = (r.items || []).map((t) => [t.type, t.type.replace(/_/g, ' '), t.description || '']);
      for (const v of value || []) if (!known.some((k) => k[0] === v)) known.push([v, v, '']);
      return { name: 'types', label: 'Alert types (none checked: all)', type: 'checkboxes', value: value || [], options: known };
    } catch {
      /* fall back to the list */
    }
  }
  return { name: 'types', label: 'Alert types (comma-separated; empty: all)', value: (value || []).join(', '), placeholder: 'tunnel_down, device_disconnected' };
}

// typesOf reads the alert types field (a list, or comma-separated text).
function typesOf(v) {
  return Array.isArray(v) ? v : v ? v.split(',').map((x) => x.trim()).filter(Boolean) : [];
}

async function prefs() {
  const p = await get('/notifications/preferences');
  return form([
    { name: 'min_severity', label: 'From severity', type: 'select', value: p.min_severity, options: [['warning', 'warning'], ['critical', 'critical']] },
    await alertTypesField(p.types),
    { name: 'in_app', label: 'In the notifications list', type: 'checkbox', value: p.in_app },
    { name: 'email_digest', label: 'A daily e-mail of the unread ones', type: 'checkbox', value: p.email_digest },
    { name: 'email_critical', label: 'An e-mail at once for each critical alert', type: 'checkbox', value: p.email_critical },
  ], 'Save preferences', async (v) => {
    await put('/notifications/preferences', { ...v, types: typesOf(v.types) });
    toast('Preferences saved');
  }, { id: 'prefs' });
}

// accept: someone invited by e-mail accepts with the token they were sent
// (a new user gives a name and a password; an existing user logs in first
// and accepts from here with the session).
export async function accept(main, ctx) {
  const s = session();
  const token = new URLSearchParams(location.hash.split('?')[1] || '').get('token') || '';
  const fields = [{ name: 'token', label: 'Invitation token', required: true, value: token }];
  if (!s || !s.token || s.partial) {
    fields.push({ name: 'name', label: 'Your name', required: true, autocomplete: 'name' },
      { name: 'password', label: 'Choose a password', type: 'password', required: true, autocomplete: 'new-password' });
  }
  clear(main, h('div', { class: 'login card' }, h('h1', null, 'Accept an invitation'),
    s && s.token && !s.partial ? h('p', null, 'You accept as ' + s.email + '.') : h('p', { class: 'muted' }, 'Already have a login? Log in first, then open this page again.'),
    form(fields, 'Accept', async (v) => {
      const r = await api('POST', '/invitations/accept', v, { no401: true });
      toast('Invitation accepted: ' + r.role + ' of ' + r.scope);
      ctx.go(s && s.token && !s.partial ? '/orgs' : '/login');
    }, { id: 'accept' })));
}

// -------------------------------------------------------------- path labels

export async function labels(main, ctx) {
  const { org } = ctx;
  const box = h('div');
  const editBox = h('div', { id: 'label-edit' });
  // edit changes a label's name, type, colour or description (a type
  // that rules or tunnels rely on is refused by the API, with the reason).
  const edit = (l) => {
    clear(editBox, section('Edit ' + l.name, form([
      { name: 'name', label: 'Name', required: true, value: l.name },
      { name: 'type', label: 'Type', type: 'select', value: l.type, options: [['tunnel', 'tunnel (selects tunnels)'], ['dia', 'dia (Internet breakout)']] },
      { name: 'color', label: 'Colour', type: 'color', value: /^#[0-9a-f]{6}$/i.test(l.color || '') ? l.color : '#808080' },
      { name: 'description', label: 'Description', value: l.description || '' },
    ], 'Save ' + l.name, async (v) => {
      const body = {};
      for (const k of ['name', 'type', 'color', 'description']) if (v[k] !== (l[k] || '')) body[k] = v[k];
      await patch(O(org) + '/path-labels/' + enc(l.id), body);
      toast('Label saved');
      clear(editBox);
      await load();
    }, { id: 'labeledit', class: 'inline' })));
    editBox.querySelector('input').focus();
  };
  const load = async () => {
    const ls = await all(O(org) + '/path-labels');
    clear(box, table([
      ['Name', (l) => h('span', null, swatch(l.color), ' ', l.name)], ['Type', (l) => l.type], ['Description', (l) => l.description || '—'],
      ['', (l) => h('span', { class: 'rowactions' }, action('Edit', async () => edit(l), { class: 'small edit' }),
        action('Delete', async () => { await del(O(org) + '/path-labels/' + enc(l.id)); toast('Deleted'); await load(); }, { class: 'small danger', confirm: 'Delete label ' + l.name + '?' }))],
    ], ls, { empty: 'No path labels. Labels name underlays (MPLS, Broadband, LTE): tunnels join WANs that share one.', rowAttrs: (l) => ({ dataset: { label: l.name } }) }));
  };
  clear(main, h('h1', null, 'Path labels'), box, editBox, section('New label', form([
    { name: 'name', label: 'Name', required: true, placeholder: 'Broadband' },
    { name: 'type', label: 'Type', type: 'select', value: 'tunnel', options: [['tunnel', 'tunnel (selects tunnels)'], ['dia', 'dia (Internet breakout)']] },
    { name: 'color', label: 'Colour', type: 'color', value: '#808080' },
    { name: 'description', label: 'Description' },
  ], 'Create label', async (v) => {
    await post(O(org) + '/path-labels', v);
    toast('Label created');
    await load();
  }, { id: 'label' })));
  await load();
}

function swatch(color) {
  const i = h('i', { class: 'swatch' });
  if (/^#[0-9a-f]{6}$/i.test(color || '')) i.style.background = color;
  return i;
}

// ------------------------------------------------------------- applications

export async function applications(main, ctx) {
  const { org } = ctx;
  const q = h('input', { type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter by name' });
  const src = h('select', { 'aria-label': 'Source' }, [['', 'All'], ['builtin', 'Catalogue'], ['custom', 'Own']].map(([v, l]) => h('option', { value: v }, l)));
  const box = h('div');
  const editBox = h('div', { id: 'app-edit' });
  const load = async () => {
    const r = await list(O(org) + '/applications', { name: q.value, source: src.value, limit: 200 });
    clear(box, table([
      ['Name', (a) => a.name], ['Category', (a) => a.category], ['Class', (a) => a.service_class], ['Importance', (a) => a.importance],
      ['Source', (a) => a.source + (a.override ? ' (overridden)' : '')],
      ['Rules', (a) => h('span', { title: (a.rules || []).map(ruleText).join('\n') }, (a.rules || []).map(ruleText).join('; ') || '—')],
      ['', (a) => a.source === 'custom' ? h('span', { class: 'rowactions' },
        action('Edit', async () => editApp(a), { class: 'small' }),
        action('Delete', async () => { await del(O(org) + '/applications/' + enc(a.id)); await load(); }, { class: 'small danger', confirm: 'Delete ' + a.name + '?' }))
        : h('span', { class: 'rowactions' },
          action('Override', async () => overrideApp(a), { class: 'small override', title: 'Change the category, class or importance of ' + a.name + ' for this organization' }),
          a.override ? action('Remove override', async () => { await del(O(org) + '/applications/' + enc(a.id) + '/override'); toast('Override of ' + a.name + ' removed'); await load(); }, { class: 'small' }) : null)],
    ], r.items || [], { rowAttrs: (a) => ({ dataset: { app: a.id } }) }), h('p', { class: 'muted small' }, `${(r.items || []).length} of ${r.total}`));
  };
  // appForm: name, category, class, importance, description and rules;
  // submit gets the body as the API takes it.
  const appForm = (a, label, id, submit) => {
    const name = h('input', { type: 'text', id: 'f-' + id + '-name', value: a.name || '', required: true, autocomplete: 'off' });
    const category = h('input', { type: 'text', id: 'f-' + id + '-category', value: a.category || '', placeholder: 'business', autocomplete: 'off' });
    const cls = h('select', { id: 'f-' + id + '-service_class' }, [['', 'standard (default)'], ...CLASSES.map((c) => [c, c])].map(([v, l]) => h('option', { value: v, selected: v === (a.service_class || '') }, l)));
    const imp = h('select', { id: 'f-' + id + '-importance' }, [['', 'medium (default)'], ...IMPORTANCE.map((c) => [c, c])].map(([v, l]) => h('option', { value: v, selected: v === (a.importance || '') }, l)));
    const desc = h('input', { type: 'text', id: 'f-' + id + '-description', value: a.description || '', autocomplete: 'off' });
    const rules = withJSON(appRulesEditor, a.rules, 'rules');
    return editorForm([
      h('div', { class: 'grid' }, labelled('Name', name, 'name'), labelled('Category', category, 'category'),
        labelled('Service class', cls, 'service_class'), labelled('Importance', imp, 'importance'), labelled('Description', desc, 'description')),
      h('h3', null, 'Rules (a flow is the application when one rule matches its server side)'), rules,
    ], label, async () => {
      const body = { name: name.value.trim(), category: category.value.trim(), description: desc.value.trim(), rules: rules.get() };
      if (cls.value) body.service_class = cls.value;
      if (imp.value) body.importance = imp.value;
      await submit(body);
    }, { id });
  };
  const editApp = (a) => {
    clear(editBox, section('Edit ' + a.name, appForm(a, 'Save ' + a.name, 'appedit', async (body) => {
      await patch(O(org) + '/applications/' + enc(a.id), body);
      toast(a.name + ' saved');
      clear(editBox);
      await load();
    })));
    editBox.scrollIntoView({ block: 'start' });
  };
  // overrideApp changes a built-in application's category, class or
  // importance for this organization (empty: the catalogue's).
  const overrideApp = (a) => {
    const ov = a.override || {};
    clear(editBox, section('Override ' + a.name, h('p', { class: 'muted small' }, 'Empty fields keep the catalogue\'s value.'), form([
      { name: 'category', label: 'Category', value: ov.category || '', placeholder: a.category },
      { name: 'service_class', label: 'Service class', type: 'select', value: ov.service_class || '', options: [['', 'the catalogue\'s'], ...CLASSES.map((c) => [c, c])] },
      { name: 'importance', label: 'Importance', type: 'select', value: ov.importance || '', options: [['', 'the catalogue\'s'], ...IMPORTANCE.map((c) => [c, c])] },
    ], 'Save override', async (v) => {
      await put(O(org) + '/applications/' + enc(a.id) + '/override', v);
      toast('Override of ' + a.name + ' saved');
      clear(editBox);
      await load();
    }, { id: 'override', class: 'inline' })));
    editBox.scrollIntoView({ block: 'start' });
  };
  q.addEventListener('input', () => load().catch((e) => toast(e.message, 'bad')));
  src.addEventListener('change', () => load().catch((e) => toast(e.message, 'bad')));
  const cat = await get('/applications/catalog').catch(() => null);
  // Loading a catalogue is for owners of the operator account; others
  // see the API's refusal.
  const reload = h('details', null, h('summary', null, 'Load the catalogue'), h('p', { class: 'muted small' },
    'Owners of the operator account load a maintained catalogue from an http(s) URL (empty: manage\'s --app-catalog source). Every organization is recompiled.'),
  form([{ name: 'source', label: 'Catalogue URL', type: 'url', placeholder: 'the catalogue JSON over HTTPS' }], 'Load catalogue', async (v) => {
    const r = await post('/applications/catalog/reload', v.source ? { source: v.source } : {});
    toast(`Catalogue ${r.version} loaded: ${r.applications} applications`);
    ctx.go('/o/' + enc(org) + '/applications');
  }, { id: 'catalog', class: 'inline' }));
  clear(main, h('div', { class: 'head' }, h('h1', null, 'Applications'), q, src),
    cat ? h('p', { class: 'muted small', id: 'catalog-info' }, `Catalogue ${cat.version} (${cat.source}), loaded ${when(cat.loaded_at)}`) : null, reload, box, editBox,
    section('New application', appForm({}, 'Add application', 'app', async (body) => {
      await post(O(org) + '/applications', body);
      toast('Application added');
      ctx.go('/o/' + enc(org) + '/applications');
    })));
  await load();
}

// ruleText is an application rule in a few words ("tcp 443 to 198.51.100.0/24").
function ruleText(r) {
  return [r.protocol, (r.ports || []).join(','), (r.prefixes || []).length ? 'to ' + r.prefixes.join(', ') : ''].filter(Boolean).join(' ') || 'any';
}

// ----------------------------------------------------------------- policies

// policyRefs loads what rule forms choose from: applications, their
// categories, path labels.
async function policyRefs(org) {
  const [apps, labels] = await Promise.all([all(O(org) + '/applications'), all(O(org) + '/path-labels')]);
  return {
    apps: apps.map((a) => [a.id, a.name]).sort((x, y) => x[1].localeCompare(y[1])),
    categories: [...new Set(apps.map((a) => a.category).filter(Boolean))].sort(),
    labels: labels.map((l) => ({ id: l.id, name: l.name, type: l.type })),
  };
}

// policyEditor is the rules (path, breakout) or firewall editor of kind.
function policyEditor(kind, p, refs) {
  return kind === 'firewall'
    ? withJSON((v) => firewallEditor(v, refs), p.firewall, 'firewall')
    : withJSON((v) => pathRuleEditor(kind, v, refs), p.rules, 'rules');
}

export async function policies(main, ctx) {
  const { org } = ctx;
  const [ps, refs] = await Promise.all([all(O(org) + '/policies'), policyRefs(org)]);
  const kind = h('select', { id: 'f-pol-kind' }, [['path', 'path selection'], ['breakout', 'breakout'], ['firewall', 'firewall']].map(([v, l]) => h('option', { value: v }, l)));
  const name = h('input', { type: 'text', id: 'f-pol-name', required: true, autocomplete: 'off' });
  const desc = h('input', { type: 'text', id: 'f-pol-description', autocomplete: 'off' });
  const holder = h('div', { id: 'pol-rules' });
  let ed;
  const mk = () => { ed = policyEditor(kind.value, {}, refs); clear(holder, ed); };
  kind.addEventListener('change', mk);
  mk();
  clear(main, h('h1', null, 'Policies'),
    table([
      ['Name', (p) => h('a', { href: '#/o/' + enc(org) + '/policies/' + enc(p.id) }, p.name)], ['Kind', (p) => p.kind],
      ['Rules', (p) => p.kind === 'firewall' ? fwCount(p.firewall) : (p.rules || []).length],
      ['Devices', (p) => (p.devices || []).length + (p.organization_wide ? ' + organization-wide' : '')],
      ['Warnings', (p) => (p.warnings || []).length ? h('span', { class: 'warn' }, (p.warnings || []).length) : '—'],
    ], ps, { empty: 'No policies.' }),
    section('New policy', editorForm([
      h('div', { class: 'grid' }, labelled('Kind', kind, 'kind'), labelled('Name', name, 'name'), labelled('Description', desc, 'description')),
      h('h3', null, 'Rules'), holder,
    ], 'Create policy', async () => {
      const body = { kind: kind.value, name: name.value.trim(), description: desc.value.trim() };
      if (kind.value === 'firewall') body.firewall = ed.get();
      else body.rules = ed.get();
      const p = await post(O(org) + '/policies', body);
      toast('Policy created' + ((p.warnings || []).length ? ' with warnings' : ''));
      ctx.go('/o/' + enc(org) + '/policies/' + enc(p.id));
    }, { id: 'pol-form' })));
}

function fwCount(f) {
  f = f || {};
  return ['outbound', 'lan_to_lan', 'inbound', 'port_forwards', 'one_to_one'].reduce((n, k) => n + ((f[k] || []).length), 0);
}

export async function policyDetail(main, ctx) {
  const { org, id } = ctx;
  const P = O(org) + '/policies/' + enc(id);
  const [p, devs, refs] = await Promise.all([get(P), all(O(org) + '/devices', { approval: 'approved' }), policyRefs(org)]);
  const assigned = new Set(p.devices || []);
  const field = p.kind + '_policy_id';
  const again = () => ctx.go('/o/' + enc(org) + '/policies/' + enc(id));
  const name = h('input', { type: 'text', id: 'f-poled-name', value: p.name, required: true, autocomplete: 'off' });
  const desc = h('input', { type: 'text', id: 'f-poled-description', value: p.description || '', autocomplete: 'off' });
  const ed = policyEditor(p.kind, p, refs);
  clear(main, h('div', { class: 'head' }, h('h1', null, p.name), badge(p.kind),
    action('Delete policy', async () => { await del(P); toast('Deleted'); ctx.go('/o/' + enc(org) + '/policies'); }, { class: 'danger', confirm: 'Delete policy ' + p.name + '?' })),
  p.description ? h('p', null, p.description) : null,
  (p.warnings || []).length ? h('div', { class: 'notice warn', id: 'policy-warnings' }, h('strong', null, 'Warnings'), h('ul', null, p.warnings.map((w) => h('li', null, w)))) : null,
  section(p.kind === 'firewall' ? 'Firewall' : 'Rules (evaluated top to bottom; the first match decides)', editorForm([
    h('div', { class: 'grid' }, labelled('Name', name, 'name'), labelled('Description', desc, 'description')), ed,
  ], 'Save policy', async () => {
    const body = { name: name.value.trim(), description: desc.value.trim() };
    if (p.kind === 'firewall') body.firewall = ed.get();
    else body.rules = ed.get();
    const r = await patch(P, body);
    toast('Policy saved' + ((r.warnings || []).length ? ' with warnings' : ''));
    again();
  }, { id: 'poled' })),
  section('Assigned devices', table([
    ['Device', (d) => d.name || d.hostname], ['Assigned', (d) => assigned.has(d.id) ? 'yes' : 'no'],
    ['', (d) => action(assigned.has(d.id) ? 'Unassign' : 'Assign', async () => {
      const cur = await get(O(org) + '/devices/' + enc(d.id) + '/policies');
      const body = { path_policy_id: cur.path_policy_id || '', breakout_policy_id: cur.breakout_policy_id || '', firewall_policy_id: cur.firewall_policy_id || '' };
      body[field] = assigned.has(d.id) ? '' : p.id;
      await put(O(org) + '/devices/' + enc(d.id) + '/policies', body);
      toast('Saved');
      again();
    }, { class: 'small' })],
  ], devs, { empty: 'No approved devices.', rowAttrs: (d) => ({ dataset: { device: d.hostname } }) })),
  h('details', { class: 'card' }, h('summary', null, 'The whole policy as JSON'), h('pre', { class: 'json' }, JSON.stringify(p, null, 2))));
}

// ------------------------------------------------------------ notifications

// notifications lists my notifications of this organization (GET
// /notifications?org_id=) and the organization's alerts, when this manage
// has the monitoring API (read from its OpenAPI document); else it says so.
export async function notifications(main, ctx) {
  const { org } = ctx;
  const f = await features();
  if (!f.has(/^\/notifications$/)) {
    return clear(main, h('h1', null, 'Notifications'), h('p', { class: 'empty', id: 'no-notifications' }, 'This manage has no notifications API.'));
  }
  const canMark = f.has(/^\/notifications\/read$/);
  const hasAlerts = f.has(/^\/organizations\/\{org_id\}\/alerts$/);
  const filter = h('select', { 'aria-label': 'Show', id: 'notif-filter' }, [['false', 'Unread'], ['', 'All']].map(([v, l]) => h('option', { value: v }, l)));
  const box = h('div', { id: 'notification-list' });
  const alertBox = h('div', { id: 'alert-list' });
  const mark = async (body) => {
    const r = await post('/notifications/read', body);
    toast(r.marked + ' marked read, ' + r.unread + ' unread');
    await load();
  };
  const load = async () => {
    const r = await list('/notifications', { org_id: org, read: filter.value, limit: 200 });
    if (!ctx.alive()) return;
    clear(box, table([
      ['Severity', (n) => badge(n.severity)],
      ['What', (n) => h('span', null, h('strong', null, n.title), ' ', h('span', { class: 'muted' }, n.message))],
      ['When', (n) => when(n.created_at)],
      ['', (n) => n.read_at ? h('span', { class: 'muted' }, 'read') : canMark ? action('Mark read', () => mark({ ids: [n.id] }), { class: 'small markread' }) : ''],
    ], r.items || [], { empty: filter.value === 'false' ? 'No unread notifications.' : 'No notifications.', rowAttrs: (n) => ({ class: n.read_at ? 'read' : 'unread', dataset: { type: n.type } }) }));
    if (hasAlerts) {
      const al = await list(O(org) + '/alerts', { limit: 100, state: alertState.value, type: alertType.value });
      if (!ctx.alive()) return;
      clear(alertBox, table([
        ['Severity', (a) => badge(a.severity)], ['State', (a) => badge(a.state, a.state === 'resolved' ? 'idle' : a.severity === 'critical' ? 'bad' : 'warn')],
        ['Device', (a) => a.device_id ? h('a', { href: '#/o/' + enc(org) + '/devices/' + enc(a.device_id) }, devName[a.device_id] || short(a.device_id)) : '—'],
        ['Alert', (a) => h('span', null, h('code', null, a.type), a.subject && !String(a.message || '').includes(a.subject) ? ' ' + a.subject : '', ' ', a.message)],
        ['Count', (a) => a.count], ['First', (a) => when(a.first_seen)], ['Last', (a) => when(a.last_seen)], ['Resolved', (a) => when(a.resolved_at)],
      ], al.items || [], { empty: 'No alerts.', rowAttrs: (a) => ({ dataset: { type: a.type, state: a.state } }) }));
    }
  };
  // Alert filters: state and type (the types from GET /alert-types).
  const alertState = h('select', { 'aria-label': 'Alert state', id: 'alert-state' }, [['', 'Active and resolved'], ['active', 'Active'], ['resolved', 'Resolved']].map(([v, l]) => h('option', { value: v }, l)));
  const types = f.has(/^\/alert-types$/) ? ((await get('/alert-types').catch(() => ({}))).items || []) : [];
  const alertType = h('select', { 'aria-label': 'Alert type', id: 'alert-type' }, h('option', { value: '' }, 'All types'), types.map((t) => h('option', { value: t.type, title: t.description }, t.type.replace(/_/g, ' '))));
  alertType.hidden = !types.length;
  for (const sel of [alertState, alertType]) sel.addEventListener('change', () => load().catch((e) => toast(e.message, 'bad')));
  const devName = Object.fromEntries((hasAlerts ? await all(O(org) + '/devices').catch(() => []) : []).map((d) => [d.id, d.name || d.hostname]));
  filter.addEventListener('change', () => load().catch((e) => toast(e.message, 'bad')));
  clear(main, h('div', { class: 'head' }, h('h1', null, 'Notifications'), filter,
    canMark ? action('Mark all read', () => mark({ all: true }), { class: 'small', title: 'Mark all my notifications read (every organization)' }) : null),
  section('My notifications in this organization', box), hasAlerts ? section('Alerts of the organization', h('div', { class: 'head' }, alertState, alertType), alertBox) : null,
  f.has(/^\/organizations\/\{org_id\}\/alert-thresholds$/) ? section('Alert thresholds', await thresholds(org)) : null,
  f.has(/^\/organizations\/\{org_id\}\/tunnels\/\{tunnel_id\}\/alert-thresholds$/) ? section('Thresholds of single tunnels', await tunnelThresholds(org)) : null,
  f.has(/^\/organizations\/\{org_id\}\/webhooks$/) ? section('Webhooks', await webhooks(org)) : null);
  await load();
  every(10000, load);
}

// webhooks lists, adds, tests and deletes the organization's webhooks
// (managers; others see the API's refusal).
async function webhooks(org) {
  const box = h('div', { id: 'webhook-list' });
  const shown = h('div');
  const load = async () => {
    let hooks;
    try {
      hooks = await all(O(org) + '/webhooks');
    } catch (err) {
      return clear(box, errorBox(err));
    }
    clear(box, table([
      ['Name', (w) => w.name], ['URL', (w) => h('code', { class: 'wrap' }, w.url)], ['From', (w) => w.min_severity],
      ['Types', (w) => (w.types || []).join(', ') || 'all'],
      ['Last delivery', (w) => w.last_delivery_at ? `${when(w.last_delivery_at)}: ${w.last_status || ''} ${w.last_error || ''}` : 'never'],
      ['', (w) => h('span', { class: 'rowactions' },
        action('Test', async () => {
          const r = await post(O(org) + '/webhooks/' + enc(w.id) + '/test');
          toast(r.error ? `test failed after ${r.attempts} attempts: ${r.error}` : `receiver answered ${r.status}`, r.error ? 'bad' : 'ok');
          await load();
        }, { class: 'small' }),
        action('Delete', async () => { await del(O(org) + '/webhooks/' + enc(w.id)); await load(); }, { class: 'small danger', confirm: 'Delete webhook ' + w.name + '?' }))],
    ], hooks, { empty: 'No webhooks.' }));
  };
  await load();
  return h('div', null, box, shown, h('details', null, h('summary', null, 'Add a webhook'), form([
    { name: 'name', label: 'Name', required: true },
    { name: 'url', label: 'URL', required: true, type: 'url', placeholder: 'the receiver, e.g. hooks.example.com/trellis over HTTPS' },
    { name: 'min_severity', label: 'From severity', type: 'select', value: 'warning', options: [['warning', 'warning'], ['critical', 'critical']] },
    await alertTypesField([]),
  ], 'Add webhook', async (v) => {
    const body = { name: v.name, url: v.url, min_severity: v.min_severity };
    if (typesOf(v.types).length) body.types = typesOf(v.types);
    const r = await post(O(org) + '/webhooks', body);
    clear(shown, h('div', { class: 'notice' }, 'Signing secret (shown once; receivers check X-Trellis-Signature with it): ', h('code', { class: 'secret' }, r.secret)));
    await load();
  }, { id: 'hook' })));
}

// thresholds edits the organization's alert thresholds: tunnel RTT and
// loss, and, when this manage has them ("resources" in the answer), the
// device CPU, memory and disk use (0 switches a level off).
async function thresholds(org) {
  const th = await get(O(org) + '/alert-thresholds');
  const defs = th.defaults || {};
  const cur = th.organization || defs;
  const res = th.resources && typeof th.resources === 'object' ? th.resources : null;
  const resDefs = th.resource_defaults || {};
  const RES = [['cpu_pct', 'CPU (%)'], ['mem_used_pct', 'Memory (%)'], ['disk_used_pct', 'Disk (%)']];
  const lvl = (o, k, l) => (o && o[k] && o[k][l] !== undefined ? o[k][l] : '');
  const lv = (k, l) => ({ name: k + '.' + l, label: (k === 'rtt_ms' ? 'RTT (ms) ' : 'Loss (%) ') + l, type: 'number', value: lvl(cur, k, l), min: 0 });
  const rv = (k, label, l) => ({ name: 'resources.' + k + '.' + l, label: label + ' ' + l, type: 'number', value: lvl(res, k, l), min: 0, max: 100 });
  const fields = [lv('rtt_ms', 'warning'), lv('rtt_ms', 'critical'), lv('loss_pct', 'warning'), lv('loss_pct', 'critical')];
  if (res) for (const [k, label] of RES) fields.push(rv(k, label, 'warning'), rv(k, label, 'critical'));
  const one = (o, k, l, unit) => (lvl(o, k, l) ? l + ' above ' + lvl(o, k, l) + unit : l + ' off');
  const d = (o, k, unit) => one(o, k, 'warning', unit) + ', ' + one(o, k, 'critical', unit);
  return h('div', null,
    h('p', { class: 'muted small' }, `Defaults: tunnel RTT ${d(defs, 'rtt_ms', ' ms')}; loss ${d(defs, 'loss_pct', ' %')}` +
      (res ? '; ' + RES.map(([k, label]) => label.replace(' (%)', '') + ' ' + d(resDefs, k, ' %')).join('; ') : '') +
      '. Alerts are raised after the condition has held for 30 s; 0 switches a level off.'),
    form(fields, 'Save thresholds', async (v) => {
      const body = {
        rtt_ms: { warning: v['rtt_ms.warning'] ?? 0, critical: v['rtt_ms.critical'] ?? 0 },
        loss_pct: { warning: v['loss_pct.warning'] ?? 0, critical: v['loss_pct.critical'] ?? 0 },
      };
      if (res) {
        body.resources = {};
        for (const [k] of RES) body.resources[k] = { warning: v['resources.' + k + '.warning'] ?? 0, critical: v['resources.' + k + '.critical'] ?? 0 };
      }
      await put(O(org) + '/alert-thresholds', body);
      toast('Thresholds saved');
    }, { id: 'th', class: 'inline' }));
}

// tunnelThresholds lists the tunnels with thresholds of their own
// (they replace the organization's for that tunnel), sets one, removes
// one.
async function tunnelThresholds(org) {
  const box = h('div', { id: 'tunnel-thresholds' });
  const load = async () => {
    const [th, tunnels] = await Promise.all([get(O(org) + '/alert-thresholds'), all(O(org) + '/tunnels')]);
    const own = th.tunnels || [];
    const lv = (x, k) => (x && x[k] ? `${x[k].warning || 'off'} / ${x[k].critical || 'off'}` : '—');
    const base = th.organization || th.defaults || {};
    const val = (k, l) => (base[k] && base[k][l] !== undefined ? base[k][l] : '');
    clear(box, table([
      ['Tunnel', (x) => String(x.number || short(x.tunnel_id))], ['RTT (ms) warning / critical', (x) => lv(x.thresholds, 'rtt_ms')],
      ['Loss (%) warning / critical', (x) => lv(x.thresholds, 'loss_pct')],
      ['', (x) => action('Remove', async () => {
        await del(O(org) + '/tunnels/' + enc(x.tunnel_id) + '/alert-thresholds');
        toast('Tunnel ' + x.number + ' follows the organization\'s thresholds');
        await load();
      }, { class: 'small danger' })],
    ], own, { empty: 'No tunnel has thresholds of its own.', rowAttrs: (x) => ({ dataset: { number: x.number } }) }),
    tunnels.length ? h('details', null, h('summary', null, 'Set a tunnel\'s own thresholds'), form([
      { name: 'tunnel', label: 'Tunnel', type: 'select', value: tunnels[0].id, options: tunnels.map((t) => [t.id, 'tunnel ' + t.number]) },
      { name: 'rtt_ms.warning', label: 'RTT (ms) warning', type: 'number', min: 0, value: val('rtt_ms', 'warning') },
      { name: 'rtt_ms.critical', label: 'RTT (ms) critical', type: 'number', min: 0, value: val('rtt_ms', 'critical') },
      { name: 'loss_pct.warning', label: 'Loss (%) warning', type: 'number', min: 0, value: val('loss_pct', 'warning') },
      { name: 'loss_pct.critical', label: 'Loss (%) critical', type: 'number', min: 0, value: val('loss_pct', 'critical') },
    ], 'Save tunnel thresholds', async (v) => {
      await put(O(org) + '/tunnels/' + enc(v.tunnel) + '/alert-thresholds', {
        rtt_ms: { warning: v['rtt_ms.warning'] ?? 0, critical: v['rtt_ms.critical'] ?? 0 },
        loss_pct: { warning: v['loss_pct.warning'] ?? 0, critical: v['loss_pct.critical'] ?? 0 },
      });
      toast('Tunnel thresholds saved');
      await load();
    }, { id: 'tth', class: 'inline' })) : null);
  };
  await load();
  return box;
}

// ------------------------------------------------------------------- tokens

export async function tokens(main, ctx) {
  const { org } = ctx;
  const box = h('div');
  const shown = h('div', { id: 'token-shown' });
  const load = async () => {
    const ts = await all(O(org) + '/tokens');
    clear(box, table([
      ['Name', (t) => t.name], ['Created', (t) => when(t.created_at)], ['Revoked', (t) => when(t.revoked_at)],
      ['', (t) => t.revoked_at ? '' : action('Revoke', async () => { await del(O(org) + '/tokens/' + enc(t.id)); await load(); }, { class: 'small danger', confirm: 'Revoke token ' + t.name + '? Devices not yet registered with it will be refused.' })],
    ], ts, { empty: 'No organization tokens.' }));
  };
  clear(main, h('h1', null, 'Organization tokens'),
    h('p', { class: 'muted' }, 'One token provisions every device of the organization: put it in /etc/trellis/token on the edge.'),
    box, shown, section('New token', form([{ name: 'name', label: 'Name', required: true }], 'Create token', async (v) => {
      const r = await post(O(org) + '/tokens', { name: v.name });
      clear(shown, h('div', { class: 'notice' }, 'Token (shown once): ', h('code', { class: 'secret wrap' }, r.token)));
      await load();
    }, { id: 'token' })));
  await load();
}

// -------------------------------------------------------------------- audit

export async function audit(main, ctx) {
  const box = h('div');
  clear(main, h('h1', null, 'Audit log'), box);
  await showAudit(O(ctx.org) + '/audit', box);
}

async function showAudit(path, box) {
  const action_ = h('input', { type: 'search', placeholder: 'action, e.g. device.approve', 'aria-label': 'Action' });
  const out = h('div');
  let offset = 0;
  const load = async () => {
    const r = await list(path, { action: action_.value, sort: '-id', limit: 50, offset });
    const prev = h('button', { type: 'button', disabled: offset === 0 }, '← Newer');
    const next = h('button', { type: 'button', disabled: offset + 50 >= r.total }, 'Older →');
    prev.addEventListener('click', () => { offset = Math.max(0, offset - 50); load(); });
    next.addEventListener('click', () => { offset += 50; load(); });
    clear(out, table([
      ['When', (e) => when(e.created_at)], ['Who', (e) => e.actor_name || e.actor_type + ' ' + short(e.actor_id)],
      ['Action', (e) => h('code', null, e.action)], ['Object', (e) => e.object_type + ' ' + short(e.object_id)],
      ['Details', (e) => e.details ? h('code', { class: 'wrap' }, JSON.stringify(e.details)) : ''], ['IP', (e) => e.ip || ''],
    ], r.items || [], { empty: 'No entries.' }), h('div', { class: 'pager' }, prev, ` ${offset + 1}–${Math.min(offset + 50, r.total)} of ${r.total} `, next));
  };
  action_.addEventListener('change', () => { offset = 0; load().catch((e) => clear(out, errorBox(e))); });
  clear(box, action_, out);
  await load();
}
