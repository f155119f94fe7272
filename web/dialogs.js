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
