// Managed end-to-end keys (docs/e2ee.md, "Managed keys"): no passphrase.
// Each page makes a random 32-byte sender key and sends it to every other
// participant over a pairwise channel: ECDH P-256 between the two pages'
// key pairs, HKDF to an AES-GCM key, whose messages the server relays as
// opaque e2ee-key blobs (it never sees a key). When someone joins, every
// sender ratchets its key forward (HKDF) and gives the newcomer only the new
// one, so the newcomer cannot read what was said before; receivers ratchet
// by themselves when frames carry the next key index. When someone leaves,
// every sender makes a new random key and gives it to those who stay, so the
// leaver cannot read what follows. A short authentication string of four
// emoji per pair lets two people check by voice that no one sits in the
// middle of their channel.
//
// Blobs (base64url of JSON):
//   {"t":"h","p":<public key, raw, base64url>}           hello, both ways
//   {"t":"k","i":<index>,"v":<IV>,"c":<AES-GCM(pair key, sender key)>}
//        AAD = "meshmeet-e2ee-v1 key " + from + ">" + to + " " + index

const enc = new TextEncoder();
const dec = new TextDecoder();
const PAIR_INFO = 'meshmeet-e2ee-v1 pair ';
const RATCHET_INFO = 'meshmeet-e2ee-v1 ratchet';
const SAS_LABEL = 'meshmeet-e2ee-v1 sas';
// Rotation waits this long, plus the time the key messages need at the
// pace below, before the new key is used, so that the others have it when
// its first frame arrives.
const ROTATE_DELAY_MS = 1000;
// Key messages go out at most this many a second (bursts of KEY_BURST):
// the server allows a client 20 messages a second, bursts of 60, and the
// rest of the session needs some of them.
const KEYS_PER_SECOND = 10;
const KEY_BURST = 20;
const MAX_QUEUED_KEYS = 2048;

// 64 emoji that are easy to name aloud.
const EMOJI = [
  '🐶', '🐱', '🦁', '🐴', '🦄', '🐷', '🐘', '🐰', '🐼', '🐔', '🐧', '🐢', '🐟', '🐙', '🦋', '🌷',
  '🌳', '🌵', '🍄', '🌏', '🌙', '☁️', '🔥', '🍌', '🍎', '🍓', '🌽', '🍕', '🎂', '❤️', '😀', '🤖',
  '🎩', '👓', '🔧', '🎅', '👍', '☂️', '⌛', '⏰', '🎁', '💡', '📕', '✏️', '📎', '✂️', '🔒', '🔑',
  '🔨', '☎️', '🏁', '🚂', '🚲', '✈️', '🚀', '🏆', '⚽', '🎸', '🎺', '🔔', '⚓', '🎧', '📁', '📌',
];

export function b64(buf) {
  const bytes = new Uint8Array(buf);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function unb64(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The next key of a ratchet: HKDF-SHA-256(raw, salt empty, info "meshmeet-e2ee-v1 ratchet"). */
export async function ratchet(raw) {
  const base = await crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveBits']);
  return crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(RATCHET_INFO) }, base, 256);
}

/** ManagedKeys runs the key exchange of one page. */
export class ManagedKeys extends EventTarget {
  /**
   * @param {Worker} worker  the E2EE worker (e2ee-worker.js)
   */
  constructor(worker) {
    super();
    this.worker = worker;
    this.self = '';
    /** Sends one blob to one participant (the session sets it). */
    this.send = () => {};
    this._out = []; // [to, blob] waiting for the pace
    this._tokens = KEY_BURST;
    this._pump = 0;
    /** Our sender key: {index, raw}. */
    this.own = { index: 0, raw: crypto.getRandomValues(new Uint8Array(32)).buffer };
    /** Per peer: {pub, pair: Promise<CryptoKey>, sas, helloSent, keySent: index|-1}. */
    this.peers = new Map();
    /** Participant IDs whose emoji the user confirmed. */
    this.verified = new Set();
    this._pair = crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    this._pubRaw = this._pair.then((kp) => crypto.subtle.exportKey('raw', kp.publicKey));
    this._applyOwn(0);
    this._chain = Promise.resolve();
  }

  _peer(id) {
    let p = this.peers.get(id);
    if (!p) {
      p = { pub: null, pair: null, sas: '', helloSent: false, keySent: -1 };
      this.peers.set(id, p);
    }
    return p;
  }

  // One step at a time: the handlers change shared state across awaits.
  _serial(fn) {
    this._chain = this._chain.then(fn).catch((e) => console.warn('meshmeet: e2ee key exchange', e));
    return this._chain;
  }

  _applyOwn(delay) {
    const post = () => this.worker.postMessage({ type: 'own-key', index: this.own.index, raw: this.own.raw.slice(0) });
    if (delay) setTimeout(post, delay);
    else post();
  }

  async _hello(id) {
    const p = this._peer(id);
    if (p.helloSent) return;
    p.helloSent = true;
    this._sendBlob(id, { t: 'h', p: b64(await this._pubRaw) });
  }

  _sendBlob(id, obj) {
    if (this._out.length >= MAX_QUEUED_KEYS) this._out.shift();
    this._out.push([id, b64(enc.encode(JSON.stringify(obj)))]);
    this._drain();
  }

  // Sends queued blobs within the pace.
  _drain() {
    while (this._out.length && this._tokens >= 1) {
      this._tokens--;
      const [to, blob] = this._out.shift();
      this.send(to, blob);
    }
    if (!this._pump && (this._out.length || this._tokens < KEY_BURST)) {
      this._pump = setInterval(() => {
        this._tokens = Math.min(KEY_BURST, this._tokens + KEYS_PER_SECOND / 10);
        this._drain();
        if (!this._out.length && this._tokens >= KEY_BURST) {
          clearInterval(this._pump);
          this._pump = 0;
        }
      }, 100);
    }
  }

  /** Our participant ID and the others already there (welcome). */
  welcome(self, others) {
    return this._serial(async () => {
      if (this.self && this.self !== self) {
        // A new participant ID (joined again): everyone is new.
        this.peers.clear();
        this.worker.postMessage({ type: 'forget-all' });
      }
      this.self = self;
      for (const id of others) await this._hello(id);
    });
  }

  /** Someone joined: ratchet our key, say hello; they get the new key only. */
  joined(id) {
    return this._serial(async () => {
      if (id === this.self || this.peers.has(id)) return;
      this.own = { index: (this.own.index + 1) & 0xff, raw: await ratchet(this.own.raw) };
      this._applyOwn(0);
      this._emit();
      await this._hello(id);
    });
  }

  /** Someone left: a new random key for those who stay. */
  left(id) {
    return this._serial(async () => {
      if (!this.peers.delete(id)) return;
      this.verified.delete(id);
      this.worker.postMessage({ type: 'forget', participant: id });
      this.own = { index: (this.own.index + 1) & 0xff, raw: crypto.getRandomValues(new Uint8Array(32)).buffer };
      for (const [pid, p] of this.peers) if (p.pair) await this._sendKey(pid, p);
      this._applyOwn(ROTATE_DELAY_MS + (1000 * this._out.length) / KEYS_PER_SECOND);
      this._emit();
    });
  }

  async _sendKey(id, p) {
    const key = await p.pair;
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const aad = enc.encode(`meshmeet-e2ee-v1 key ${this.self}>${id} ${this.own.index}`);
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, this.own.raw);
    p.keySent = this.own.index;
    this._sendBlob(id, { t: 'k', i: this.own.index, v: b64(iv), c: b64(ct) });
  }

  /** An e2ee-key blob from participant from. */
  receive(from, blob) {
    return this._serial(async () => {
      let m;
      try {
        m = JSON.parse(dec.decode(unb64(blob)));
      } catch {
        return;
      }
      if (!m || typeof m !== 'object' || from === this.self) return;
      const p = this._peer(from);
      if (m.t === 'h' && typeof m.p === 'string') {
        if (p.pub) return; // one public key per peer and session
        const pubRaw = unb64(m.p);
        const pub = await crypto.subtle.importKey('raw', pubRaw, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
        const kp = await this._pair;
        const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, kp.privateKey, 256);
        const ids = [this.self, from].sort().join(' ');
        const base = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
        p.pub = pubRaw;
        p.pair = crypto.subtle.deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(PAIR_INFO + ids) },
          base,
          { name: 'AES-GCM', length: 256 },
          false,
          ['encrypt', 'decrypt'],
        );
        p.sas = await sas(new Uint8Array(await this._pubRaw), pubRaw);
        await this._hello(from);
        await this._sendKey(from, p);
        this._emit();
      } else if (m.t === 'k' && p.pair && Number.isInteger(m.i) && typeof m.v === 'string' && typeof m.c === 'string') {
        const aad = enc.encode(`meshmeet-e2ee-v1 key ${from}>${this.self} ${m.i}`);
        const raw = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(m.v), additionalData: aad }, await p.pair, unb64(m.c));
        this.worker.postMessage({ type: 'peer-key', participant: from, index: m.i & 0xff, raw }, [raw]);
        this._emit();
      }
    });
  }

  /** Marks the pair with id as verified by voice (or not). */
  setVerified(id, on) {
    if (on) this.verified.add(id);
    else this.verified.delete(id);
    this._emit();
  }

  _emit() {
    this.dispatchEvent(new CustomEvent('change'));
  }

  /** For tests and the dialog: {index, sas: {id: emoji}, verified: [ids]}. */
  state() {
    const s = {};
    for (const [id, p] of this.peers) if (p.sas) s[id] = p.sas;
    return { index: this.own.index, sas: s, verified: [...this.verified] };
  }
}

/** The four emoji two pages show for their pair: SHA-256 over both public keys, in order. */
async function sas(a, b) {
  const [x, y] = compare(a, b) <= 0 ? [a, b] : [b, a];
  const label = enc.encode(SAS_LABEL);
  const buf = new Uint8Array(label.length + x.length + y.length);
  buf.set(label, 0);
  buf.set(x, label.length);
  buf.set(y, label.length + x.length);
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return [h[0], h[1], h[2], h[3]].map((v) => EMOJI[v & 63]).join(' ');
}

function compare(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
