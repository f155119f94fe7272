// The video tiles: ours, each other participant's camera, every screen
// share in a tile of its own; the active-speaker highlight; the height each
// remote video is shown at, which the bridge uses to pick a simulcast
// layer; and the <audio> elements that play the others' microphones.

import { displayName } from './people.js';
import { participantActions } from './moderation.js';
import { tileState } from './e2ee-ui.js';

// What a tile says of its media's end-to-end encryption (e2ee-ui.js).
const E2EE_LABELS = {
  e2ee: 'E2EE',
  verified: 'E2EE · verified',
  failing: 'Encrypted: no key to decrypt',
  clear: 'Not E2EE',
};

// The bridge sends the highest simulcast layer no taller than maxHeight:
// ask for the next usual layer height at or above the tile's height, so a
// 250-pixel tile gets 360p rather than 180p, and a small resize sends
// nothing.
const LAYER_HEIGHTS = [180, 360, 540, 720, 1080, 1440, 2160];

function layerHeight(px) {
  return LAYER_HEIGHTS.find((h) => h >= px) ?? LAYER_HEIGHTS[LAYER_HEIGHTS.length - 1];
}

function initials(name) {
  const parts = name.split(/\s+/).filter(Boolean);
  return parts.slice(0, 2).map((p) => [...p][0].toUpperCase()).join('') || '?';
}

/** Tiles renders one tile per video in a grid. */
export class Tiles {
  /**
   * @param {HTMLElement} grid              the tiles' container
   * @param {HTMLTemplateElement} template  a tile
   */
  constructor(grid, template) {
    this.grid = grid;
    this.template = template;
    /** Tile elements by key: 'local', 'local-screen', 'p:<participant>', 't:<track>'. */
    this.tiles = new Map();
    /** A MediaStream holding one remote track, by track ID. */
    this.streams = new Map();
    /** The session last rendered, for the pin controls. */
    this.session = null;
  }

  _tileFor(key) {
    let el = this.tiles.get(key);
    if (!el) {
      el = this.template.content.firstElementChild.cloneNode(true);
      el.dataset.key = key;
      el.append(this._pinButton(el), pausedNote());
      // Another participant's camera tile: the moderation buttons.
      if (key.startsWith('p:')) {
        const mod = participantActions(key.slice(2), () => this.session);
        mod.style.cssText = 'position:absolute;bottom:36px;right:8px;display:flex;gap:4px;';
        el.append(mod);
      }
      this.tiles.set(key, el);
      this.grid.append(el);
    }
    return el;
  }

  // _pinButton makes a tile's pin control: a pinned video is forwarded
  // whatever the room's last-N says (in a large meeting the bridge sends
  // only the most recent speakers' video).
  _pinButton(el) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'tile-pin';
    b.hidden = true;
    b.style.cssText = 'position:absolute;top:8px;right:8px;';
    b.addEventListener('click', () => {
      const s = this.session;
      const trackId = el.dataset.track;
      if (!s || !trackId) return;
      s.setPin(trackId, !s.isPinned(trackId));
      setPin(el, s.isPinned(trackId));
    });
    return b;
  }

  _remove(key) {
    const el = this.tiles.get(key);
    if (!el) return;
    el.querySelector('video').srcObject = null;
    el.remove();
    this.tiles.delete(key);
  }

  _streamOf(trackId, track) {
    let s = this.streams.get(trackId);
    if (!s || s.getTracks()[0] !== track) {
      s = new MediaStream([track]);
      this.streams.set(trackId, s);
    }
    return s;
  }

  /**
   * Renders session s: our camera (localStream, may be null) and screen,
   * then everyone else's. Tiles of what went away are removed.
   */
  render(s, localStream) {
    if (!s) return;
    this.session = s;
    const want = new Set();

    // Our own camera and screen.
    want.add('local');
    const local = localStream && localStream.getVideoTracks().length ? localStream : null;
    setTile(this._tileFor('local'), {
      name: `${s.name || 'You'} (you)`,
      stream: local,
      videoOff: s.muted.video,
      audioMuted: s.muted.audio,
      mirror: true,
      participant: s.participant,
      e2ee: s.e2ee ? (s.e2ee.active ? 'e2ee' : 'clear') : '',
    });
    if (s.screen) {
      want.add('local-screen');
      setTile(this._tileFor('local-screen'), {
        name: 'Your screen',
        stream: s.screen.stream,
        participant: s.participant,
        e2ee: s.e2ee ? (s.e2ee.active ? 'e2ee' : 'clear') : '',
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
      setTile(this._tileFor(key), {
        name,
        stream: cam ? this._streamOf(cam.id, s.remote.get(cam.id)) : null,
        videoOff: p.muted.video,
        audioMuted: p.muted.audio,
        participant: p.id,
        trackId: cam && cam.id,
        paused: !!cam && s.isPaused(cam.id),
        e2ee: tileState(s, p.id, cam && cam.id),
      });
      for (const t of videos.slice(1)) {
        const k = `t:${t.id}`;
        want.add(k);
        setTile(this._tileFor(k), {
          name: `${name} (screen)`,
          stream: this._streamOf(t.id, s.remote.get(t.id)),
          participant: p.id,
          trackId: t.id,
          paused: s.isPaused(t.id),
          e2ee: tileState(s, p.id, t.id),
        });
      }
    }
    for (const [key, el] of this.tiles) {
      if (!want.has(key)) this._remove(key);
      else setPin(el, !!el.dataset.track && s.isPinned(el.dataset.track));
    }
    this.grid.dataset.count = String(Math.min(this.tiles.size, 9));
  }

  /** Forgets a remote track that went away. */
  trackEnded(trackId) {
    this.streams.delete(trackId);
  }

  /** Highlights the active speaker's tiles (a participant ID, '' for none). */
  highlight(speaker) {
    for (const el of this.tiles.values()) {
      el.classList.toggle('speaking', !!speaker && el.dataset.participant === speaker);
    }
  }

  /** Tells session s, per remote video tile, the height it is shown at (0: not shown). */
  sendPrefs(s) {
    if (!s || !s.joined) return;
    const dpr = window.devicePixelRatio || 1;
    const visible = document.visibilityState === 'visible';
    for (const el of this.tiles.values()) {
      const trackId = el.dataset.track;
      if (!trackId) continue;
      const v = el.querySelector('video');
      // A video last-N pauses is hidden behind the avatar: keep asking
      // for the tile's height, so it shows at once when it resumes.
      const paused = el.dataset.paused === '1';
      const r = (paused ? el : v).getBoundingClientRect();
      const onScreen = visible && (paused || !v.hidden) && r.height > 0 && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
      s.setPrefs(trackId, onScreen ? layerHeight(r.height * dpr) : 0);
    }
  }

  /** Removes every tile. */
  clear() {
    for (const key of [...this.tiles.keys()]) this._remove(key);
  }
}

function setTile(el, { name, stream, videoOff, audioMuted, mirror, participant, trackId, paused = false, e2ee = '' }) {
  const v = el.querySelector('video');
  if (v.srcObject !== stream) v.srcObject = stream;
  v.classList.toggle('mirror', !!mirror);
  // Paused by last-N (and not turned off by its owner): the bridge sends
  // no frames, so show the person instead of a frozen last frame.
  paused = !!paused && !videoOff;
  const off = !stream || videoOff || paused;
  el.dataset.paused = paused ? '1' : '';
  const note = el.querySelector('.tile-paused');
  if (note) note.hidden = !paused;
  v.hidden = off;
  const avatar = el.querySelector('.avatar');
  avatar.hidden = !off;
  avatar.textContent = initials(name);
  el.querySelector('.tile-name').textContent = name;
  el.querySelector('.tile-muted').hidden = !audioMuted;
  const lock = el.querySelector('.tile-e2ee');
  if (lock) {
    lock.textContent = E2EE_LABELS[e2ee] || '';
    lock.hidden = !e2ee;
  }
  el.dataset.e2ee = e2ee;
  const state = paused ? ', video paused: not among the most recent speakers' : off ? ', camera off' : '';
  el.setAttribute('aria-label', `${name}${audioMuted ? ', muted' : ''}${state}`);
  el.setAttribute('role', 'group');
  el.dataset.participant = participant || '';
  if (trackId) el.dataset.track = trackId;
  else delete el.dataset.track;
}

// pausedNote is a tile's "video paused by last-N" note, shown over the
// avatar while the bridge does not send that video to us.
function pausedNote() {
  const d = document.createElement('div');
  d.className = 'tile-paused';
  d.hidden = true;
  d.textContent = 'Video paused: not among the most recent speakers. Pin to watch.';
  return d;
}

// setPin shows a tile's pin control for a remote video (hidden on our own
// tiles and on tiles without video) in its pinned or unpinned state.
function setPin(el, pinned) {
  const b = el.querySelector('.tile-pin');
  if (!b) return;
  const remote = !!el.dataset.track;
  b.hidden = !remote;
  b.textContent = pinned ? 'Unpin' : 'Pin';
  b.title = pinned ? 'Stop always showing this video' : 'Always show this video, even when others speak';
  b.setAttribute('aria-pressed', String(pinned));
  el.classList.toggle('pinned', pinned);
}

/**
 * RemoteAudio plays each remote audio track in an <audio> element. When
 * the browser refuses to play before the user has interacted with the
 * page, it shows a button that turns the sound on.
 */
export class RemoteAudio {
  /** @param {HTMLButtonElement} button  "Click to turn on sound" */
  constructor(button) {
    this.button = button;
    /** <audio> elements by track ID. */
    this.els = new Map();
    this.blocked = false;
    button.addEventListener('click', () => {
      for (const a of this.els.values()) a.play().catch(() => {});
      this.blocked = false;
      button.hidden = true;
    });
  }

  /** Plays a remote audio track. */
  add(trackId, track) {
    let a = this.els.get(trackId);
    if (!a) {
      a = document.createElement('audio');
      a.autoplay = true;
      a.dataset.track = trackId;
      document.body.append(a);
      this.els.set(trackId, a);
    }
    a.srcObject = new MediaStream([track]);
    a.play().catch(() => {
      this.blocked = true;
      this.button.hidden = false;
    });
  }

  /** Stops playing a track that went away. */
  remove(trackId) {
    const a = this.els.get(trackId);
    if (!a) return;
    a.srcObject = null;
    a.remove();
    this.els.delete(trackId);
  }

  /** Stops playing everything. */
  clear() {
    for (const id of [...this.els.keys()]) this.remove(id);
  }
}
