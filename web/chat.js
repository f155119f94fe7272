// The meeting's chat: the log, the message box, and our own messages shown
// as pending until the server echoes them.

import { participantName } from './people.js';

/** Chat shows the room's messages and sends ours. */
export class Chat {
  /**
   * @param {object} els
   * @param {HTMLOListElement} els.log     the message list
   * @param {HTMLFormElement} els.form     the message form
   * @param {HTMLInputElement} els.input   its text box
   * @param {() => import('./session.js').Session|null} session  the current session
   */
  constructor({ log, form, input }, session) {
    this.log = log;
    this.session = session;
    /** Messages shown, oldest first: {participant, name, text, ts, self, pending}. */
    this.entries = [];
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (this.send(input.value)) input.value = '';
    });
  }

  /** Sends text to everyone; false when there is nothing to send or no session. */
  send(text) {
    const s = this.session();
    if (!s || !s.joined) return false;
    text = String(text).trim();
    if (!text) return false;
    if (!s.sendChat(text)) return false;
    this._add({ participant: s.participant, name: s.name || 'You', text, ts: Date.now(), self: true, pending: true });
    return true;
  }

  /** Shows a message the server sent (the session's chat event). */
  receive(m) {
    const s = this.session();
    // After joining afresh (a refused resume), the server replays the room's
    // recent chat: skip what we already show.
    if (this.entries.some((c) => !c.pending && c.participant === m.participant && c.ts === m.ts && c.text === m.text)) return;
    const self = !!s && m.participant === s.participant;
    if (self) {
      // The server echoed our own message: confirm the pending copy.
      const p = this.entries.find((c) => c.self && c.pending && c.text === m.text);
      if (p) {
        p.pending = false;
        p.ts = m.ts;
        if (p.el) p.el.classList.remove('pending');
        return;
      }
    }
    this._add({ ...m, name: m.name || participantName(s, m.participant), self });
  }

  _add(m) {
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
    const log = this.log;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(li);
    if (atBottom || m.self) log.scrollTop = log.scrollHeight;
    const entry = { participant: m.participant, name: m.name, text: m.text, ts: m.ts, self: !!m.self, pending: !!m.pending };
    Object.defineProperty(entry, 'el', { value: li, enumerable: false });
    this.entries.push(entry);
  }
}
