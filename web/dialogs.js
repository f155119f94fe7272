// Messages and screens outside the meeting's own view: the banner for
// errors and notices, and the screen shown once the meeting is over for
// us. Prompts that interrupt the meeting (moderation, the security dialog
// with password and E2EE) belong here too.

const $ = (id) => document.getElementById(id);

/** Shows a dismissable message at the top of the page. */
export function showBanner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = false;
}

/** Shows one of the page's views: 'prejoin', 'meeting' or 'left'. */
export function showView(view) {
  for (const id of ['prejoin', 'meeting', 'left']) $(id).hidden = id !== view;
}

/**
 * Shows the screen after the meeting: left is whether we left by choice
 * (then the room is named), otherwise reason says why it ended.
 */
export function showLeft({ left, room, reason }) {
  $('left-title').textContent = left ? 'You left the meeting' : 'The meeting ended for you';
  $('left-reason').textContent = left ? `Room: ${room}` : reason;
  showView('left');
}

/** Wires the banner's and the after-meeting screen's buttons. */
export function initDialogs({ onRejoin }) {
  $('banner-close').addEventListener('click', () => {
    $('banner').hidden = true;
  });
  $('rejoin').addEventListener('click', onRejoin);
}

// ---------------------------------------------------------------- access
// Room passwords and tokens (docs/security.md). The pre-join screen always
// offers an optional password field: a refused join says only "could not
// join: wrong password, locked room or not allowed", never whether the
// room exists or has a password, so the page cannot ask for a password
// only when one is needed.

const TOKEN_KEY = 'meshmeet.jwt';

/**
 * Takes the token given as ?jwt=: it leaves the address bar at once
 * (history.replaceState, so it is not in the history, a copied link or a
 * bookmark) and is kept for this tab only (sessionStorage), so that a
 * rejoin after a refusal still carries it. Returns the token, '' if none.
 */
export function takeToken() {
  const q = new URLSearchParams(location.search);
  const given = q.get('jwt');
  if (given !== null) {
    q.delete('jwt');
    const rest = q.toString();
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
    if (given) {
      try {
        sessionStorage.setItem(TOKEN_KEY, given.slice(0, 4096));
      } catch {
        return given.slice(0, 4096);
      }
    }
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/** On the pre-join screen, says the last join was refused and focuses the password field. */
export function showRefused() {
  const note = $('password-note');
  note.textContent = 'Could not join: wrong password, locked room or not allowed. If the room has a password, type it and join again.';
  note.hidden = false;
  $('room-password').focus();
}

/**
 * Wires the security dialog's password form: set or remove the room's
 * password (a moderator's action; the server refuses it from others).
 * session() returns the current Session or null.
 */
export function initPasswordControls(session) {
  $('password-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const s = session();
    const pw = $('room-new-password').value;
    if (!s || !pw) return;
    s.send({ type: 'set-password', password: pw.slice(0, 256) });
    $('room-new-password').value = '';
  });
  $('remove-password').addEventListener('click', () => {
    const s = session();
    if (s) s.send({ type: 'set-password' });
  });
}

let lastPasswordSet;

/** Shows whether the room has a password, as the server last said; a change is announced. */
export function renderPassword(session) {
  const set = session && session.security ? session.security.passwordSet : undefined;
  $('security-password-text').textContent =
    set === true ? 'This room has a password: joining needs it.'
      : set === false ? 'This room has no password: anyone who knows its name can join.'
        : 'Set a password that everyone joining must type. Moderators can change or remove it.';
  $('remove-password').disabled = set === false;
  if (set !== undefined && set !== lastPasswordSet) {
    showBanner(set ? 'The room password was set.' : 'The room password was removed.');
  }
  lastPasswordSet = set;
}
