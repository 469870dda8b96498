// rf-broadcast debug console page: the live log (SSE from /api/stream) with filters, pause,
// a row cap and JSON-lines export; counters with five-minute sparklines; the channel and
// connection inspectors; the event creator. Everything peer-supplied is inserted as text,
// never as HTML.
'use strict';

const MAX_ROWS = 1000;
const $ = (id) => document.getElementById(id);
const state = { rows: [], paused: false, missed: 0, apps: [], selected: null };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function getJson(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  if (r.status === 401) { location.href = '/login'; throw new Error('signed out'); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

async function postJson(url, payload) {
  const r = await fetch(url, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// ---- filters -------------------------------------------------------------------------------

function globToRegExp(glob) {
  const esc = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${esc}$`);
}

function currentFilter() {
  const channel = $('f-channel').value.trim();
  return {
    app: $('f-app').value,
    type: $('f-type').value,
    channel: channel ? globToRegExp(channel) : null,
    event: $('f-event').value.trim(),
    socket: $('f-socket').value.trim(),
    user: $('f-user').value.trim(),
  };
}

function channelsOf(row) {
  if (row.channel) return [row.channel];
  return row.channels || [];
}

function matches(row, f) {
  if (f.app && row.app_id !== f.app) return false;
  if (f.type && row.type !== f.type) return false;
  if (f.channel && !channelsOf(row).some((c) => f.channel.test(c))) return false;
  if (f.event && row.event !== f.event && !(row.kinds || []).includes(f.event)) return false;
  if (f.socket && row.socket_id !== f.socket && row.except_socket_id !== f.socket) return false;
  if (f.user && row.user_id !== f.user) return false;
  return true;
}

// ---- log -----------------------------------------------------------------------------------

function details(row) {
  const parts = [];
  switch (row.type) {
    case 'connection_closed': parts.push(`code ${row.code ?? '–'}`, row.reason); break;
    case 'subscription_refused': parts.push(row.reason); break;
    case 'subscription_count': parts.push(`count ${row.count}`); break;
    case 'member_added': case 'member_removed':
      parts.push(row.here ? 'this node' : 'other node', row.cluster ? 'cluster-wide' : 'not last/first in cluster'); break;
    case 'dropped': parts.push(`${row.count} rows dropped (${row.where})`); break;
    case 'webhook_attempt':
      parts.push(row.outcome.replace('_', ' '), `attempt ${row.attempt}`,
        row.status ? `HTTP ${row.status}` : row.error, `${row.events} event(s)`, `→ ${row.target}`);
      if (row.retry_in_ms !== null && row.retry_in_ms !== undefined) parts.push(`retry in ${(row.retry_in_ms / 1000).toFixed(1)}s`);
      break;
    case 'api_publish': case 'client_event':
      parts.push(`→ ${row.recipients} connection(s)`, `${row.bytes} B`);
      if (row.except_socket_id) parts.push(`except ${row.except_socket_id}`);
      if (row.hidden) parts.push('payload hidden (private/presence)');
      else if (row.data !== undefined) parts.push((row.encrypted ? 'ciphertext ' : '') + row.data + (row.truncated ? ' …(cut)' : ''));
      break;
    default: break;
  }
  return parts.filter(Boolean).join(' · ');
}

function renderRow(row) {
  const tr = el('tr', null, `t-${row.type}` + (row.outcome ? ` o-${row.outcome}` : ''));
  tr.append(
    el('td', (row.time || '').slice(11, 23)),
    el('td', row.app_id ?? ''),
    el('td', row.type),
    el('td', channelsOf(row).join(', ')),
    el('td', row.event ?? (row.kinds || []).join(', ')),
    el('td', row.socket_id ?? ''),
    el('td', row.user_id ?? ''),
    el('td', details(row), 'details'),
  );
  tr.addEventListener('click', () => {
    const d = $('row-detail');
    d.hidden = false;
    d.textContent = JSON.stringify(row, null, 2);
  });
  return tr;
}

function shownCount() {
  $('log-count').textContent = `${$('log').tBodies[0].rows.length} shown / ${state.rows.length} kept` +
    (state.paused && state.missed ? ` · ${state.missed} new while paused` : '');
}

function renderAll() {
  const f = currentFilter();
  const body = $('log').tBodies[0];
  const frag = document.createDocumentFragment();
  for (let i = state.rows.length - 1; i >= 0; i--) {
    if (matches(state.rows[i], f)) frag.append(renderRow(state.rows[i]));
  }
  body.replaceChildren(frag);
  shownCount();
}

function addRow(row) {
  state.rows.push(row);
  let evicted = false;
  while (state.rows.length > MAX_ROWS) {
    state.rows.shift();
    evicted = true;
  }
  if (state.paused) {
    state.missed++;
    shownCount();
    return;
  }
  const body = $('log').tBodies[0];
  if (matches(row, currentFilter())) body.prepend(renderRow(row));
  if (evicted) {
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }
  shownCount();
}

function exportText() {
  const f = currentFilter();
  return state.rows.filter((r) => matches(r, f)).map((r) => JSON.stringify(r)).join('\n') + '\n';
}

function exportFile() {
  const blob = new Blob([exportText()], { type: 'application/x-ndjson' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = `rf-console-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function connectStream() {
  const pill = $('stream-state');
  const es = new EventSource('/api/stream');
  es.onopen = () => { pill.textContent = 'live'; pill.className = 'pill live'; };
  es.onerror = () => { pill.textContent = 'reconnecting…'; pill.className = 'pill down'; };
  es.onmessage = (m) => {
    try { addRow(JSON.parse(m.data)); } catch (e) { console.error('bad row', e); }
  };
}

// ---- counters ------------------------------------------------------------------------------

function spark(svg, values) {
  const max = Math.max(1, ...values);
  const n = values.length;
  const pts = values.map((v, i) => `${n <= 1 ? 300 : (300 * i) / (n - 1)},${(29 - (28 * v) / max).toFixed(1)}`);
  svg.querySelector('polyline').setAttribute('points', pts.join(' '));
}

function setApps(apps) {
  if (JSON.stringify(apps) === JSON.stringify(state.apps)) return;
  state.apps = apps;
  for (const id of ['f-app', 'c-app']) {
    const sel = $(id);
    const keep = sel.value;
    for (const o of [...sel.options]) if (o.value) o.remove();
    for (const a of apps) sel.append(new Option(a, a));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }
}

function inspectedApp() {
  return $('c-app').value || state.apps[0];
}

async function refreshOverview() {
  const o = await getJson('/api/overview');
  setApps(o.apps);
  $('payload-mode').textContent = o.show_payloads ? 'private payloads shown' : 'private payloads hidden';
  $('logout-form').hidden = !o.token_required;
  const last = o.samples[o.samples.length - 1] || {};
  for (const box of document.querySelectorAll('.counter')) {
    const key = box.dataset.key;
    const live = key === 'connections' || key === 'channels' ? o[key] : last[key] ?? 0;
    box.querySelector('.value').textContent = live;
    spark(box.querySelector('svg'), o.samples.map((s) => s[key]));
  }
}

// ---- inspectors ----------------------------------------------------------------------------

async function refreshChannels() {
  const app = inspectedApp();
  if (!app) return;
  const { channels } = await getJson(`/api/channels?app=${encodeURIComponent(app)}`);
  const body = $('channels').tBodies[0];
  body.replaceChildren(...channels.map((c) => {
    const tr = el('tr');
    tr.dataset.name = c.name;
    tr.append(el('td', c.name), el('td', c.subscription_count), el('td', c.user_count ?? ''));
    tr.addEventListener('click', () => { state.selected = c.name; showChannel(); });
    return tr;
  }));
  if (state.selected) showChannel();
}

async function showChannel() {
  const d = $('channel-detail');
  const app = inspectedApp();
  try {
    const c = await getJson(`/api/channel?app=${encodeURIComponent(app)}&name=${encodeURIComponent(state.selected)}`);
    const lines = [`${c.name}: ${c.subscription_count} subscriber(s)`, ...c.subscribers.map((s) => `  socket ${s}`)];
    if (c.presence) {
      lines.push(`members (${c.members.length}):`);
      for (const m of c.members) lines.push(`  ${m.user_id}  ${JSON.stringify(m.user_info)}`);
    }
    d.textContent = lines.join('\n');
  } catch (e) {
    d.textContent = `${state.selected}: ${e.message}`;
    state.selected = null;
  }
  d.hidden = false;
}

const secs = (ms) => (ms < 60_000 ? `${Math.round(ms / 1000)}s` : ms < 3_600_000 ? `${Math.round(ms / 60_000)}m` : `${(ms / 3_600_000).toFixed(1)}h`);

async function refreshConnections() {
  const app = inspectedApp();
  if (!app) return;
  const { connections } = await getJson(`/api/connections?app=${encodeURIComponent(app)}`);
  const body = $('connections').tBodies[0];
  body.replaceChildren(...connections.map((c) => {
    const tr = el('tr');
    tr.dataset.socket = c.socket_id;
    const btn = el('button', 'Disconnect', 'danger');
    btn.type = 'button';
    btn.addEventListener('click', async () => {
      if (!window.confirm(`Disconnect ${c.socket_id}? It is closed with 4009 and pusher-js does not reconnect.`)) return;
      try {
        await postJson('/api/disconnect', { app_id: c.app_id, socket_id: c.socket_id });
        btn.textContent = 'closed';
        btn.disabled = true;
      } catch (e) { btn.textContent = e.message; }
    });
    const chans = el('td', c.channels.map((x) => x.channel).join(', '));
    tr.append(el('td', c.socket_id), el('td', c.user ?? ''), chans, el('td', secs(c.age_ms)), el('td', secs(c.idle_ms)), el('td'));
    tr.lastChild.append(btn);
    return tr;
  }));
}

// ---- event creator -------------------------------------------------------------------------

async function publish(ev) {
  ev.preventDefault();
  const out = $('c-result');
  const data = $('c-data').value;
  try { JSON.parse(data); } catch { out.textContent = 'data is not valid JSON'; out.className = 'error'; return; }
  try {
    await postJson('/api/publish', {
      app_id: $('c-app').value, channel: $('c-channel').value.trim(), event: $('c-event').value.trim(),
      data, socket_id: $('c-socket').value.trim() || null,
    });
    out.textContent = 'published'; out.className = 'muted';
  } catch (e) { out.textContent = e.message; out.className = 'error'; }
}

// ---- wiring --------------------------------------------------------------------------------

function every(ms, fn) {
  const run = () => fn().catch((e) => console.warn(e.message));
  run();
  setInterval(run, ms);
}

document.addEventListener('DOMContentLoaded', () => {
  for (const id of ['f-app', 'f-type', 'f-channel', 'f-event', 'f-socket', 'f-user']) {
    $(id).addEventListener('input', renderAll);
  }
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('pause').classList.toggle('active', state.paused);
    if (!state.paused) { state.missed = 0; renderAll(); } else shownCount();
  });
  $('clear').addEventListener('click', () => { state.rows = []; state.missed = 0; renderAll(); });
  $('export').addEventListener('click', exportFile);
  $('creator').addEventListener('submit', publish);
  $('ch-refresh').addEventListener('click', () => refreshChannels());
  $('conn-refresh').addEventListener('click', () => refreshConnections());
  $('c-app').addEventListener('input', () => { state.selected = null; refreshChannels(); refreshConnections(); });
  connectStream();
  every(1000, refreshOverview);
  every(2000, refreshChannels);
  every(2000, refreshConnections);
});

// For tests and the browser's devtools.
window.__console = { state, exportText, renderAll };
