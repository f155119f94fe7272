// End-to-end encryption in the page's views: the passphrase field and the
// "this room requires E2EE" note of the pre-join screen, the E2EE badge of
// the top bar and the E2EE section of the security dialog (the moderator's
// toggle, a new passphrase). e2ee.js does the cryptography.

import { E2EE, support } from './e2ee.js';
import { displayName } from './people.js';

const $ = (id) => document.getElementById(id);

const MESSAGES = {
  required: 'This room requires end-to-end encryption: enter the meeting\'s passphrase (everyone types the same one) and join again.',
  unsupported: 'This browser cannot encrypt media end to end, and this room requires it: use a recent Chromium, Chrome, Edge, Firefox or Safari.',
  noBrowser: 'This browser cannot encrypt media end to end: this meeting is encrypted between you and the server only.',
};

/** Fills the pre-join passphrase field from the URL fragment (#e2ee=). */
export function initPrejoin(url) {
  if (url.e2ee) $('e2ee-passphrase').value = url.e2ee;
  if (url.e2eeManaged) $('e2ee-managed').checked = true;
  if (url.e2eeRequired) showRequired();
}

/** Says on the pre-join screen that the room requires E2EE. */
export function showRequired() {
  const n = $('e2ee-note');
  n.textContent = support() ? MESSAGES.required : MESSAGES.unsupported;
  n.hidden = false;
}

/** The E2EE state of a join: the passphrase typed on the pre-join screen, else the fragment's. */
export function makeE2EE(room, url) {
  const passphrase = $('e2ee-passphrase').value || url.e2ee || '';
  const managed = !passphrase && ($('e2ee-managed').checked || !!url.e2eeManaged);
  const e2ee = new E2EE({ passphrase, room, probe: url.e2eeProbe, managed, preferStreams: url.e2eeStreams });
  return { e2ee, warning: (passphrase || managed) && !e2ee.active ? MESSAGES.noBrowser : '' };
}

/** Wires the security dialog. rejoin(passphrase) joins again with a new passphrase. */
export function initSecurity(getSession, rejoin) {
  const dlg = $('security-dialog');
  $('btn-security').addEventListener('click', () => {
    render(getSession());
    if (dlg.showModal) dlg.showModal();
    else dlg.setAttribute('open', '');
  });
  $('security-close').addEventListener('click', () => (dlg.close ? dlg.close() : dlg.removeAttribute('open')));
  $('e2ee-required').addEventListener('change', (ev) => {
    const s = getSession();
    if (s) s.setE2EERequired(ev.target.checked);
  });
  $('e2ee-rejoin').addEventListener('click', () => {
    const p = $('e2ee-new-passphrase').value;
    if (p) rejoin(p);
  });
}

/** Renders the top bar's E2EE badge and the dialog's E2EE section for session s. */
export function render(s) {
  if (!s) return;
  const e = s.e2ee;
  const on = !!(e && e.active);
  const btn = $('btn-security');
  btn.dataset.e2ee = on ? 'e2ee' : 'clear';
  btn.textContent = on ? 'End-to-end encrypted' : 'Not end-to-end encrypted';
  const required = !!s.security.e2eeRequired;
  const box = $('e2ee-required');
  box.checked = required;
  box.disabled = !on; // only someone who encrypts may require it
  let text;
  if (on) {
    text = `Your camera, microphone and screen are encrypted with the meeting passphrase before they leave this browser (${e.mode === 'script' ? 'RTCRtpScriptTransform' : 'encoded streams'}). The server cannot see or hear them; it still sees who talks when and how much.`;
  } else if (!e || !e.mode) {
    text = 'This browser cannot encrypt media end to end.';
  } else {
    text = 'You do not encrypt: enter the meeting passphrase below to rejoin encrypted.';
  }
  if (on && e.keys) {
    text += ' Keys are exchanged between the browsers (no passphrase): compare the four emoji with each person by voice; if they match, nobody sits in between.';
  }
  if (required) text += ' This room requires end-to-end encryption.';
  $('security-e2ee-text').textContent = text;
  renderSAS(s);
}

// The emoji of each pair (managed keys), with a "verified" checkbox each.
function renderSAS(s) {
  const list = $('e2ee-sas');
  const keys = s.e2ee && s.e2ee.keys;
  const st = keys ? keys.state() : { sas: {}, verified: [] };
  const want = Object.keys(st.sas);
  list.hidden = !want.length;
  for (const li of [...list.children]) if (!st.sas[li.dataset.participant]) li.remove();
  for (const id of want) {
    let li = [...list.children].find((el) => el.dataset.participant === id);
    if (!li) {
      li = document.createElement('li');
      li.dataset.participant = id;
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.addEventListener('change', () => keys.setVerified(id, box.checked));
      const text = document.createElement('span');
      label.append(box, text);
      li.append(label);
      list.append(li);
    }
    const p = s.participants.get(id);
    li.querySelector('span').textContent = ` ${p ? displayName(p) : id}: ${st.sas[id]} (verified)`;
    li.querySelector('input').checked = st.verified.includes(id);
  }
}

/**
 * The E2EE state of a remote tile: 'e2ee', 'failing' or 'clear' of its
 * track (or of the participant's first track with media), '' unknown.
 */
export function tileState(s, participant, trackId) {
  if (!s || !s.e2ee) return '';
  const ids = trackId ? [trackId] : [...s.tracks.values()].filter((t) => t.participant === participant).map((t) => t.id);
  for (const id of ids) {
    const t = s.tracks.get(id);
    if (!t) continue;
    const st = s.e2ee.mode ? s.e2ee.trackState(id, !!t.e2ee) : t.e2ee ? 'failing' : 'clear';
    if (st === 'e2ee' && s.e2ee.keys && s.e2ee.keys.verified.has(participant)) return 'verified';
    if (st) return st;
  }
  return '';
}

/** What window.meshmeet.e2ee shows for tests and debugging. */
export function hookState(s, url) {
  const e = s && s.e2ee;
  return {
    passphrase: !!url.e2ee,
    support: support(),
    active: !!(e && e.active),
    mode: e ? e.mode : support(),
    required: !!(s && s.security.e2eeRequired),
    stats: e ? JSON.parse(JSON.stringify(e.stats)) : null,
    managed: e && e.keys ? e.keys.state() : null,
  };
}
