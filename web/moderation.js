// Moderation in the web client (docs/security.md): the buttons on each
// other participant's tile and list entry (mute, stop camera, remove), the
// lobby (a toggle in the security dialog; waiting people with Admit and
// Deny in the participant list, people.js; the waiting screen we see while
// we wait), "End meeting for all", the speaker stats view, and a notice of
// every moderation action in the meeting ("Alice muted Bob"), as Jitsi
// Meet shows them. Under soft moderation (the default) everyone may use
// them; with --auth jwt the server refuses non-moderators and the page
// shows its answer.
//
// The elements are made here, not in index.html, so that this module owns
// them.

import { participantName } from './people.js';

const $ = (id) => document.getElementById(id);

/** A button. */
function button(text, title, onClick, className = 'secondary small') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

/**
 * A button that acts on a second click within a few seconds (no modal
 * confirm(): it would stop the page, and the meeting, until answered).
 */
function confirmButton(text, confirmText, title, act, className) {
  let armed = 0;
  const b = button(text, title, () => {
    if (armed) {
      clearTimeout(armed);
      armed = 0;
      b.textContent = text;
      act();
      return;
    }
    b.textContent = confirmText;
    armed = setTimeout(() => {
      armed = 0;
      b.textContent = text;
    }, 4000);
  }, className);
  return b;
}

/**
 * The moderation buttons for another participant (id), for its tile and
 * its entry in the participant list. session() returns the current
 * Session or null.
 */
export function participantActions(id, session) {
  const box = document.createElement('span');
  box.className = 'mod-actions';
  box.dataset.participant = id;
  const s0 = session();
  box.hidden = !(s0 && s0.mayModerate);
  const act = (f) => () => {
    const s = session();
    if (s && s.joined) f(s);
  };
  box.append(
    button('Mute', 'Mute their microphone (they can unmute it)', act((s) => s.muteParticipant(id))),
    button('Stop camera', 'Ask them to stop their camera', act((s) => s.stopCamera(id))),
    confirmButton('Remove', 'Confirm remove', 'Remove them from the meeting', act((s) => s.removeParticipant(id)), 'secondary small danger'),
  );
  return box;
}

/** The Admit and Deny buttons for a waiting person (id). */
export function lobbyActions(id, session) {
  const box = document.createElement('span');
  box.className = 'mod-actions';
  box.dataset.waiting = id;
  const act = (yes) => () => {
    const s = session();
    if (s && s.joined) s.admit(id, yes);
  };
  box.append(button('Admit', 'Let them in', act(true), 'primary small'), button('Deny', 'Turn them away', act(false)));
  return box;
}

/** The sentence a moderation event shows, from our point of view. */
export function describe(s, { action, by, participant }) {
  const who = by === s.participant ? 'You' : participantName(s, by);
  const whom = participant === s.participant ? 'you' : participantName(s, participant);
  switch (action) {
    case 'mute':
      return participant === s.participant
        ? `${who} muted your microphone. You can unmute it.`
        : `${who} muted ${whom}.`;
    case 'stop-camera':
      return participant === s.participant
        ? `${who} stopped your camera. You can start it again.`
        : `${who} asked ${whom} to stop their camera.`;
    case 'remove':
      return `${who} removed ${whom} from the meeting.`;
    case 'end':
      return `${who} ended the meeting for everyone.`;
    case 'lobby-on':
      return `${who} turned the lobby on: people who join now wait to be let in.`;
    case 'lobby-off':
      return `${who} turned the lobby off.`;
    case 'admit':
      return `${who} let someone in from the lobby.`;
    case 'deny':
      return `${who} turned someone away from the lobby.`;
    default:
      return '';
  }
}

/** Formats milliseconds as m:ss. */
function duration(ms) {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Moderation wires the meeting-wide moderation controls to the session. */
export class Moderation {
  /**
   * @param {object} deps
   * @param {() => import('./session.js').Session|null} deps.session  the current session
   * @param {(text: string) => void} deps.notify  shows a message to the user
   * @param {() => void} deps.changed  re-renders the meeting view
   */
  constructor({ session, notify, changed }) {
    this.session = session;
    this.notify = notify;
    this.changed = changed;
    this.stats = [];
    this.statsTimer = 0;
    this._build();
  }

  _build() {
    // The lobby toggle, in the security dialog.
    const close = $('security-close');
    if (close) {
      const sec = document.createElement('section');
      sec.id = 'security-lobby';
      const h = document.createElement('h3');
      h.textContent = 'Lobby';
      const p = document.createElement('p');
      p.className = 'note';
      p.textContent = 'With the lobby on, people who join wait until someone in the meeting lets them in. They see nothing of the meeting while they wait.';
      const label = document.createElement('label');
      label.className = 'check';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.id = 'lobby-on';
      box.addEventListener('change', () => {
        const s = this.session();
        if (s && s.joined) s.setLobby(box.checked);
      });
      label.append(box, ' Lobby: let people in one by one');
      sec.append(h, p, label);
      close.before(sec);
    }

    // End meeting for all, in the controls bar.
    const leave = $('btn-leave');
    if (leave) {
      const end = confirmButton('End meeting for all', 'Click again to end for all', 'Remove everyone, you included, from the meeting',
        () => {
          const s = this.session();
          if (s && s.joined) s.endMeeting();
        }, 'control danger');
      end.id = 'btn-end-all';
      leave.after(end);
    }

    // Speaker stats, in the sidebar under the participant list.
    const people = document.querySelector('.sidebar .people');
    if (people) {
      const sec = document.createElement('section');
      sec.className = 'speaker-stats';
      sec.setAttribute('aria-labelledby', 'stats-title');
      const h = document.createElement('h2');
      h.id = 'stats-title';
      h.textContent = 'Speaker stats ';
      const toggle = button('Show', 'Who has spoken for how long in this meeting', () => {
        const open = list.hidden;
        list.hidden = !open;
        toggle.textContent = open ? 'Hide' : 'Show';
        if (open) this._pollStats();
        else this._stopStats();
      });
      toggle.id = 'stats-toggle';
      h.append(toggle);
      const list = document.createElement('ol');
      list.id = 'stats-list';
      list.className = 'people-list';
      list.hidden = true;
      sec.append(h, list);
      people.after(sec);
      this.statsList = list;
    }

    // The waiting screen, over the meeting view while we are in the lobby.
    const meeting = $('meeting');
    if (meeting) {
      const w = document.createElement('section');
      w.id = 'lobby-waiting';
      w.className = 'card';
      w.style.cssText = 'margin:15vh auto 0;max-width:32rem;';
      w.hidden = true;
      w.setAttribute('role', 'status');
      const h = document.createElement('h2');
      h.textContent = 'Waiting to be let in';
      const p = document.createElement('p');
      p.className = 'note';
      p.textContent = 'The meeting has a lobby. Someone in the meeting will let you in.';
      const row = document.createElement('div');
      row.className = 'row';
      row.append(button('Leave', 'Stop waiting', () => {
        const s = this.session();
        if (s) s.leave();
      }, 'secondary'));
      w.append(h, p, row);
      meeting.prepend(w);
    }
  }

  /** Follows session s's moderation events. */
  attach(s) {
    s.addEventListener('waiting', () => this._showWaiting(true));
    s.addEventListener('joined', () => {
      this._showWaiting(false);
      this.render();
    });
    s.addEventListener('moderation', (ev) => {
      const text = describe(s, ev.detail);
      if (text) this.notify(text);
      this.render();
      this.changed();
    });
    s.addEventListener('lobby', () => {
      this.render();
      this.changed();
    });
    s.addEventListener('speakerstats', (ev) => {
      this.stats = ev.detail.stats;
      this._renderStats();
    });
    s.addEventListener('ended', () => {
      this._stopStats();
      this._showWaiting(false);
    });
  }

  _showWaiting(on) {
    const w = $('lobby-waiting');
    if (!w) return;
    w.hidden = !on;
    for (const el of document.querySelectorAll('#meeting > .stage, #meeting > .controls, #meeting > .topbar')) el.hidden = on;
  }

  /**
   * Renders the lobby toggle from the session's state, and shows the
   * meeting-wide controls only to those who may moderate.
   */
  render() {
    const s = this.session();
    const box = $('lobby-on');
    if (box && s) box.checked = !!(s.lobby && s.lobby.on);
    const may = !!(s && s.mayModerate);
    for (const id of ['btn-end-all', 'security-lobby']) {
      const el = $(id);
      if (el) el.hidden = !may;
    }
  }

  _pollStats() {
    this._stopStats();
    const ask = () => {
      const s = this.session();
      if (s) s.requestSpeakerStats();
    };
    ask();
    this.statsTimer = setInterval(ask, 2000);
  }

  _stopStats() {
    clearInterval(this.statsTimer);
    this.statsTimer = 0;
  }

  _renderStats() {
    const s = this.session();
    if (!this.statsList || !s) return;
    const rows = [...this.stats].sort((a, b) => b.ms - a.ms);
    this.statsList.replaceChildren(
      ...rows.map((r) => {
        const li = document.createElement('li');
        li.dataset.participant = r.participant;
        const name = document.createElement('span');
        name.className = 'person-name';
        const known = r.participant === s.participant || s.participants.has(r.participant);
        name.textContent = known ? participantName(s, r.participant) : 'Someone who left';
        const t = document.createElement('span');
        t.className = 'person-flags';
        t.textContent = duration(r.ms);
        li.append(name, t);
        return li;
      }),
    );
  }
}
