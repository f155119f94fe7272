// meshmeet web client: the pre-join screen and the meeting view.
//
// URL:  /                 pre-join with a generated room name
//       /<room>           pre-join for that room (the name is URL-encoded)
//       ?prejoin=0        join straight away
//       ?simulcast=0      send one video layer only
//       ?turn=1           media only through the node's TURN server
//                         (iceTransportPolicy "relay"), to check TURN
//       #name=<display name>&e2ee=<passphrase>
// The fragment never reaches the server. e2ee is parsed but not used yet.
//
// window.meshmeet exposes the state for tests and for debugging.

import * as roomname from './roomname.js';
import { Session } from './session.js';
import { Meter } from './quality.js';

const $ = (id) => document.getElementById(id);

const url = parseURL();
const state = {
  words: null,
  stream: null, // local microphone + camera
  wantAudio: true,
  wantVideo: true,
  session: null,
  meter: new Meter(),
  quality: { level: 'unknown', loss: null, rtt: null },
  chat: [],
  errors: [],
  audioEls: new Map(), // trackId -> <audio>
  soundBlocked: false,
  resumes: 0, // times the WebSocket dropped and the session resumed
  timers: [],
};

// ---------------------------------------------------------------- test hooks

const hooks = {
  ready: null,
  roomname,
  get words() { return state.words; },
  get room() { return state.session ? state.session.room : $('room').value; },
  get joined() { return !!(state.session && state.session.joined); },
  get participant() { return state.session ? state.session.participant : ''; },
  /** The other participants: [{id, name, muted:{audio, video}}]. */
  get participants() {
    return state.session ? [...state.session.participants.values()].map((p) => ({ ...p, muted: { ...p.muted } })) : [];
  },
  get tracks() { return state.session ? [...state.session.tracks.values()] : []; },
  get pub() { return state.session ? state.session.pub : null; },
  get sub() { return state.session ? state.session.sub : null; },
  get speaker() { return state.session ? state.session.speaker : ''; },
  get quality() { return { ...state.quality }; },
  get chat() { return state.chat.map((m) => ({ ...m })); },
  get errors() { return [...state.errors]; },
  get resumes() { return state.resumes; },
  /** The maxHeight last sent per remote video track ID. */
  get prefs() { return state.session ? Object.fromEntries(state.session._prefs) : {}; },
  get session() { return state.session; },
  e2ee: !!url.e2ee, // a passphrase was given; E2EE itself is not implemented yet
  sendChat: (text) => sendChat(text),
};
window.meshmeet = hooks;

// ---------------------------------------------------------------- URL

function parseURL() {
  let room = '';
  const path = location.pathname.slice(1);
  if (path && !path.includes('/')) {
    try {
      room = decodeURIComponent(path);
    } catch {
      room = '';
    }
  }
  const q = new URLSearchParams(location.search);
  const f = new URLSearchParams(location.hash.slice(1));
  return {
    room,
    prejoin: q.get('prejoin') !== '0',
    simulcast: q.get('simulcast') !== '0',
    turn: q.get('turn') === '1',
    name: cleanName(f.get('name') || ''),
    e2ee: f.get('e2ee') || '',
  };
}

function cleanName(s) {
  return [...s.trim()].filter((c) => roomname.isPrintable(c)).slice(0, 64).join('').trim();
}

// ---------------------------------------------------------------- banner

function showBanner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = false;
}

$('banner-close').addEventListener('click', () => {
  $('banner').hidden = true;
});

// ---------------------------------------------------------------- pre-join

async function acquireMedia() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const attempts = [
    [{ audio, video }, ''],
    [{ audio }, 'No camera available: joining with microphone only.'],
    [{ video }, 'No microphone available: joining with camera only.'],
  ];
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { stream: null, note: 'This browser cannot use a camera or microphone here (a secure https:// page is needed).' };
  }
  let lastErr = null;
  for (const [constraints, note] of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return { stream, note };
    } catch (e) {
      lastErr = e;
    }
  }
  const denied = lastErr && lastErr.name === 'NotAllowedError';
  return {
    stream: null,
    note: denied
      ? 'Camera and microphone are blocked. You can still join, listen and watch.'
      : 'No camera or microphone found. You can still join, listen and watch.',
  };
}

function updatePreview() {
  const s = state.stream;
  const hasVideo = !!(s && s.getVideoTracks().length);
  const hasAudio = !!(s && s.getAudioTracks().length);
  $('preview').srcObject = s;
  $('preview-off').hidden = hasVideo && state.wantVideo;
  $('pre-cam').textContent = state.wantVideo ? 'Stop camera' : 'Start camera';
  $('pre-cam').disabled = !hasVideo;
  $('pre-mic').textContent = state.wantAudio ? 'Mute' : 'Unmute';
  $('pre-mic').disabled = !hasAudio;
  if (s) {
    for (const t of s.getVideoTracks()) t.enabled = state.wantVideo;
    for (const t of s.getAudioTracks()) t.enabled = state.wantAudio;
  }
}

function checkRoomField() {
  const name = $('room').value;
  const problem = name ? roomname.roomNameProblem(name.trim()) : '';
  $('room-error').textContent = problem;
  $('room-error').hidden = !problem;
  const reason = name && !problem ? roomname.check(name, state.words) : '';
  const w = $('room-warning');
  w.textContent = reason ? `${roomname.MESSAGES[reason]} Use "New name" for one that is hard to guess.` : '';
  w.hidden = !reason;
}

function newName() {
  if (!state.words) return;
  $('room').value = roomname.generate(state.words);
  checkRoomField();
}

$('new-name').addEventListener('click', newName);
$('room').addEventListener('input', checkRoomField);
$('pre-mic').addEventListener('click', () => {
  state.wantAudio = !state.wantAudio;
  updatePreview();
});
$('pre-cam').addEventListener('click', () => {
  state.wantVideo = !state.wantVideo;
  updatePreview();
});
$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = $('room').value.trim();
  const problem = roomname.roomNameProblem(room);
  if (problem) {
    $('room-error').textContent = problem;
    $('room-error').hidden = false;
    $('room').focus();
    return;
  }
  join(room, cleanName($('display-name').value));
});

// ---------------------------------------------------------------- meeting

function show(view) {
  for (const id of ['prejoin', 'meeting', 'left']) $(id).hidden = id !== view;
}

function join(room, name) {
  $('room').value = room;
  $('display-name').value = name;
  const path = '/' + encodeURIComponent(room);
  if (location.pathname !== path || location.search) {
    history.replaceState(null, '', path + location.hash);
  }
  document.title = `${room} · meshmeet`;
  $('room-title').textContent = room;
  show('meeting');

  const session = new Session({ room, name, stream: state.stream, simulcast: url.simulcast, turnOnly: url.turn });
  session.muted = { audio: !state.wantAudio, video: !state.wantVideo };
  state.session = session;
  session.addEventListener('joined', (ev) => {
    if (ev.detail.resumed) state.resumes++;
    renderAll();
  });
  session.addEventListener('participants', renderAll);
  session.addEventListener('track', (ev) => onRemoteTrack(ev.detail));
  session.addEventListener('trackended', (ev) => onRemoteTrackEnded(ev.detail.trackId));
  session.addEventListener('speaker', renderSpeaker);
  session.addEventListener('chat', (ev) => onChat(ev.detail));
  session.addEventListener('status', (ev) => renderStatus(ev.detail.state));
  session.addEventListener('screen', (ev) => onScreen(ev.detail));
  session.addEventListener('error', (ev) => {
    state.errors.push(ev.detail);
    showBanner(ev.detail.message);
  });
  session.addEventListener('ended', (ev) => onEnded(ev.detail.reason));
  session.start();
  if (url.e2ee) {
    showBanner('End-to-end encryption is not available yet: this meeting is encrypted between you and the server only.');
  }

  renderControls();
  renderAll();
  state.timers.push(setInterval(sampleQuality, 2000));
  state.timers.push(setInterval(updatePrefs, 1000));
}

function displayName(p) {
  return p && p.name ? p.name : 'Guest';
}

function participantName(id) {
  const s = state.session;
  if (!s) return '';
  if (id === s.participant) return s.name || 'You';
  return displayName(s.participants.get(id));
}

// Tiles ---------------------------------------------------------------

const tiles = new Map(); // key -> element

function tileFor(key) {
  let el = tiles.get(key);
  if (!el) {
    el = $('tile-template').content.firstElementChild.cloneNode(true);
    el.dataset.key = key;
    tiles.set(key, el);
    $('tiles').append(el);
  }
  return el;
}

function removeTile(key) {
  const el = tiles.get(key);
  if (!el) return;
  const v = el.querySelector('video');
  v.srcObject = null;
  el.remove();
  tiles.delete(key);
}

function setTile(el, { name, stream, videoOff, audioMuted, mirror, participant, trackId }) {
  const v = el.querySelector('video');
  if (v.srcObject !== stream) v.srcObject = stream;
  v.classList.toggle('mirror', !!mirror);
  const off = !stream || videoOff;
  v.hidden = off;
  const avatar = el.querySelector('.avatar');
  avatar.hidden = !off;
  avatar.textContent = initials(name);
  el.querySelector('.tile-name').textContent = name;
  el.querySelector('.tile-muted').hidden = !audioMuted;
  el.setAttribute('aria-label', `${name}${audioMuted ? ', muted' : ''}${off ? ', camera off' : ''}`);
  el.setAttribute('role', 'group');
  el.dataset.participant = participant || '';
  if (trackId) el.dataset.track = trackId;
  else delete el.dataset.track;
}

function initials(name) {
  const parts = name.split(/\s+/).filter(Boolean);
  return parts.slice(0, 2).map((p) => [...p][0].toUpperCase()).join('') || '?';
}

const streams = new Map(); // trackId -> MediaStream holding that one track

function streamOf(trackId, track) {
  let s = streams.get(trackId);
  if (!s || s.getTracks()[0] !== track) {
    s = new MediaStream([track]);
    streams.set(trackId, s);
  }
  return s;
}

function renderTiles() {
  const s = state.session;
  if (!s) return;
  const want = new Set();

  // Our own camera and screen.
  want.add('local');
  const local = state.stream && state.stream.getVideoTracks().length ? state.stream : null;
  setTile(tileFor('local'), {
    name: `${s.name || 'You'} (you)`,
    stream: local,
    videoOff: s.muted.video,
    audioMuted: s.muted.audio,
    mirror: true,
    participant: s.participant,
  });
  if (s.screen) {
    want.add('local-screen');
    setTile(tileFor('local-screen'), {
      name: 'Your screen',
      stream: s.screen.stream,
      participant: s.participant,
    });
  }

  // Everyone else: one tile with the first video track (the camera), one
  // more tile per further video track (a screen share).
  for (const p of s.participants.values()) {
    const videos = [...s.tracks.values()].filter((t) => t.participant === p.id && t.kind === 'video' && s.remote.has(t.id));
    const name = displayName(p);
    const key = `p:${p.id}`;
    want.add(key);
    const cam = videos[0];
    setTile(tileFor(key), {
      name,
      stream: cam ? streamOf(cam.id, s.remote.get(cam.id)) : null,
      videoOff: p.muted.video,
      audioMuted: p.muted.audio,
      participant: p.id,
      trackId: cam && cam.id,
    });
    for (const t of videos.slice(1)) {
      const k = `t:${t.id}`;
      want.add(k);
      setTile(tileFor(k), {
        name: `${name} (screen)`,
        stream: streamOf(t.id, s.remote.get(t.id)),
        participant: p.id,
        trackId: t.id,
      });
    }
  }
  for (const key of [...tiles.keys()]) {
    if (!want.has(key)) removeTile(key);
  }
  const n = tiles.size;
  $('tiles').dataset.count = String(Math.min(n, 9));
  renderSpeaker();
}

function onRemoteTrack({ trackId, track }) {
  if (track.kind === 'audio') {
    let a = state.audioEls.get(trackId);
    if (!a) {
      a = document.createElement('audio');
      a.autoplay = true;
      a.dataset.track = trackId;
      document.body.append(a);
      state.audioEls.set(trackId, a);
    }
    a.srcObject = new MediaStream([track]);
    a.play().catch(() => {
      state.soundBlocked = true;
      $('enable-sound').hidden = false;
    });
  }
  renderAll();
}

function onRemoteTrackEnded(trackId) {
  const a = state.audioEls.get(trackId);
  if (a) {
    a.srcObject = null;
    a.remove();
    state.audioEls.delete(trackId);
  }
  streams.delete(trackId);
  renderAll();
}

$('enable-sound').addEventListener('click', () => {
  for (const a of state.audioEls.values()) a.play().catch(() => {});
  state.soundBlocked = false;
  $('enable-sound').hidden = true;
});

// The bridge sends the highest simulcast layer no taller than maxHeight:
// ask for the next usual layer height at or above the tile's height, so a
// 250-pixel tile gets 360p rather than 180p, and a small resize sends
// nothing.
const LAYER_HEIGHTS = [180, 360, 540, 720, 1080, 1440, 2160];

function layerHeight(px) {
  return LAYER_HEIGHTS.find((h) => h >= px) ?? LAYER_HEIGHTS[LAYER_HEIGHTS.length - 1];
}

/** Sends, per remote video tile, the height it is shown at (0: not shown). */
function updatePrefs() {
  const s = state.session;
  if (!s || !s.joined) return;
  const dpr = window.devicePixelRatio || 1;
  const visible = document.visibilityState === 'visible';
  for (const el of tiles.values()) {
    const trackId = el.dataset.track;
    if (!trackId) continue;
    const v = el.querySelector('video');
    const r = v.getBoundingClientRect();
    const onScreen = visible && !v.hidden && r.height > 0 && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
    s.setPrefs(trackId, onScreen ? layerHeight(r.height * dpr) : 0);
  }
}

// Participants ---------------------------------------------------------

function renderPeople() {
  const s = state.session;
  if (!s) return;
  const list = $('people-list');
  const items = [{ id: s.participant, name: `${s.name || 'You'} (you)`, muted: s.muted }];
  for (const p of s.participants.values()) items.push({ id: p.id, name: displayName(p), muted: p.muted });
  list.replaceChildren(
    ...items.map((p) => {
      const li = document.createElement('li');
      li.dataset.participant = p.id;
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = p.name;
      const flags = document.createElement('span');
      flags.className = 'person-flags';
      const f = [];
      if (p.muted.audio) f.push('mic off');
      if (p.muted.video) f.push('camera off');
      flags.textContent = f.join(', ');
      li.append(name, flags);
      return li;
    }),
  );
  $('people-count').textContent = String(items.length);
  renderSpeaker();
}

function renderSpeaker() {
  const s = state.session;
  const speaker = s ? s.speaker : '';
  for (const el of tiles.values()) {
    el.classList.toggle('speaking', !!speaker && el.dataset.participant === speaker);
  }
  for (const li of $('people-list').children) {
    li.classList.toggle('speaking', !!speaker && li.dataset.participant === speaker);
  }
}

function renderAll() {
  renderTiles();
  renderPeople();
  renderControls();
}

// Chat -----------------------------------------------------------------

function sendChat(text) {
  const s = state.session;
  if (!s || !s.joined) return false;
  text = String(text).trim();
  if (!text) return false;
  if (!s.sendChat(text)) return false;
  addChat({ participant: s.participant, name: s.name || 'You', text, ts: Date.now(), self: true, pending: true });
  return true;
}

function onChat(m) {
  const s = state.session;
  // After joining afresh (a refused resume), the server replays the room's
  // recent chat: skip what we already show.
  if (state.chat.some((c) => !c.pending && c.participant === m.participant && c.ts === m.ts && c.text === m.text)) return;
  const self = !!s && m.participant === s.participant;
  if (self) {
    // The server echoed our own message: confirm the pending copy.
    const p = state.chat.find((c) => c.self && c.pending && c.text === m.text);
    if (p) {
      p.pending = false;
      p.ts = m.ts;
      if (p.el) p.el.classList.remove('pending');
      return;
    }
  }
  addChat({ ...m, name: m.name || participantName(m.participant), self });
}

function addChat(m) {
  const li = document.createElement('li');
  li.className = m.self ? 'self' : '';
  if (m.pending) li.classList.add('pending');
  const head = document.createElement('div');
  head.className = 'chat-head';
  const who = document.createElement('span');
  who.className = 'chat-name';
  who.textContent = m.self ? 'You' : m.name || 'Guest';
  const when = document.createElement('time');
  const d = new Date(m.ts);
  when.dateTime = d.toISOString();
  when.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(who, when);
  const body = document.createElement('div');
  body.className = 'chat-text';
  body.textContent = m.text;
  li.append(head, body);
  const log = $('chat-log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  log.append(li);
  if (atBottom || m.self) log.scrollTop = log.scrollHeight;
  const entry = { participant: m.participant, name: m.name, text: m.text, ts: m.ts, self: !!m.self, pending: !!m.pending };
  Object.defineProperty(entry, 'el', { value: li, enumerable: false });
  state.chat.push(entry);
}

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('chat-input');
  if (sendChat(input.value)) input.value = '';
});

// Controls -------------------------------------------------------------

function renderControls() {
  const s = state.session;
  const hasAudio = !!(state.stream && state.stream.getAudioTracks().length);
  const hasVideo = !!(state.stream && state.stream.getVideoTracks().length);
  const mic = $('btn-mic');
  const cam = $('btn-cam');
  const muted = s ? s.muted : { audio: !state.wantAudio, video: !state.wantVideo };
  mic.textContent = muted.audio ? 'Unmute' : 'Mute';
  mic.classList.toggle('off', muted.audio);
  mic.disabled = !hasAudio;
  mic.title = hasAudio ? '' : 'No microphone';
  cam.textContent = muted.video ? 'Start camera' : 'Stop camera';
  cam.classList.toggle('off', muted.video);
  cam.disabled = !hasVideo;
  cam.title = hasVideo ? '' : 'No camera';
  const screen = $('btn-screen');
  const canShare = !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
  screen.disabled = !canShare || !(s && s.joined);
  screen.textContent = s && s.screen ? 'Stop sharing' : 'Share screen';
  screen.classList.toggle('on', !!(s && s.screen));
}

$('btn-mic').addEventListener('click', () => {
  const s = state.session;
  if (!s) return;
  s.setMuted('audio', !s.muted.audio);
  renderAll();
});

$('btn-cam').addEventListener('click', () => {
  const s = state.session;
  if (!s) return;
  s.setMuted('video', !s.muted.video);
  renderAll();
});

$('btn-screen').addEventListener('click', async () => {
  const s = state.session;
  if (!s || !s.joined) return;
  if (s.screen) {
    await s.stopScreenShare();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e.name !== 'NotAllowedError' && e.name !== 'AbortError') showBanner(`Cannot share the screen: ${e.message}`);
    return;
  }
  await s.startScreenShare(stream);
});

function onScreen() {
  renderAll();
}

// Closing or leaving the page leaves the meeting at once, rather than
// leaving a silent tile behind for the server's resume window.
window.addEventListener('pagehide', () => {
  if (state.session) state.session.leave();
});

$('btn-leave').addEventListener('click', () => {
  if (state.session) state.session.leave();
});

$('copy-link').addEventListener('click', async () => {
  const s = state.session;
  const link = `${location.origin}/${encodeURIComponent(s ? s.room : '')}`;
  try {
    await navigator.clipboard.writeText(link);
    $('copy-link').textContent = 'Link copied';
  } catch {
    showBanner(`Share this link: ${link}`);
  }
  setTimeout(() => {
    $('copy-link').textContent = 'Copy link';
  }, 2000);
});

function renderStatus(st) {
  const text = { connecting: 'Connecting…', reconnecting: 'Reconnecting…', connected: '', closed: '' }[st] ?? '';
  $('conn-status').textContent = text;
  renderControls();
}

async function sampleQuality() {
  const s = state.session;
  if (!s || !s.joined) return;
  state.quality = await state.meter.sample(s.pub, s.sub);
  // A media connection that dropped is poor whatever its last statistics.
  if ([s.pub, s.sub].some((pc) => pc && (pc.connectionState === 'disconnected' || pc.connectionState === 'failed'))) {
    state.quality = { ...state.quality, level: 'poor' };
  }
  const q = state.quality;
  const el = $('quality');
  el.dataset.level = q.level;
  const label = { good: 'good', fair: 'fair', poor: 'poor', unknown: 'measuring…' }[q.level];
  const detail = [];
  if (q.rtt != null) detail.push(`${Math.round(q.rtt * 1000)} ms`);
  if (q.loss != null) detail.push(`${(q.loss * 100).toFixed(1)} % loss`);
  $('quality-text').textContent = `Connection: ${label}`;
  el.title = `Connection quality: ${label}${detail.length ? ` (${detail.join(', ')})` : ''}`;
}

function onEnded(reason) {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  for (const a of state.audioEls.values()) {
    a.srcObject = null;
    a.remove();
  }
  state.audioEls.clear();
  for (const key of [...tiles.keys()]) removeTile(key);
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  const room = state.session ? state.session.room : '';
  const left = reason === 'You left the meeting.';
  $('left-title').textContent = left ? 'You left the meeting' : 'The meeting ended for you';
  $('left-reason').textContent = left ? `Room: ${room}` : reason;
  document.title = 'meshmeet';
  show('left');
}

$('rejoin').addEventListener('click', () => {
  const room = state.session ? state.session.room : url.room;
  location.assign(`/${encodeURIComponent(room)}?prejoin=0${location.hash}`);
});

// ---------------------------------------------------------------- start

async function main() {
  $('display-name').value = url.name;
  $('room').value = url.room;
  hooks.ready = roomname
    .loadWords()
    .then((w) => {
      state.words = w;
      if (!$('room').value) newName();
      else checkRoomField();
    })
    .catch((e) => {
      console.warn('meshmeet: word lists unavailable', e);
      $('new-name').disabled = true;
      checkRoomField();
    });

  if (!url.prejoin && url.room && !roomname.roomNameProblem(url.room)) {
    show('meeting');
    const { stream, note } = await acquireMedia();
    state.stream = stream;
    if (note) showBanner(note);
    join(url.room, url.name);
    return;
  }
  show('prejoin');
  const { stream, note } = await acquireMedia();
  state.stream = stream;
  $('media-note').textContent = note;
  updatePreview();
}

main();
