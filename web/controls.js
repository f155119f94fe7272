// The meeting's controls and status: the bottom bar (microphone, camera,
// screen share, leave), the "Copy link" button, the connection status and
// the connection-quality indicator in the top bar.

import { Meter } from './quality.js';

const $ = (id) => document.getElementById(id);

/** Controls renders the buttons from the session's state and acts on clicks. */
export class Controls {
  /**
   * @param {object} deps
   * @param {() => import('./session.js').Session|null} deps.session  the current session
   * @param {() => {stream: MediaStream|null, audio: boolean, video: boolean}} deps.media
   *        the local stream and whether the user wants microphone and camera on (before joining)
   * @param {() => void} deps.changed     called after a click changed what the page shows
   * @param {(text: string) => void} deps.notify  shows a message to the user
   */
  constructor({ session, media, changed, notify }) {
    this.session = session;
    this.media = media;
    this.changed = changed;
    this.notify = notify;
    this.meter = new Meter();
    /** The last quality sample: {level, loss, rtt}. */
    this.quality = { level: 'unknown', loss: null, rtt: null };

    $('btn-mic').addEventListener('click', () => this._toggle('audio'));
    $('btn-cam').addEventListener('click', () => this._toggle('video'));
    $('btn-screen').addEventListener('click', () => this._screen());
    $('btn-leave').addEventListener('click', () => {
      const s = this.session();
      if (s) s.leave();
    });
    $('copy-link').addEventListener('click', () => this._copyLink());
  }

  /** Renders the buttons from the session's (or, before it, the pre-join) state. */
  render() {
    const s = this.session();
    const m = this.media();
    const hasAudio = !!(m.stream && m.stream.getAudioTracks().length);
    const hasVideo = !!(m.stream && m.stream.getVideoTracks().length);
    const mic = $('btn-mic');
    const cam = $('btn-cam');
    const muted = s ? s.muted : { audio: !m.audio, video: !m.video };
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

  /** Shows the session's connection state ('connecting', 'reconnecting', ...). */
  renderStatus(st) {
    const text = { connecting: 'Connecting…', reconnecting: 'Reconnecting…', connected: '', closed: '' }[st] ?? '';
    $('conn-status').textContent = text;
    this.render();
  }

  /** Measures the connection's quality and shows it. */
  async sampleQuality() {
    const s = this.session();
    if (!s || !s.joined) return;
    let q = await this.meter.sample(s.pub, s.sub);
    // A media connection that dropped is poor whatever its last statistics.
    if ([s.pub, s.sub].some((pc) => pc && (pc.connectionState === 'disconnected' || pc.connectionState === 'failed'))) {
      q = { ...q, level: 'poor' };
    }
    this.quality = q;
    const el = $('quality');
    el.dataset.level = q.level;
    const label = { good: 'good', fair: 'fair', poor: 'poor', unknown: 'measuring…' }[q.level];
    const detail = [];
    if (q.rtt != null) detail.push(`${Math.round(q.rtt * 1000)} ms`);
    if (q.loss != null) detail.push(`${(q.loss * 100).toFixed(1)} % loss`);
    $('quality-text').textContent = `Connection: ${label}`;
    el.title = `Connection quality: ${label}${detail.length ? ` (${detail.join(', ')})` : ''}`;
  }

  _toggle(kind) {
    const s = this.session();
    if (!s) return;
    s.setMuted(kind, !s.muted[kind]);
    this.changed();
  }

  async _screen() {
    const s = this.session();
    if (!s || !s.joined) return;
    if (s.screen) {
      await s.stopScreenShare();
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      if (e.name !== 'NotAllowedError' && e.name !== 'AbortError') this.notify(`Cannot share the screen: ${e.message}`);
      return;
    }
    await s.startScreenShare(stream);
  }

  async _copyLink() {
    const s = this.session();
    const btn = $('copy-link');
    const link = `${location.origin}/${encodeURIComponent(s ? s.room : '')}`;
    try {
      await navigator.clipboard.writeText(link);
      btn.textContent = 'Link copied';
    } catch {
      this.notify(`Share this link: ${link}`);
    }
    setTimeout(() => {
      btn.textContent = 'Copy link';
    }, 2000);
  }
}
