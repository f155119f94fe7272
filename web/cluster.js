// The cluster page (/cluster): regions, nodes and the relay links of the
// node that served the page, from GET /admin/status with the admin token.
// The token lives in this tab's sessionStorage only, never in a URL. The
// status names nodes and regions, never rooms: meetings are counts.

const KEY = 'meshmeet.adminToken';
const POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

const state = {
  timer: 0,
  // What the page shows, for tests and for anyone at the console.
  view: { status: '', error: '', regions: {}, links: [], node: '', rooms: -1, updated: 0 },
};
window.meshmeetCluster = state.view;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function bitrate(bps) {
  const b = Number(bps) || 0;
  if (b >= 1e9) return (b / 1e9).toFixed(1) + ' Gb/s';
  if (b >= 1e6) return (b / 1e6).toFixed(1) + ' Mb/s';
  if (b >= 1e3) return (b / 1e3).toFixed(0) + ' kb/s';
  return b.toFixed(0) + ' b/s';
}

// stress is participants against capacity, as `meshmeet cluster status`
// shows it; null without a configured capacity.
function stress(m) {
  return m.capacity > 0 ? m.participants / m.capacity : null;
}

function showError(msg) {
  state.view.error = msg;
  const e = $('cl-error');
  e.textContent = msg;
  e.hidden = !msg;
}

function stop() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = 0;
}

function signOut(msg) {
  stop();
  sessionStorage.removeItem(KEY);
  state.view.status = 'login';
  state.view.regions = {};
  state.view.links = [];
  $('cl-view').hidden = true;
  $('cl-regions').replaceChildren();
  $('cl-graph').replaceChildren();
  $('cl-links').tBodies[0].replaceChildren();
  $('cl-login').hidden = false;
  $('cl-forget').hidden = true;
  $('cl-summary').textContent = '';
  showError(msg || '');
}

async function poll() {
  const token = sessionStorage.getItem(KEY);
  if (!token) { signOut(); return; }
  let resp;
  try {
    resp = await fetch('/admin/status', {
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    showError('The node does not answer; retrying.');
    schedule();
    return;
  }
  if (resp.status === 401) {
    signOut('Wrong admin token: this cluster refused it. Print the token with `meshmeet cluster admin-token` on a machine holding this cluster\'s secret.');
    return;
  }
  if (resp.status === 404) {
    signOut('This node has no cluster status: it runs alone, without --cluster-secret-file.');
    return;
  }
  if (!resp.ok) {
    showError('The node answered HTTP ' + resp.status + '; retrying.');
    schedule();
    return;
  }
  let st;
  try {
    st = await resp.json();
  } catch {
    showError('The node sent an unreadable status; retrying.');
    schedule();
    return;
  }
  showError('');
  render(st);
  schedule();
}

function schedule() {
  stop();
  state.timer = setTimeout(poll, POLL_MS);
}

function render(st) {
  const members = Array.isArray(st.members) ? st.members.slice() : [];
  const links = Array.isArray(st.relay_links) ? st.relay_links : [];
  const voters = new Set(Array.isArray(st.voters) ? st.voters : []);
  members.sort((a, b) => (a.region || '').localeCompare(b.region || '') || (a.name || '').localeCompare(b.name || ''));

  const regions = {};
  for (const m of members) (regions[m.region || '(none)'] ||= []).push(m);

  state.view.status = 'shown';
  state.view.node = String(st.node || '');
  state.view.rooms = typeof st.rooms === 'number' ? st.rooms : -1;
  state.view.regions = Object.fromEntries(Object.entries(regions).map(([r, ms]) => [r, ms.map((m) => m.name)]));
  state.view.links = links.map((l) => ({ from: state.view.node, to: l.peer, rtt_ms: l.rtt_us / 1000, loss: l.loss, send_bps: l.send_bps, recv_bps: l.recv_bps, meetings: l.rooms }));
  state.view.updated = Date.now();

  $('cl-login').hidden = true;
  $('cl-forget').hidden = false;
  $('cl-view').hidden = false;
  const rooms = state.view.rooms < 0 ? 'unknown (directory unavailable)' : String(state.view.rooms);
  $('cl-summary').textContent = `${members.length} nodes in ${Object.keys(regions).length} regions · live meetings: ${rooms} · raft leader: ${st.leader || 'none (no quorum)'} · answered by ${state.view.node}`;

  const boxes = [];
  for (const [region, ms] of Object.entries(regions)) {
    const box = el('section', 'cl-region');
    box.dataset.region = region;
    let participants = 0;
    for (const m of ms) if (m.state === 'alive') participants += m.participants || 0;
    box.append(el('h2', '', region), el('p', 'cl-muted', `${ms.length} node${ms.length === 1 ? '' : 's'} · ${participants} participant${participants === 1 ? '' : 's'}`));
    for (const m of ms) {
      const card = el('article', 'cl-node');
      card.dataset.node = m.name;
      if (m.state !== 'alive') card.classList.add('cl-down');
      if (m.draining) card.classList.add('cl-draining');
      const title = el('h3', '', m.name);
      if (m.name === st.leader) title.append(el('span', 'cl-tag', 'leader'));
      else if (voters.has(m.name)) title.append(el('span', 'cl-tag', 'voter'));
      if (m.name === state.view.node) title.append(el('span', 'cl-tag', 'this node'));
      const s = stress(m);
      const dl = el('dl');
      const row = (k, v) => dl.append(el('dt', '', k), el('dd', '', v));
      row('State', m.state);
      row('Draining', m.draining ? 'yes' : 'no');
      row('Participants', m.capacity > 0 ? `${m.participants} / ${m.capacity}` : m.participants);
      row('Stress', s === null ? '-' : s.toFixed(2));
      row('CPU', (Number(m.cpu) || 0).toFixed(2));
      row('Bitrate', bitrate(m.bitrate_bps));
      card.append(title, dl);
      box.append(card);
    }
    boxes.push(box);
  }
  $('cl-regions').replaceChildren(...boxes);

  const tbody = $('cl-links').tBodies[0];
  tbody.replaceChildren(...state.view.links.map((l) => {
    const tr = el('tr');
    for (const v of [l.from, l.to, l.rtt_ms.toFixed(1) + ' ms', (l.loss * 100).toFixed(1) + ' %', bitrate(l.send_bps), bitrate(l.recv_bps), l.meetings]) tr.append(el('td', '', v));
    return tr;
  }));
  $('cl-links').hidden = links.length === 0;
  $('cl-nolinks').hidden = links.length !== 0;
  drawGraph(regions, state.view.links);
}

// drawGraph places the nodes on a circle, grouped by region, and draws one
// line per relay link labelled RTT / loss / bitrate.
function drawGraph(regions, links) {
  const svg = $('cl-graph');
  const ns = svg.namespaceURI;
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  };
  const names = [];
  for (const [region, ms] of Object.entries(regions)) for (const m of ms) names.push({ name: m.name, region });
  const W = 640, H = names.length > 2 ? 420 : 220;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const cx = W / 2, cy = H / 2, rx = W / 2 - 110, ry = H / 2 - 40;
  const pos = new Map();
  names.forEach((n, i) => {
    const a = names.length === 1 ? Math.PI : Math.PI + (2 * Math.PI * i) / names.length;
    pos.set(n.name, { x: cx + rx * Math.cos(a), y: cy + ry * Math.sin(a), region: n.region });
  });
  const out = [];
  for (const l of links) {
    const a = pos.get(l.from), b = pos.get(l.to);
    if (!a || !b) continue;
    const g = mk('g', { class: 'cl-link' });
    g.dataset.from = l.from;
    g.dataset.to = l.to;
    g.append(mk('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }));
    // RTT / loss / media bitrate both ways together (the table splits it).
    const label = `${l.rtt_ms.toFixed(1)} ms / ${(l.loss * 100).toFixed(1)} % / ${bitrate(l.send_bps + l.recv_bps)}`;
    g.append(mk('text', { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 6, 'text-anchor': 'middle' }, label));
    out.push(g);
  }
  for (const [name, p] of pos) {
    const g = mk('g', { class: 'cl-gnode' });
    g.append(mk('circle', { cx: p.x, cy: p.y, r: 9 }));
    g.append(mk('text', { x: p.x, y: p.y + 24, 'text-anchor': 'middle' }, name));
    g.append(mk('text', { x: p.x, y: p.y + 38, 'text-anchor': 'middle', class: 'cl-gregion' }, p.region));
    out.push(g);
  }
  svg.replaceChildren(...out);
}

$('cl-login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('cl-token');
  const token = input.value.trim();
  input.value = '';
  if (!token) return;
  sessionStorage.setItem(KEY, token);
  showError('');
  state.view.status = 'loading';
  poll();
});
$('cl-forget').addEventListener('click', () => signOut());

if (sessionStorage.getItem(KEY)) poll();
else signOut();
