// Session: one participant's signaling WebSocket and its two
// PeerConnections, as signaling/wire describes them.
//
//	pub  offered by the client; carries our microphone, camera and screen
//	sub  offered by the server; carries everyone else's tracks
//
// The session dispatches DOM events for the user interface:
//
//	joined        {resumed}                 welcome received
//	participants  {}                        the participant map changed
//	track         {trackId, participant, track}   a remote track arrived
//	trackended    {trackId}                 a remote track went away
//	speaker       {participant}
//	chat          {participant, name, text, ts}
//	status        {state: 'connecting'|'connected'|'reconnecting'|'closed'}
//	error         {code, message, fatal}
//	ended         {reason}                  the session is over
//	security      {e2eeRequired, passwordSet, participant}  the room's security changed
//	waiting       {}                        in the lobby: a moderator must let us in
//	moderation    {action, by, participant} someone moderated (moderation.js)
//	lobby         {on, waiting: [{id, name}]}  the lobby, for those who may moderate
//	speakerstats  {stats: [{participant, ms}]}  answer to requestSpeakerStats

const PING_INTERVAL_MS = 10_000;
// How long to keep trying to resume after the WebSocket drops. The server
// keeps a dropped participant for 20 s by default.
const RESUME_WINDOW_MS = 20_000;
const MAX_QUEUED = 256;

// A redirect names another node's public base URL; the server sends only
// cluster members' URLs, and the client checks the form again.
const MAX_REDIRECT_URL = 256;
// Redirects in a row without a welcome before giving up (a loop).
const MAX_REDIRECTS = 3;
// A WebSocket that has not opened after this long is given up: its node is
// gone (killed, machine lost) and the session fails over to another node.
const CONNECT_TIMEOUT_MS = 4_000;
// Alternates kept from GET /alternates.
const MAX_ALTERNATES = 8;
// The first reconnect after a drop goes within this much (random, so that
// the clients of a node that died do not all arrive at once): a killed
// node refuses it at once and the session fails over without waiting for
// the back-off (500 ms, 1 s, 2 s, 4 s) of the later attempts.
const FIRST_RETRY_JITTER_MS = 100;

/**
 * The signaling WebSocket URL of base (a node's public base URL), or of
 * the page's own node when base is empty.
 */
function wsURL(base) {
  if (!base) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws`;
  }
  const u = new URL(base);
  const proto = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${u.host}${u.pathname.replace(/\/+$/, '')}/ws`;
}

/**
 * Checks the url of a redirect: http or https (https only from an https
 * page), a host, no credentials, query or fragment, bounded length.
 * Returns the URL or '' when it is refused.
 */
export function redirectTarget(url) {
  if (typeof url !== 'string' || !url || url.length > MAX_REDIRECT_URL) return '';
  let u;
  try {
    u = new URL(url);
  } catch {
    return '';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return '';
  if (location.protocol === 'https:' && u.protocol !== 'https:') return '';
  if (!u.host || u.username || u.password || u.search || u.hash) return '';
  return url;
}

/** Simulcast layers, low to high, as the bridge expects them. */
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

export class Session extends EventTarget {
  /**
   * @param {object} opts
   * @param {string} opts.room       room name
   * @param {string} [opts.name]     display name
   * @param {MediaStream} [opts.stream]  local microphone and camera
   * @param {boolean} [opts.simulcast]   send three video layers (default true)
   * @param {boolean} [opts.turnOnly]    use TURN-relayed candidates only
   * @param {Array<{region:string,ms:number}>|Promise} [opts.rtts]  measured
   *        round trips to each region (probe.js), sent with the join; a
   *        promise makes start() wait for it
   */
  constructor({ room, name, stream, simulcast = true, turnOnly = false, rtts = null, e2ee = null }) {
    super();
    /** The page's end-to-end encryption (e2ee.js), or null. */
    this.e2ee = e2ee;
    /** The room's security state from the server: {e2eeRequired, passwordSet}. */
    this.security = {};
    /** RTCRtpReceivers by remote track ID, to retarget their decryption. */
    this._rx = new Map();
    /** ontrack events of reused receivers whose track is not announced yet. */
    this._unmatched = [];
    this.room = room;
    this.name = name || '';
    this.stream = stream || null;
    this.simulcast = simulcast;
    this.turnOnly = turnOnly;
    this.rtts = Array.isArray(rtts) ? rtts.slice(0, 16) : [];
    /** A promise of the round trips, still being measured. */
    this._rttsPending = rtts && typeof rtts.then === 'function' ? rtts : null;
    /** Public base URL of the node we talk to; '' is the page's node. */
    this.base = '';
    this._redirects = 0;
    /** Other nodes to resume on when ours is lost (GET /alternates). */
    this.alternates = [];
    this._failedOver = new Set();

    this.ws = null;
    this.joined = false;
    this.participant = '';
    this.secret = '';
    this.iceServers = [];
    /** @type {Map<string, {id:string,name:string,muted:{audio:boolean,video:boolean}}>} */
    this.participants = new Map();
    /** @type {Map<string, {id:string,participant:string,kind:string,simulcast?:boolean}>} */
    this.tracks = new Map();
    /** Remote MediaStreamTracks by track ID. */
    this.remote = new Map();
    this.speaker = '';
    this.muted = { audio: false, video: false };

    this.pub = null;
    this.sub = null;
    this.screen = null; // {stream, sender}

    this._ended = false;
    this._leaving = false;
    this._queue = [];
    this._pending = { pub: [], sub: [] };
    this._pubBusy = false;
    this._pubAgain = false;
    this._pubWaiter = null;
    this._subChain = Promise.resolve();
    this._ping = 0;
    this._dropAt = 0;
    this._retry = 0;
    this._prefs = new Map();
    /** Remote video track IDs pinned past the room's last-N (setPin). */
    this._pins = new Set();
    /**
     * What the latest forwarding message said of last-N: limited (not
     * all) and the video track IDs it forwards; n counts the messages since
     * the welcome. _learnedAt: remote track ID → n when we learned of it.
     */
    this._fwd = { limited: false, video: new Set(), n: 0 };
    this._learnedAt = new Map();
    this._early = [];
    this._lastRx = 0;
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Opens the WebSocket and joins the room. */
  start() {
    const pending = this._rttsPending;
    this._rttsPending = null;
    if (!pending) {
      this._connect(false);
      return;
    }
    // The region probes (probe.js) run during the pre-join screen and
    // give up by their own deadline: wait for them, then join.
    pending
      .then((list) => {
        if (Array.isArray(list)) this.rtts = list.slice(0, 16);
      })
      .catch(() => {})
      .finally(() => {
        if (!this._ended) this._connect(false);
      });
  }

  _connect(resume) {
    this._emit('status', { state: resume ? 'reconnecting' : 'connecting' });
    let ws;
    try {
      ws = new WebSocket(wsURL(this.base), 'meshmeet.v1');
    } catch (e) {
      this._fail('connect', `Cannot open the signaling connection: ${e.message}`);
      return;
    }
    this.ws = ws;
    let opened = false;
    const openTimer = setTimeout(() => {
      if (!opened && this.ws === ws) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      opened = true;
      clearTimeout(openTimer);
      const join = { type: 'join', version: 1, room: this.room };
      if (this.name) join.name = this.name;
      // Set by the page (app.js): the room password typed at pre-join and
      // the token given as ?jwt=. Neither is kept beyond this object.
      if (this.password) join.password = this.password;
      if (this.token) join.token = this.token;
      if (this.e2ee && this.e2ee.active) join.e2ee = true;
      if (resume) join.resume = { participant: this.participant, secret: this.secret };
      else if (this.rtts.length) join.rtts = this.rtts;
      this._sendNow(join);
      this._lastRx = Date.now();
      clearInterval(this._ping);
      this._ping = setInterval(() => {
        // A socket that hears nothing, not even pong, for three pings is
        // dead without knowing it (a network change): close it to resume.
        if (Date.now() - this._lastRx > 3 * PING_INTERVAL_MS) {
          ws.close();
          ws.onclose();
          return;
        }
        this._sendNow({ type: 'ping' });
      }, PING_INTERVAL_MS);
    };
    ws.onmessage = (ev) => {
      this._lastRx = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn('meshmeet: unparsable message from server');
        return;
      }
      this._handle(msg).catch((e) => console.error('meshmeet: handling', msg.type, e));
    };
    ws.onclose = () => {
      clearTimeout(openTimer);
      if (this.ws !== ws) return;
      clearInterval(this._ping);
      this.ws = null;
      if (this._ended || this._leaving) return;
      if (!this.joined) {
        this._fail('connect', 'Could not reach the meeting server.');
        return;
      }
      // Our node does not answer any more (killed, machine gone): go on
      // through another node of the cluster with our resume secret.
      if (!opened && this._dropAt && this._failover()) return;
      // Unexpected drop: keep the PeerConnections and resume.
      if (!this._dropAt) this._dropAt = Date.now();
      if (Date.now() - this._dropAt > RESUME_WINDOW_MS) {
        this._fail('connect', 'The connection to the meeting server was lost.');
        return;
      }
      const delay = this._retry++ === 0 ? Math.random() * FIRST_RETRY_JITTER_MS : Math.min(500 * 2 ** (this._retry - 2), 4000);
      this._emit('status', { state: 'reconnecting' });
      setTimeout(() => {
        if (!this._ended) this._connect(true);
      }, delay);
    };
  }

  _sendNow(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /** Sends msg now, or once the session is (re)joined. */
  send(msg) {
    if (this._ended) return;
    if (this.joined && !this._dropAt && this._sendNow(msg)) return;
    if (this._queue.length < MAX_QUEUED) this._queue.push(msg);
  }

  _flushQueue() {
    const q = this._queue;
    this._queue = [];
    for (const m of q) this._sendNow(m);
  }

  async _handle(msg) {
    if (msg.type === 'redirect') return this._redirect(msg.url);
    if (msg.type === 'waiting') {
      // The lobby: nothing else comes until the welcome, or a refusal.
      this.waiting = true;
      this._emit('waiting');
      return;
    }
    if (!this.pub && msg.type !== 'welcome' && msg.type !== 'error') {
      // Nothing but the welcome should come first; keep anything else
      // until the PeerConnections exist.
      if (this._early.length < MAX_QUEUED) this._early.push(msg);
      return;
    }
    switch (msg.type) {
      case 'welcome':
        this.waiting = false;
        // A welcome, resumed or not, starts with every video forwarded.
        this._fwd = { limited: false, video: new Set(), n: 0 };
        this._learnedAt = new Map();
        for (const t of Array.isArray(msg.tracks) ? msg.tracks : []) this._learnedAt.set(t.id, 0);
        // Whether we may moderate: always under soft moderation.
        this.mayModerate = !!msg.moderator;
        return this._welcome(msg);
      case 'offer':
        if (msg.pc === 'sub') return this._subOffer(msg.sdp);
        return;
      case 'answer':
        if (msg.pc === 'pub') return this._pubAnswer(msg.sdp);
        return;
      case 'candidate':
        return this._remoteCandidate(msg.pc, msg.candidate);
      case 'participant-joined':
        for (const p of msg.participants || []) {
          this._setParticipant(p);
          if (this.e2ee && this.e2ee.keys && p && p.id && p.id !== this.participant) this.e2ee.keys.joined(p.id);
        }
        this._emit('participants');
        return;
      case 'participant-updated':
        for (const p of msg.participants || []) this._setParticipant(p);
        this._emit('participants');
        return;
      case 'participant-left':
        this._removeParticipant(msg.participant);
        if (this.e2ee && this.e2ee.keys && msg.participant) this.e2ee.keys.left(msg.participant);
        this._emit('participants');
        return;
      case 'track-published':
        if (msg.track && msg.track.participant !== this.participant) {
          this.tracks.set(msg.track.id, msg.track);
          this._learnedAt.set(msg.track.id, this._fwd.n);
          this._protectReceiver(msg.track.id);
          const waiting = this._unmatched;
          this._unmatched = [];
          for (const ev of waiting) this._onTrack(ev);
          this._emit('participants');
        }
        return;
      case 'track-unpublished':
        if (msg.track) this._removeTrack(msg.track.id);
        return;
      case 'speaker':
        this.speaker = msg.participant || '';
        this._emit('speaker', { participant: this.speaker });
        return;
      case 'chat':
        this._emit('chat', {
          participant: msg.participant || '',
          name: msg.name || '',
          text: msg.text || '',
          ts: msg.ts || Date.now(),
        });
        return;
      case 'e2ee-key':
        if (this.e2ee && this.e2ee.keys && msg.participant && msg.blob) this.e2ee.keys.receive(msg.participant, msg.blob);
        return;
      case 'security':
        // The room's password or E2EE requirement changed.
        if (msg.e2eeRequired !== undefined) this.security = { ...this.security, e2eeRequired: !!msg.e2eeRequired };
        if (msg.passwordSet !== undefined) this.security = { ...this.security, passwordSet: !!msg.passwordSet };
        this._emit('security', { ...this.security, participant: msg.participant || '' });
        return;
      case 'moderation':
        return this._moderation(msg);
      case 'lobby':
        this.lobby = {
          on: !!msg.lobby,
          waiting: (msg.participants || []).slice(0, 100).map((p) => ({ id: String(p.id || ''), name: String(p.name || '') })),
        };
        this._emit('lobby', this.lobby);
        return;
      case 'speaker-stats':
        this._emit('speakerstats', { stats: (msg.stats || []).slice(0, 1000) });
        return;
      case 'forwarding': {
        // The videos last-N forwards to us (all, or the list): the whole
        // state each time. The list is bounded by N plus our pins.
        const video = Array.isArray(msg.video) ? msg.video : [];
        this._fwd = { limited: !msg.all, video: new Set(video.slice(0, 10000).map(String)), n: this._fwd.n + 1 };
        this._emit('forwarding');
        return;
      }
      case 'pong':
        return;
      case 'error':
        return this._error(msg.error || {});
      default:
        console.debug('meshmeet: ignoring message', msg.type);
    }
  }

  _setParticipant(p) {
    if (!p || !p.id || p.id === this.participant) return;
    this.participants.set(p.id, {
      id: p.id,
      name: p.name || '',
      muted: { audio: !!(p.muted && p.muted.audio), video: !!(p.muted && p.muted.video) },
      e2ee: !!p.e2ee,
    });
    // Its tracks may have come before we learnt that it encrypts (from
    // another bridge, the flag follows the roster).
    for (const t of [...this.tracks.values()]) {
      if (t.participant !== p.id) continue;
      if (p.e2ee && !t.e2ee) this.tracks.set(t.id, { ...t, e2ee: true });
      this._protectReceiver(t.id);
    }
  }

  _removeParticipant(id) {
    this.participants.delete(id);
    for (const [tid, t] of this.tracks) {
      if (t.participant === id) this._removeTrack(tid);
    }
  }

  _removeTrack(id) {
    this.tracks.delete(id);
    this._rx.delete(id);
    this._prefs.delete(id);
    this._pins.delete(id);
    this._learnedAt.delete(id);
    if (this.remote.delete(id)) this._emit('trackended', { trackId: id });
    this._emit('participants');
  }

  async _welcome(msg) {
    this._dropAt = 0;
    this._retry = 0;
    this._redirects = 0;
    this._failedOver.clear();
    this._learnAlternates();
    // After a move to another node the PeerConnections are new: set them
    // up and publish again, whether or not the node resumed the session.
    const wasJoined = this.joined && !!this.pub;
    this.participant = msg.participant;
    this.secret = msg.secret;
    if (this.e2ee) this.e2ee.setParticipant(msg.participant);
    if (this.e2ee && this.e2ee.keys) {
      this.e2ee.keys.send = (to, blob) => this.send({ type: 'e2ee-key', participant: to, blob });
    }
    if (msg.e2eeRequired !== undefined) this.security = { ...this.security, e2eeRequired: !!msg.e2eeRequired };
    if (!msg.resumed) this.iceServers = msg.iceServers || [];

    // The welcome lists the room as it is now: replace what we had.
    const before = new Set(this.tracks.keys());
    this.participants.clear();
    for (const p of msg.participants || []) this._setParticipant(p);
    this.tracks.clear();
    for (const t of msg.tracks || []) {
      if (t.participant !== this.participant) {
        this.tracks.set(t.id, t);
        this._protectReceiver(t.id);
      }
    }
    for (const id of before) {
      if (!this.tracks.has(id) && this.remote.delete(id)) this._emit('trackended', { trackId: id });
    }
    this.joined = true;
    this._emit('status', { state: 'connected' });
    if (this.e2ee && this.e2ee.keys) this.e2ee.keys.welcome(this.participant, [...this.participants.keys()]);

    if (msg.resumed && wasJoined) {
      this._flushQueue();
      // Tell the server again what we want, in case it forgot.
      this._sendState();
      for (const [trackId, maxHeight] of this._prefs) {
        this._sendNow(this._prefsMsg(trackId, maxHeight));
      }
      this._emit('participants');
      this._emit('joined', { resumed: true });
      return;
    }

    this._setupPeerConnections();
    this._flushQueue();
    this._emit('participants');
    this._emit('joined', { resumed: false });
    this._publish();
    this._sendState();
    const early = this._early;
    this._early = [];
    for (const m of early) {
      this._handle(m).catch((e) => console.error('meshmeet: handling', m.type, e));
    }
  }

  _setupPeerConnections() {
    const config = {
      iceServers: this.iceServers,
      iceTransportPolicy: this.turnOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      ...(this.e2ee ? this.e2ee.pcConfig() : {}),
    };
    this.pub = new RTCPeerConnection(config);
    this.sub = new RTCPeerConnection(config);
    for (const [name, pc] of [['pub', this.pub], ['sub', this.sub]]) {
      pc.onicecandidate = (ev) => {
        const c = ev.candidate;
        // null and "" both mean end of candidates: send nothing.
        if (!c || !c.candidate) return;
        const cand = { candidate: c.candidate };
        if (c.sdpMid != null) cand.sdpMid = c.sdpMid;
        if (c.sdpMLineIndex != null) cand.sdpMLineIndex = c.sdpMLineIndex;
        this.send({ type: 'candidate', pc: name, candidate: cand });
      };
      pc.onconnectionstatechange = () => {
        this._emit('pcstate', { pc: name, state: pc.connectionState });
        // Media lost while the socket looks open: the node may be gone
        // without a TCP reset. Resuming tells: a live node keeps us, a
        // dead one does not answer and we fail over.
        const lost = pc.connectionState === 'failed' || pc.connectionState === 'disconnected';
        if (lost && pc === this.sub && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close();
      };
    }
    this.sub.ontrack = (ev) => this._onTrack(ev);
  }

  _onTrack(ev) {
    const track = ev.track;
    const participant = ev.streams[0] ? ev.streams[0].id : '';
    let id = track.id;
    const known = this.tracks.get(id);
    if (!known || known.participant !== participant) {
      // The track ID did not survive (a browser may make up its own, and
      // a receiver the bridge reuses keeps the ID of its first track):
      // take the first published track of that participant and kind that
      // has no media yet.
      let found = '';
      for (const t of this.tracks.values()) {
        if (t.participant === participant && t.kind === track.kind && !this.remote.has(t.id)) {
          found = t.id;
          break;
        }
      }
      if (!found && known) {
        // A reused receiver whose new track is not announced yet:
        // decrypt nothing as the old one's, wait for track-published.
        this._unmatched.push(ev);
        if (this.e2ee) this.e2ee.protectReceiver(ev.receiver, { participant, trackId: '', kind: track.kind, e2ee: true });
        return;
      }
      if (found) id = found;
    }
    this.remote.set(id, track);
    this._rx.set(id, ev.receiver);
    this._protectReceiver(id, participant, track.kind);
    const stream = ev.streams[0];
    if (stream) {
      stream.addEventListener('removetrack', (e) => {
        if (e.track === track && this.remote.get(id) === track) {
          this.remote.delete(id);
          this._emit('trackended', { trackId: id });
        }
      });
    }
    this._emit('track', { trackId: id, participant, track });
  }

  /**
   * Attaches decryption to the receiver of remote track id. Until the
   * server describes the track, it is taken as encrypted (frames that do
   * not decrypt are dropped, never shown); track-published retargets it.
   */
  _protectReceiver(id, participant, kind) {
    const rx = this._rx.get(id);
    if (!this.e2ee || !rx) return;
    const t = this.tracks.get(id);
    const who = t ? t.participant : participant || '';
    const p = this.participants.get(who);
    this.e2ee.protectReceiver(rx, {
      participant: who,
      trackId: id,
      kind: t ? t.kind : kind || '',
      e2ee: t ? !!t.e2ee || !!(p && p.e2ee) : true,
    });
  }

  /** Encrypts what a transceiver of ours sends, when we encrypt. */
  _protectSender(tr, kind) {
    if (!this.e2ee || !tr) return;
    if (kind === 'video') this.e2ee.preferCodecs(tr);
    this.e2ee.protectSender(tr.sender, kind);
  }

  _publish() {
    const s = this.stream;
    // Without a microphone or camera we are muted, whatever was asked.
    if (!s || !s.getAudioTracks().length) this.muted.audio = true;
    if (!s || !s.getVideoTracks().length) this.muted.video = true;
    if (!s) return;
    let added = 0;
    for (const track of s.getAudioTracks()) {
      this._protectSender(this.pub.addTransceiver(track, { direction: 'sendonly', streams: [s] }), 'audio');
      added++;
    }
    for (const track of s.getVideoTracks()) {
      this._protectSender(this._addVideo(track, s, this.simulcast && cameraAllowsSimulcast(track)), 'video');
      added++;
    }
    if (added) this._negotiatePub();
  }

  _addVideo(track, stream, simulcast) {
    if (simulcast) {
      try {
        return this.pub.addTransceiver(track, {
          direction: 'sendonly',
          streams: [stream],
          sendEncodings: SIMULCAST.map((e) => ({ ...e })),
        });
      } catch (e) {
        console.warn('meshmeet: simulcast refused, sending one layer', e);
      }
    }
    return this.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  }

  async _negotiatePub() {
    if (this._pubBusy) {
      this._pubAgain = true;
      return;
    }
    const pc = this.pub;
    if (!pc) return;
    this._pubBusy = true;
    try {
      do {
        this._pubAgain = false;
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const answered = new Promise((resolve, reject) => {
          this._pubWaiter = { resolve, reject };
        });
        this.send({ type: 'offer', pc: 'pub', sdp: pc.localDescription.sdp });
        await answered;
      } while (this._pubAgain && this.pub === pc && !this._ended);
    } catch (e) {
      if (this.pub !== pc) return; // restarted meanwhile: a new pub owns the state
      console.warn('meshmeet: publishing failed', e);
      if (pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      }
    } finally {
      if (this.pub === pc || this.pub === null) {
        this._pubBusy = false;
        this._pubWaiter = null;
      }
    }
  }

  async _pubAnswer(sdp) {
    const w = this._pubWaiter;
    try {
      await this.pub.setRemoteDescription({ type: 'answer', sdp });
      this._flushCandidates('pub');
      if (w) w.resolve();
    } catch (e) {
      if (w) w.reject(e);
    }
  }

  _subOffer(sdp) {
    // Offers on sub are handled one at a time, in order.
    this._subChain = this._subChain
      .then(async () => {
        await this.sub.setRemoteDescription({ type: 'offer', sdp });
        this._flushCandidates('sub');
        const answer = await this.sub.createAnswer();
        await this.sub.setLocalDescription(answer);
        this.send({ type: 'answer', pc: 'sub', sdp: this.sub.localDescription.sdp });
      })
      .catch((e) => console.error('meshmeet: subscriber offer', e));
    return this._subChain;
  }

  _remoteCandidate(name, cand) {
    const pc = name === 'pub' ? this.pub : name === 'sub' ? this.sub : null;
    if (!pc || !cand) return;
    const init = { candidate: cand.candidate || '' };
    if (cand.sdpMid != null) init.sdpMid = cand.sdpMid;
    if (cand.sdpMLineIndex != null) init.sdpMLineIndex = cand.sdpMLineIndex;
    if (init.sdpMid == null && init.sdpMLineIndex == null) init.sdpMLineIndex = 0;
    if (!pc.remoteDescription) {
      this._pending[name].push(init);
      return;
    }
    pc.addIceCandidate(init).catch((e) => console.debug('meshmeet: candidate refused', e));
  }

  _flushCandidates(name) {
    const pc = name === 'pub' ? this.pub : this.sub;
    const list = this._pending[name];
    this._pending[name] = [];
    for (const c of list) {
      pc.addIceCandidate(c).catch((e) => console.debug('meshmeet: candidate refused', e));
    }
  }

  _error(err) {
    const code = err.code || 'error';
    const message = err.message || 'The server reported an error.';
    if (code === 'negotiation' && this._pubWaiter) {
      this._pubWaiter.reject(new Error(message));
    }
    if (code === 'resume-failed') {
      // Our participant is gone on the server: join again as a new one.
      this._restart();
      return;
    }
    this._emit('error', { code, message, fatal: !!err.fatal });
    if (err.fatal) this._end(message);
  }

  _restart() {
    const waiter = this._pubWaiter;
    this._pubWaiter = null;
    this._pubBusy = false;
    this._pubAgain = false;
    if (waiter) waiter.reject(new Error('session restarted'));
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this._closePeerConnections();
    for (const id of [...this.remote.keys()]) {
      this.remote.delete(id);
      this._emit('trackended', { trackId: id });
    }
    this.joined = false;
    this._dropAt = 0;
    this._queue = [];
    this._pending = { pub: [], sub: [] };
    this._early = [];
    this._subChain = Promise.resolve();
    this.participants.clear();
    this.tracks.clear();
    this._prefs.clear();
    this._pins.clear();
    if (this.screen) {
      for (const t of this.screen.stream.getTracks()) t.stop();
      this.screen = null;
      this._emit('screen', { on: false });
    }
    this._emit('participants');
    this._connect(false);
  }

  /**
   * Follows a redirect: the server chose another node for us (at join) or
   * moves us there (draining). Close this socket, connect to the node at
   * url and join again; once joined, with our resume secret, and new
   * PeerConnections that publish the same media. No user action.
   */
  _redirect(url) {
    const target = redirectTarget(url);
    if (!target) {
      this._fail('redirect', 'The server sent an invalid redirect.');
      return;
    }
    if (++this._redirects > MAX_REDIRECTS) {
      this._fail('redirect', 'The meeting servers keep redirecting: giving up.');
      return;
    }
    const ws = this.ws;
    this.ws = null; // its close event is ours, not a drop
    clearInterval(this._ping);
    if (ws) ws.close();
    this.base = target;
    if (!this.joined) {
      this._connect(false);
      return;
    }
    // Moved mid-meeting: the media go to the new node's bridge.
    const waiter = this._pubWaiter;
    this._pubWaiter = null;
    this._pubBusy = false;
    this._pubAgain = false;
    if (waiter) waiter.reject(new Error('moved to another node'));
    this._closePeerConnections();
    for (const id of [...this.remote.keys()]) {
      this.remote.delete(id);
      this._emit('trackended', { trackId: id });
    }
    this._pending = { pub: [], sub: [] };
    this._early = [];
    this._subChain = Promise.resolve();
    this._prefs.clear();
    this._pins.clear();
    if (this.screen) {
      for (const t of this.screen.stream.getTracks()) t.stop();
      this.screen = null;
      this._emit('screen', { on: false });
    }
    // Queue what is sent until the new node's welcome, as after a drop.
    this._dropAt = Date.now();
    this._queue = [];
    this._connect(true);
  }

  /** Fetches the page node's GET /alternates (best effort). */
  _learnAlternates() {
    fetch('/alternates', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (!body || !Array.isArray(body.urls)) return;
        this.alternates = body.urls.map(redirectTarget).filter(Boolean).slice(0, MAX_ALTERNATES);
      })
      .catch(() => {});
  }

  /**
   * Our node is lost: move to the page's own node or one of the
   * alternates not tried since the last welcome, as a redirect would
   * (resume secret, new PeerConnections). Returns false when every node
   * was tried.
   */
  _failover() {
    this._failedOver.add(this.base || location.origin);
    for (const url of [location.origin, ...this.alternates]) {
      if (this._failedOver.has(url)) continue;
      this._failedOver.add(url);
      this._redirects = 0; // bounded by the list, not MAX_REDIRECTS
      this._emit('status', { state: 'reconnecting' });
      this._redirect(url);
      return true;
    }
    return false;
  }

  _closePeerConnections() {
    this._rx.clear();
    this._unmatched = [];
    for (const pc of [this.pub, this.sub]) {
      if (pc) pc.close();
    }
    this.pub = null;
    this.sub = null;
  }

  _fail(code, message) {
    this._emit('error', { code, message, fatal: true });
    this._end(message);
  }

  _end(reason) {
    if (this._ended) return;
    this._ended = true;
    clearInterval(this._ping);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this._closePeerConnections();
    if (this.screen) {
      for (const t of this.screen.stream.getTracks()) t.stop();
      this.screen = null;
    }
    this.joined = false;
    this._emit('status', { state: 'closed' });
    this._emit('ended', { reason });
  }

  /** Leaves the room and closes everything. */
  leave() {
    if (this._ended) return;
    this._leaving = true;
    this._sendNow({ type: 'leave' });
    this._end('You left the meeting.');
  }

  /** Sends a chat message to everyone in the room. */
  sendChat(text) {
    text = String(text).trim();
    if (!text) return false;
    this.send({ type: 'chat', text: [...text].slice(0, 2000).join('') });
    return true;
  }

  /** Mutes or unmutes our microphone or camera. */
  setMuted(kind, muted) {
    if (!this.stream) return;
    const tracks = kind === 'audio' ? this.stream.getAudioTracks() : this.stream.getVideoTracks();
    if (!tracks.length) return;
    for (const t of tracks) t.enabled = !muted;
    this.muted[kind] = muted;
    this._sendState();
  }

  _sendState() {
    if (!this.joined) return;
    this.send({ type: 'state', muted: { audio: this.muted.audio, video: this.muted.video } });
  }

  /**
   * Tells the server the largest height at which a video track is shown,
   * 0 when it is not shown, so the bridge picks a simulcast layer.
   */
  setPrefs(trackId, maxHeight) {
    maxHeight = Math.max(0, Math.min(4320, Math.round(maxHeight)));
    if (!this.tracks.has(trackId) || this._prefs.get(trackId) === maxHeight) return;
    this._prefs.set(trackId, maxHeight);
    this.send(this._prefsMsg(trackId, maxHeight));
  }

  /**
   * Pins a remote video track (the bridge forwards it whatever the
   * room's last-N says: a large meeting otherwise sends only the most
   * recent speakers' video) or unpins it. Every prefs message carries the
   * pin, since the server takes an absent pin as unpinned.
   */
  setPin(trackId, on) {
    on = !!on;
    if (!this.tracks.has(trackId) || this._pins.has(trackId) === on) return;
    if (on) this._pins.add(trackId);
    else this._pins.delete(trackId);
    let maxHeight = this._prefs.has(trackId) ? this._prefs.get(trackId) : 720;
    // A pinned video needs a height; the next sendPrefs corrects it.
    if (on && !maxHeight) maxHeight = 360;
    this._prefs.set(trackId, maxHeight);
    this.send(this._prefsMsg(trackId, maxHeight));
    this._emit('forwarding');
  }

  /**
   * Whether the room's last-N pauses a remote video for us: the latest
   * forwarding message limits and does not list it, and came after we
   * learned of the track (one learned of later counts as forwarded until
   * the next message, which the server sends after every new video
   * subscription). A pin resumes it at once.
   */
  isPaused(trackId) {
    const at = this._learnedAt.get(trackId);
    return this._fwd.limited && at !== undefined && at < this._fwd.n &&
      !this._fwd.video.has(trackId) && !this._pins.has(trackId);
  }

  /** Whether a remote video track is pinned (setPin). */
  isPinned(trackId) {
    return this._pins.has(trackId);
  }

  _prefsMsg(trackId, maxHeight) {
    const m = { type: 'prefs', trackId, maxHeight };
    if (this._pins.has(trackId)) m.pin = true;
    return m;
  }

  /** The maxHeight last sent per remote video track ID, as a plain object (a copy). */
  prefs() {
    return Object.fromEntries(this._prefs);
  }

  // Moderation (docs/protocol.md). Under soft moderation everyone may; with
  // --auth jwt the server answers a non-moderator with a not-allowed error.

  /** Asks participant id to mute its microphone (it can unmute). */
  muteParticipant(id) {
    this.send({ type: 'mute-participant', participant: id });
  }

  /** Asks participant id to stop its camera. */
  stopCamera(id) {
    this.send({ type: 'stop-camera', participant: id });
  }

  /** Removes participant id from the meeting. */
  removeParticipant(id) {
    this.send({ type: 'remove-participant', participant: id });
  }

  /** Lets a waiting person in, or turns it away. */
  admit(id, yes = true) {
    this.send({ type: yes ? 'admit' : 'deny', participant: id });
  }

  /** Ends the meeting for everyone. */
  endMeeting() {
    this.send({ type: 'end-meeting' });
  }

  /** Turns the lobby on or off. */
  setLobby(on) {
    this.send({ type: 'set-lobby', lobby: !!on });
  }

  /** Asks for the speaker stats (answered by a speakerstats event). */
  requestSpeakerStats() {
    if (this.joined) this.send({ type: 'speaker-stats' });
  }

  _moderation(msg) {
    const ev = { action: String(msg.action || ''), by: String(msg.by || ''), participant: String(msg.participant || '') };
    if (!this.moderationLog) this.moderationLog = [];
    this.moderationLog.push(ev);
    if (this.moderationLog.length > 100) this.moderationLog.shift();
    if (ev.participant && ev.participant === this.participant) {
      // Soft moderation: we comply, and may change our mind.
      if (ev.action === 'mute' && !this.muted.audio) this.setMuted('audio', true);
      if (ev.action === 'stop-camera' && !this.muted.video) this.setMuted('video', true);
    }
    if (ev.action === 'lobby-on' || ev.action === 'lobby-off') {
      this.lobby = { waiting: [], ...this.lobby, on: ev.action === 'lobby-on' };
    }
    this._emit('moderation', ev);
  }

  /** Asks that the room require end-to-end encryption, or not (a moderator's action). */
  setE2EERequired(on) {
    this.send({ type: 'set-e2ee', e2eeRequired: !!on });
  }

  /** Publishes a screen (from getDisplayMedia) as an extra video track. */
  async startScreenShare(stream) {
    if (!this.pub || this.screen) return;
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    const tr = this.pub.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this._protectSender(tr, 'video');
    this.screen = { stream, sender: tr.sender };
    track.addEventListener('ended', () => this.stopScreenShare());
    this._emit('screen', { on: true, stream });
    await this._negotiatePub();
  }

  /** Stops publishing the screen. */
  async stopScreenShare() {
    const s = this.screen;
    if (!s) return;
    this.screen = null;
    for (const t of s.stream.getTracks()) t.stop();
    this._emit('screen', { on: false });
    if (this.pub && this.pub.signalingState !== 'closed') {
      this.pub.removeTrack(s.sender);
      await this._negotiatePub();
    }
  }
}

/**
 * Reports whether the camera's resolution is worth three simulcast layers:
 * the quarter layer of a camera under 360 lines would be too small to use.
 */
function cameraAllowsSimulcast(track) {
  const s = track.getSettings ? track.getSettings() : {};
  return !s.height || s.height >= 360;
}
