// The participant list beside the tiles, and the names the other modules
// show for a participant. Each other participant has the moderation
// buttons, and people waiting in the lobby are listed with Admit and Deny
// (moderation.js).

import { participantActions, lobbyActions } from './moderation.js';

/** The name to show for a participant: its display name or "Guest". */
export function displayName(p) {
  return p && p.name ? p.name : 'Guest';
}

/** The name to show for a participant ID of session s ("You" for us). */
export function participantName(s, id) {
  if (!s) return '';
  if (id === s.participant) return s.name || 'You';
  return displayName(s.participants.get(id));
}

/** Puts an entry's moderation buttons on a row of their own under its name. */
function actionsRow(li, box) {
  li.style.flexWrap = 'wrap';
  box.style.cssText = 'display:flex;flex-wrap:wrap;gap:4px;flex-basis:100%;margin-top:4px;';
  return box;
}

/** People renders the list of participants, us first. */
export class People {
  /**
   * @param {HTMLElement} list   the <ul> of participants
   * @param {HTMLElement} count  where the number of participants goes
   */
  constructor(list, count) {
    this.list = list;
    this.count = count;
  }

  /** Renders session s's participants. */
  render(s) {
    if (!s) return;
    const items = [{ id: s.participant, name: `${s.name || 'You'} (you)`, muted: s.muted }];
    for (const p of s.participants.values()) items.push({ id: p.id, name: displayName(p), muted: p.muted });
    this.list.replaceChildren(
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
        if (p.id !== s.participant && s.mayModerate) li.append(actionsRow(li, participantActions(p.id, () => s)));
        return li;
      }),
      ...((s.lobby && s.lobby.waiting) || []).map((w) => {
        const li = document.createElement('li');
        li.dataset.waiting = w.id;
        li.className = 'waiting';
        const name = document.createElement('span');
        name.className = 'person-name';
        name.textContent = `${displayName(w)} (waiting in the lobby)`;
        li.append(name, actionsRow(li, lobbyActions(w.id, () => s)));
        return li;
      }),
    );
    this.count.textContent = String(items.length);
  }

  /** Highlights the active speaker (a participant ID, '' for none). */
  highlight(speaker) {
    for (const li of this.list.children) {
      li.classList.toggle('speaking', !!speaker && li.dataset.participant === speaker);
    }
  }
}
