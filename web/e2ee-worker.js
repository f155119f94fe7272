// meshmeet end-to-end encryption worker: encrypts the frames we send and
// decrypts the frames we receive, with AES-GCM (WebCrypto). One worker
// serves every sender and receiver of the page, fed by RTCRtpScriptTransform
// (the rtctransform event) or, where only that exists, by the streams of
// createEncodedStreams() posted to it. docs/e2ee.md describes the format:
//
//   frame = clear prefix | AES-GCM(rest, AAD = clear prefix) incl. 16-byte tag
//           | IV (12 bytes) | key index (1 byte)
//
//   IV    = 4 random bytes chosen when the worker starts | 64-bit counter,
//           big-endian, one counter for every frame we encrypt: an IV never
//           repeats under a key.
//   clear = VP8: 10 bytes of a keyframe, 3 of a delta frame (frame tag and,
//           on a keyframe, start code and size, which the bridge reads);
//           VP9: none (the bridge reads the RTP payload descriptor, which
//           the packetizer writes outside the frame); Opus: 1 byte (TOC).
//           H.264 and AV1 are not sent encrypted (their packetizers parse
//           the frame, which ciphertext would break): such frames are
//           dropped, never sent in clear.
//
// Keys: the page posts the 32-byte secret it derived from the passphrase
// (PBKDF2, salt bound to the room); each sender's AES-256-GCM key is
// HKDF-SHA-256(secret, salt empty, info "meshmeet-e2ee-v1 sender " + its
// participant ID).
//
// Managed keys (e2ee-keys.js): the page posts our sender key ({type:
// 'own-key', index, raw}) and each sender's ({type:'peer-key', participant,
// index, raw}); the key index in the trailer picks the receiver's key, and
// a frame whose index is up to 8 ahead of the newest known key of its
// sender is read with that key ratcheted forward (HKDF-SHA-256, info
// "meshmeet-e2ee-v1 ratchet"), as every sender ratchets when someone joins.
//
// A frame that does not decrypt is dropped (never reaches the decoder)
// and counted. Messages to the page: {type:'stats', stats}.

'use strict';

const TRAILER = 13; // IV + key index
const TAG = 16;
const INFO = 'meshmeet-e2ee-v1 sender ';
const enc = new TextEncoder();

let secret = null; // {index, base: Promise<CryptoKey>} (HKDF base key)
let managed = false;
let own = null; // managed: {index, key: Promise<CryptoKey>}
const peerKeys = new Map(); // managed: participant → Map<index, {raw, key}>
const RATCHET_INFO = 'meshmeet-e2ee-v1 ratchet';
const MAX_AHEAD = 8;
const KEEP_KEYS = 16;
const senderKeys = new Map(); // participant → Promise<CryptoKey|null>
let me = ''; // our participant ID
const ivPrefix = crypto.getRandomValues(new Uint8Array(4));
let counter = 0; // frames encrypted; below 2^53, so exact in a number

// keys: managed mode, the key indices known per sender.
const stats = { encrypted: 0, decrypted: 0, failed: 0, clear: 0, dropped: 0, tracks: {}, keys: {} };
let dirty = false;
const transforms = new Map(); // id → options (mutable on m-line reuse)
let probe = null; // {tx: [], rx: []}: hashes of encrypted frames, for tests

// The counts of a remote track, as long as it belongs to participant: a
// receiver reused for another participant's track starts from zero, so
// that no frame is counted for the wrong sender.
function trackStats(id, participant) {
  let t = stats.tracks[id];
  if (!t || t.participant !== participant) {
    t = { decrypted: 0, failed: 0, clear: 0, participant };
    stats.tracks[id] = t;
  }
  return t;
}

function keyFor(participant) {
  if (!secret || !participant) return Promise.resolve(null);
  let k = senderKeys.get(participant);
  if (!k) {
    k = secret.base.then((base) =>
      crypto.subtle.deriveKey(
        { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(INFO + participant) },
        base,
        { name: 'AES-GCM', length: 256 },
        false,
        ['encrypt', 'decrypt'],
      ),
    ).catch(() => null);
    senderKeys.set(participant, k);
  }
  return k;
}

function aesKey(raw) {
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

async function ratchet(raw) {
  const base = await crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveBits']);
  return crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode(RATCHET_INFO) }, base, 256);
}

function setPeerKey(participant, index, raw) {
  let m = peerKeys.get(participant);
  if (!m) {
    m = new Map();
    peerKeys.set(participant, m);
  }
  m.delete(index);
  m.set(index, { raw, key: aesKey(raw) });
  while (m.size > KEEP_KEYS) m.delete(m.keys().next().value);
  stats.keys[participant] = [...m.keys()];
  dirty = true;
  return m.get(index).key;
}

/** Managed mode: the key of participant at index, ratcheting forward when needed. */
async function peerKey(participant, index) {
  const m = peerKeys.get(participant);
  if (!m) return null;
  const have = m.get(index);
  if (have) return have.key;
  // The newest known key up to MAX_AHEAD behind index.
  for (let d = 1; d <= MAX_AHEAD; d++) {
    const base = m.get((index - d) & 0xff);
    if (!base) continue;
    let raw = base.raw;
    for (let i = (index - d + 1) & 0xff; ; i = (i + 1) & 0xff) {
      raw = await ratchet(raw);
      if (!m.has(i)) setPeerKey(participant, i, raw);
      if (i === index) return m.get(index).key;
    }
  }
  return null;
}

function nextIV() {
  const iv = new Uint8Array(12);
  iv.set(ivPrefix, 0);
  const n = counter++;
  const dv = new DataView(iv.buffer);
  dv.setUint32(4, Math.floor(n / 2 ** 32));
  dv.setUint32(8, n >>> 0);
  return iv;
}

/** The codec of a frame: 'opus', 'vp8', 'vp9', 'h264', 'av1' or ''. */
function codecOf(frame, opts) {
  if (opts.kind === 'audio') return 'opus';
  let mime = '';
  try {
    const md = frame.getMetadata();
    mime = (md && md.mimeType) || '';
  } catch {
    mime = '';
  }
  mime = mime.toLowerCase();
  if (mime.endsWith('/vp8')) return 'vp8';
  if (mime.endsWith('/vp9')) return 'vp9';
  if (mime.endsWith('/h264')) return 'h264';
  if (mime.endsWith('/av1')) return 'av1';
  // No metadata: the page negotiates VP8 only when it encrypts.
  return mime ? '' : 'vp8';
}

/** The number of bytes left in clear at the start of data, or -1 (do not send). */
function clearBytes(codec, data) {
  switch (codec) {
    case 'opus':
      return Math.min(1, data.length);
    case 'vp8':
      // Frame tag bit 0 is the inverse keyframe flag (RFC 6386 9.1).
      return Math.min((data[0] & 1) === 0 ? 10 : 3, data.length);
    case 'vp9':
      return 0;
    default:
      return -1;
  }
}

// FNV-1a, for the test probe only.
function hash(data) {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h ^= data[i];
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16) + ':' + data.length;
}

function record(list, data) {
  list.push(hash(data));
  if (list.length > 4096) list.splice(0, list.length - 4096);
}

async function encrypt(frame, ctl, opts) {
  const data = new Uint8Array(frame.data);
  if (data.length === 0) {
    ctl.enqueue(frame);
    return;
  }
  const index = managed ? (own ? own.index : 0) : secret ? secret.index : 0;
  const key = managed ? (own ? await own.key : null) : await keyFor(me);
  const n = clearBytes(codecOf(frame, opts), data);
  if (!key || n < 0) {
    stats.dropped++; // no key yet, or a codec we cannot encrypt: never send clear
    dirty = true;
    return;
  }
  const iv = nextIV();
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: data.subarray(0, n), tagLength: 128 }, key, data.subarray(n)),
  );
  const out = new Uint8Array(n + ct.length + TRAILER);
  out.set(data.subarray(0, n), 0);
  out.set(ct, n);
  out.set(iv, n + ct.length);
  out[out.length - 1] = index;
  frame.data = out.buffer;
  if (probe) record(probe.tx, out);
  stats.encrypted++;
  dirty = true;
  ctl.enqueue(frame);
}

async function decrypt(frame, ctl, opts) {
  const data = new Uint8Array(frame.data);
  if (data.length === 0) {
    ctl.enqueue(frame);
    return;
  }
  // What this frame is taken to be, whatever a retarget changes meanwhile.
  const { participant, trackId } = opts;
  const t = () => trackStats(trackId, participant);
  dirty = true;
  if (!opts.e2ee) {
    // The publisher does not encrypt (the tile says so).
    t().clear++;
    stats.clear++;
    ctl.enqueue(frame);
    return;
  }
  if (probe) record(probe.rx, data);
  const index = data[data.length - 1];
  const key = managed ? await peerKey(participant, index) : await keyFor(participant);
  const n = clearBytes(codecOf(frame, opts), data);
  if (key && n >= 0 && data.length >= n + TAG + TRAILER && (managed || index === secret.index)) {
    const end = data.length - TRAILER;
    try {
      const pt = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: data.subarray(end, end + 12), additionalData: data.subarray(0, n), tagLength: 128 },
          key,
          data.subarray(n, end),
        ),
      );
      const out = new Uint8Array(n + pt.length);
      out.set(data.subarray(0, n), 0);
      out.set(pt, n);
      frame.data = out.buffer;
      t().decrypted++;
      stats.decrypted++;
      ctl.enqueue(frame);
      return;
    } catch {
      // fall through: dropped
    }
  }
  t().failed++;
  stats.failed++;
}

function run(readable, writable, id) {
  readable
    .pipeThrough(
      new TransformStream({
        transform(frame, ctl) {
          const opts = transforms.get(id);
          if (!opts) return undefined;
          const p = opts.operation === 'encrypt' ? encrypt(frame, ctl, opts) : decrypt(frame, ctl, opts);
          return p.catch(() => {
            stats.dropped++;
          });
        },
      }),
    )
    .pipeTo(writable)
    .catch(() => {});
}

self.onrtctransform = (ev) => {
  const t = ev.transformer;
  const opts = { ...t.options };
  transforms.set(opts.id, opts);
  run(t.readable, t.writable, opts.id);
};

self.onmessage = (ev) => {
  const m = ev.data || {};
  switch (m.type) {
    case 'key':
      senderKeys.clear();
      secret = m.secret
        ? { index: m.index & 0xff, base: crypto.subtle.importKey('raw', m.secret, 'HKDF', false, ['deriveKey']) }
        : null;
      return;
    case 'managed':
      managed = true;
      return;
    case 'own-key':
      own = { index: m.index & 0xff, key: aesKey(m.raw) };
      return;
    case 'peer-key':
      setPeerKey(m.participant, m.index & 0xff, m.raw);
      return;
    case 'forget':
      peerKeys.delete(m.participant);
      return;
    case 'forget-all':
      peerKeys.clear();
      return;
    case 'self':
      me = m.participant || '';
      return;
    case 'streams':
      transforms.set(m.options.id, { ...m.options });
      run(m.readable, m.writable, m.options.id);
      return;
    case 'retarget': {
      const o = transforms.get(m.options.id);
      if (o) Object.assign(o, m.options);
      return;
    }
    case 'probe':
      probe = m.on ? { tx: [], rx: [] } : null;
      return;
    case 'probe-read':
      postMessage({ type: 'probe', seq: m.seq, probe: probe ? { tx: [...probe.tx], rx: [...probe.rx] } : null });
      return;
    default:
  }
};

setInterval(() => {
  if (!dirty) return;
  dirty = false;
  postMessage({ type: 'stats', stats });
}, 500);
