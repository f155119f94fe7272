// End-to-end encryption of media (docs/e2ee.md): the page's side. The
// frames themselves are encrypted and decrypted in e2ee-worker.js; this
// module derives the meeting secret from the passphrase, starts the worker
// and attaches it to every sender and receiver.
//
// Key schedule (passphrase mode):
//   secret = PBKDF2-HMAC-SHA-256(passphrase, salt = "meshmeet-e2ee-v1 room " + room
//            name, 200 000 iterations, 32 bytes)
//   key(participant) = HKDF-SHA-256(secret, salt empty,
//            info = "meshmeet-e2ee-v1 sender " + participant ID) → AES-256-GCM
// The passphrase never leaves the page: it comes from the security field or
// the URL fragment (#e2ee=), which browsers do not send to the server.

import { ManagedKeys } from './e2ee-keys.js';

export const PBKDF2_ITERATIONS = 200_000;
export const SALT_PREFIX = 'meshmeet-e2ee-v1 room ';

/**
 * How this browser can transform encoded frames: 'script'
 * (RTCRtpScriptTransform), 'streams' (createEncodedStreams, which needs
 * encodedInsertableStreams in the PeerConnection configuration) or ''
 * (it cannot encrypt).
 */
export function support(preferStreams = false) {
  if (typeof window === 'undefined' || !window.crypto || !window.crypto.subtle || typeof Worker === 'undefined') return '';
  const streams = !!(window.RTCRtpSender && 'createEncodedStreams' in window.RTCRtpSender.prototype);
  if (preferStreams && streams) return 'streams';
  if (typeof window.RTCRtpScriptTransform === 'function') return 'script';
  if (streams) return 'streams';
  return '';
}

/** Derives the 32-byte meeting secret from a passphrase and a room name. */
export async function deriveSecret(passphrase, room) {
  const enc = new TextEncoder();
  const base = await crypto.subtle.importKey('raw', enc.encode(passphrase), 'PBKDF2', false, ['deriveBits']);
  return crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode(SALT_PREFIX + room), iterations: PBKDF2_ITERATIONS },
    base,
    256,
  );
}

let nextID = 1;

/**
 * E2EE holds the page's encryption state: whether we encrypt, the worker,
 * and the statistics it reports.
 */
export class E2EE extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.passphrase  '' when the page does not encrypt
   * @param {string} opts.room
   * @param {boolean} [opts.probe]    keep hashes of encrypted frames (tests)
   * @param {boolean} [opts.managed]  managed keys (e2ee-keys.js) when there is no passphrase
   * @param {boolean} [opts.preferStreams]  use createEncodedStreams where it exists (tests of the fallback)
   */
  constructor({ passphrase, room, probe = false, managed = false, preferStreams = false }) {
    super();
    this.mode = support(preferStreams);
    this.room = room;
    /** True when we encrypt what we send (a passphrase and a browser that can). */
    this.active = (!!passphrase || managed) && !!this.mode;
    /** Managed keys (no passphrase): the key exchange, or null. */
    this.keys = null;
    // Whether frames go through the worker at all. With the fallback,
    // every sender and receiver of a PeerConnection made with
    // encodedInsertableStreams must be attached, so without a passphrase
    // it is not used; RTCRtpScriptTransform attaches where we choose, so
    // receivers are attached even then, to drop encrypted frames we
    // cannot read rather than hand them to the decoder.
    this.transforms = this.mode === 'script' || (this.mode === 'streams' && this.active);
    this.stats = { encrypted: 0, decrypted: 0, failed: 0, clear: 0, dropped: 0, tracks: {} };
    this.worker = null;
    this._receivers = new WeakMap(); // RTCRtpReceiver → transform ID
    this._probeSeq = 0;
    this._probeWaiters = new Map();
    if (!this.mode) {
      this.ready = Promise.resolve();
      return;
    }
    this.worker = new Worker('/static/e2ee-worker.js', { name: 'meshmeet-e2ee' });
    this.worker.onmessage = (ev) => this._onMessage(ev.data || {});
    if (probe) this.worker.postMessage({ type: 'probe', on: true });
    if (!passphrase && managed) {
      this.worker.postMessage({ type: 'managed' });
      this.keys = new ManagedKeys(this.worker);
      this.keys.addEventListener('change', () => this.dispatchEvent(new CustomEvent('stats')));
    }
    this.ready = passphrase ? this._setPassphrase(passphrase) : Promise.resolve();
  }

  async _setPassphrase(passphrase) {
    const secret = await deriveSecret(passphrase, this.room);
    this.worker.postMessage({ type: 'key', secret, index: 0 }, [secret]);
  }

  _onMessage(m) {
    if (m.type === 'stats') {
      this.stats = m.stats;
      this.dispatchEvent(new CustomEvent('stats'));
    } else if (m.type === 'probe') {
      const w = this._probeWaiters.get(m.seq);
      if (w) {
        this._probeWaiters.delete(m.seq);
        w(m.probe);
      }
    }
  }

  /** Extra RTCPeerConnection configuration: the fallback needs encodedInsertableStreams. */
  pcConfig() {
    return this.mode === 'streams' && this.transforms ? { encodedInsertableStreams: true } : {};
  }

  /** Tells the worker our participant ID (the HKDF input of our key). */
  setParticipant(id) {
    if (this.worker) this.worker.postMessage({ type: 'self', participant: id });
  }

  _attach(target, options) {
    if (this.mode === 'script') {
      target.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = target.createEncodedStreams();
    this.worker.postMessage({ type: 'streams', readable, writable, options }, [readable, writable]);
  }

  /** Encrypts what sender sends (camera, microphone, screen), when we encrypt. */
  protectSender(sender, kind) {
    if (!this.active) return;
    this._attach(sender, { id: `s${nextID++}`, operation: 'encrypt', kind });
  }

  /**
   * Decrypts what receiver receives. A receiver reused for another track
   * (the bridge reuses m-lines) keeps its transform, retargeted.
   * @param {RTCRtpReceiver} receiver
   * @param {{participant:string, trackId:string, kind:string, e2ee:boolean}} info
   */
  protectReceiver(receiver, info) {
    if (!this.transforms) return;
    const options = { operation: 'decrypt', participant: info.participant, trackId: info.trackId, kind: info.kind, e2ee: !!info.e2ee };
    const id = this._receivers.get(receiver);
    if (id) {
      this.worker.postMessage({ type: 'retarget', options: { ...options, id } });
      return;
    }
    options.id = `r${nextID++}`;
    this._receivers.set(receiver, options.id);
    this._attach(receiver, options);
  }

  /** Restricts a video transceiver to codecs we can encrypt (VP8, else VP9). */
  preferCodecs(transceiver) {
    if (!this.active || !transceiver.setCodecPreferences || !window.RTCRtpSender.getCapabilities) return;
    const caps = window.RTCRtpSender.getCapabilities('video');
    if (!caps) return;
    for (const want of ['video/vp8', 'video/vp9']) {
      const codecs = caps.codecs.filter((c) => c.mimeType.toLowerCase() === want);
      if (!codecs.length) continue;
      const extra = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
      try {
        transceiver.setCodecPreferences([...codecs, ...extra]);
        return;
      } catch (e) {
        console.warn('meshmeet: codec preferences refused', e);
      }
    }
  }

  /**
   * The state of a remote track as a tile shows it: 'e2ee' (decrypted),
   * 'failing' (frames arrive that we cannot decrypt: no or wrong key),
   * 'clear' (its publisher does not encrypt) or '' (nothing known yet).
   */
  trackState(trackId, e2ee) {
    if (!e2ee) return 'clear';
    const t = this.stats.tracks[trackId];
    if (!t) return '';
    if (t.decrypted > 0 && t.failed <= t.decrypted) return 'e2ee';
    if (t.failed > 0) return 'failing';
    return '';
  }

  /** For tests: the hashes of the frames encrypted and received ({tx, rx}), or null. */
  readProbe() {
    if (!this.worker) return Promise.resolve(null);
    const seq = ++this._probeSeq;
    return new Promise((resolve) => {
      this._probeWaiters.set(seq, resolve);
      this.worker.postMessage({ type: 'probe-read', seq });
    });
  }
}
