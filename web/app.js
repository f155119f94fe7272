// meshmeet web client: the pre-join screen and the meeting view. This
// module holds the page's state, the pre-join screen and the wiring of a
// Session to the parts of the meeting view, each a module of its own:
// tiles.js (videos, speaker highlight, remote audio), people.js
// (participant list), chat.js, controls.js (buttons and status) and
// dialogs.js (banner, after-meeting screen).
//
// URL:  /                 pre-join with a generated room name
//       /<room>           pre-join for that room (the name is URL-encoded)
//       ?prejoin=0        join straight away
//       ?simulcast=0      send one video layer only
//       ?turn=1           media only through the node's TURN server
//                         (iceTransportPolicy "relay"), to check TURN
//       ?probe=0          time no region round trips: the node the page
//                         reached keeps the join unless its region is
//                         full (placement, docs/cluster.md)
//       ?e2eeprobe=1      keep hashes of encrypted frames (tests)
//       ?e2eestreams=1    encrypt with createEncodedStreams where it exists
//                         (tests of the fallback)
//       #name=<display name>&e2ee=<passphrase>
// The fragment never reaches the server. e2ee is the end-to-end encryption
// passphrase (e2ee.js, e2ee-ui.js; docs/e2ee.md).
//
// window.meshmeet exposes the state for tests and for debugging.

import * as roomname from './roomname.js';
import { Session } from './session.js';
import { measureRegions } from './probe.js';
import { Tiles, RemoteAudio } from './tiles.js';
import { People } from './people.js';
import { Chat } from './chat.js';
import { Controls } from './controls.js';
import { Moderation } from './moderation.js';
import { initDialogs, showBanner, showLeft, showView } from './dialogs.js';
import { initPasswordControls, renderPassword, showRefused, takeToken } from './dialogs.js';
import * as e2eeUI from './e2ee-ui.js';

const $ = (id) => document.getElementById(id);

const url = parseURL();
// A token given as ?jwt= leaves the address bar at once (dialogs.js).
const token = takeToken();
const state = {
  words: null,
  stream: null, // local microphone + camera
  wantAudio: true,
  wantVideo: true,
  session: null,
  errors: [],
  resumes: 0, // times the WebSocket dropped and the session resumed
  timers: [],
};

const tiles = new Tiles($('tiles'), $('tile-template'));
const audio = new RemoteAudio($('enable-sound'));
const people = new People($('people-list'), $('people-count'));
const chat = new Chat({ log: $('chat-log'), form: $('chat-form'), input: $('chat-input') }, () => state.session);
const controls = new Controls({
  session: () => state.session,
  media: () => ({ stream: state.stream, audio: state.wantAudio, video: state.wantVideo }),
  changed: renderAll,
  notify: showBanner,
});
const moderation = new Moderation({ session: () => state.session, notify: showBanner, changed: renderAll });

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
  get quality() { return { ...controls.quality }; },
  get chat() { return chat.entries.map((m) => ({ ...m })); },
  get errors() { return [...state.errors]; },
  get resumes() { return state.resumes; },
  /** Base URL of the node the session talks to after redirects ('' : the page's). */
  get node() { return state.session ? state.session.base : ''; },
  /** The round trips per region sent with the join. */
  get rtts() { return state.session ? state.session.rtts.map((r) => ({ ...r })) : []; },
  /** The maxHeight last sent per remote video track ID. */
  get prefs() { return state.session ? state.session.prefs() : {}; },
  get session() { return state.session; },
  /** End-to-end encryption: {passphrase, support, active, mode, required, stats}. */
  get e2ee() { return e2eeUI.hookState(state.session, url); },
  /** For tests: hashes of the frames encrypted and received ({tx, rx}), with ?e2eeprobe=1. */
  e2eeProbe: () => (state.session && state.session.e2ee ? state.session.e2ee.readProbe() : Promise.resolve(null)),
  sendChat: (text) => chat.send(text),
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
    probe: q.get('probe') !== '0',
    name: cleanName(f.get('name') || ''),
    e2ee: f.get('e2ee') || '',
    e2eeProbe: q.get('e2eeprobe') === '1',
    e2eeManaged: f.get('e2ee-managed') === '1',
    e2eeStreams: q.get('e2eestreams') === '1',
    e2eeRequired: q.get('e2eerequired') === '1',
    refused: q.get('refused') === '1', // the last join was refused
  };
}

function cleanName(s) {
  return [...s.trim()].filter((c) => roomname.isPrintable(c)).slice(0, 64).join('').trim();
}

initDialogs({
  onRejoin: () => {
    const room = state.session ? state.session.room : url.room;
    location.assign(`/${encodeURIComponent(room)}?prejoin=0${location.hash}`);
  },
});
e2eeUI.initSecurity(
  () => state.session,
  (passphrase) => {
    // A new passphrase: join again with it (in the fragment, never sent).
    const f = new URLSearchParams(location.hash.slice(1));
    f.set('e2ee', passphrase);
    const room = state.session ? state.session.room : url.room;
    if (state.session) state.session.leave();
    location.assign(`/${encodeURIComponent(room)}?prejoin=0#${f.toString()}`);
  },
);

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

function join(room, name) {
  $('room').value = room;
  $('display-name').value = name;
  const path = '/' + encodeURIComponent(room);
  if (location.pathname !== path || location.search) {
    history.replaceState(null, '', path + location.hash);
  }
  document.title = `${room} · meshmeet`;
  $('room-title').textContent = room;
  showView('meeting');

  const { e2ee, warning } = e2eeUI.makeE2EE(room, url);
  if (warning) showBanner(warning);
  const session = new Session({ room, name, stream: state.stream, simulcast: url.simulcast, turnOnly: url.turn, e2ee, rtts: state.rtts });
  session.muted = { audio: !state.wantAudio, video: !state.wantVideo };
  session.password = $('room-password').value;
  session.token = token;
  state.session = session;
  moderation.attach(session);
  session.addEventListener('joined', (ev) => {
    if (ev.detail.resumed) state.resumes++;
    renderAll();
  });
  session.addEventListener('participants', renderAll);
  session.addEventListener('track', (ev) => onRemoteTrack(ev.detail));
  session.addEventListener('trackended', (ev) => onRemoteTrackEnded(ev.detail.trackId));
  session.addEventListener('speaker', renderSpeaker);
  session.addEventListener('forwarding', renderAll); // videos last-N pauses (tiles.js)
  session.addEventListener('chat', (ev) => chat.receive(ev.detail));
  session.addEventListener('status', (ev) => controls.renderStatus(ev.detail.state));
  session.addEventListener('screen', renderAll);
  session.addEventListener('error', (ev) => {
    state.errors.push(ev.detail);
    if (ev.detail.code === 'e2ee-required') state.e2eeRefused = true;
    if (ev.detail.code === 'refused') state.refused = true;
    showBanner(ev.detail.message);
  });
  session.addEventListener('ended', (ev) => onEnded(ev.detail.reason));
  session.addEventListener('security', renderAll);
  e2ee.addEventListener('stats', () => {
    tiles.render(state.session, state.stream);
    e2eeUI.render(state.session);
  });
  // Our key is derived before the join: no frame waits for it.
  e2ee.ready.then(() => session.start(), (e) => {
    console.warn('meshmeet: E2EE key derivation failed', e);
    session.start();
  });

  renderAll();
  state.timers.push(setInterval(() => controls.sampleQuality(), 2000));
  state.timers.push(setInterval(() => tiles.sendPrefs(state.session), 1000));
}

function renderSpeaker() {
  const speaker = state.session ? state.session.speaker : '';
  tiles.highlight(speaker);
  people.highlight(speaker);
}

function renderAll() {
  tiles.render(state.session, state.stream);
  e2eeUI.render(state.session);
  people.render(state.session);
  controls.render();
  renderPassword(state.session);
  renderSpeaker();
}

function onRemoteTrack({ trackId, track }) {
  if (track.kind === 'audio') audio.add(trackId, track);
  renderAll();
}

function onRemoteTrackEnded(trackId) {
  audio.remove(trackId);
  tiles.trackEnded(trackId);
  renderAll();
}

// Closing or leaving the page leaves the meeting at once, rather than
// leaving a silent tile behind for the server's resume window.
window.addEventListener('pagehide', () => {
  if (state.session) state.session.leave();
});

function onEnded(reason) {
  if (state.refused && state.session) {
    // Back to the pre-join screen, which offers the password field.
    location.assign(`/${encodeURIComponent(state.session.room)}?refused=1${location.hash}`);
    return;
  }
  if (state.e2eeRefused && state.session) {
    // Back to the pre-join screen, which says the room requires E2EE.
    location.assign(`/${encodeURIComponent(state.session.room)}?e2eerequired=1${location.hash}`);
    return;
  }
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  audio.clear();
  tiles.clear();
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  document.title = 'meshmeet';
  showLeft({ left: reason === 'You left the meeting.', room: state.session ? state.session.room : '', reason });
}

// ---------------------------------------------------------------- start

async function main() {
  // Round trips to each region, measured while the pre-join screen shows
  // (probe.js); the join waits for them, bounded by their deadline.
  state.rtts = url.probe ? measureRegions() : Promise.resolve([]);
  $('display-name').value = url.name;
  initPasswordControls(() => state.session);
  if (url.refused) showRefused();
  e2eeUI.initPrejoin(url);
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
    showView('meeting');
    const { stream, note } = await acquireMedia();
    state.stream = stream;
    if (note) showBanner(note);
    join(url.room, url.name);
    return;
  }
  showView('prejoin');
  const { stream, note } = await acquireMedia();
  state.stream = stream;
  $('media-note').textContent = note;
  updatePreview();
}

main();
