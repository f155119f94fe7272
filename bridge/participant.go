package bridge

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxRemoteCandidates bounds the distinct remote candidates of one
// PeerConnection, trickled or in SDP, before or after its remote
// description: a browser sends a handful per network interface.
const maxRemoteCandidates = 64

// candKey identifies a remote candidate by what ICE uses of it, so that the
// same candidate trickled and then repeated in a renegotiation's SDP counts
// once.
type candKey struct {
	network ice.NetworkType
	typ     ice.CandidateType
	tcp     ice.TCPType
	addr    string
	port    int
}

// Participant is one participant's media on this bridge: PCPub (the client
// offers and sends its tracks) and PCSub (the bridge offers and sends the
// other participants' tracks).
//
// Sub offers: one outstanding at a time. The first one is sent when there is
// a first track to receive; a participant alone in a room gets none. When
// tracks come or go while an offer is outstanding, the bridge offers again
// right after HandleAnswer.
type Participant struct {
	room  *Room             // static
	id    string            // static
	ev    ParticipantEvents // static
	log   *slog.Logger      // static
	pubPC *webrtc.PeerConnection
	subPC *webrtc.PeerConnection

	// wg counts the goroutines of this participant: readers and rtcp loops
	// of its UpTracks, writers and RTCP readers of its DownTracks.
	wg sync.WaitGroup

	// remb is the subscriber's latest REMB estimate in bits/s; 0: none.
	remb atomic.Int64

	failed  atomic.Bool
	closing atomic.Bool
	// subReady is set once the subscriber PeerConnection is connected:
	// pion silently discards what is written before SRTP is up, so writers
	// drop until then and a keyframe is requested for every video track.
	subReady atomic.Bool

	// tap learns the subscriber PeerConnection's SRTP keys; thin is its
	// thin write path once connected, nil until then or when it cannot
	// have one (thinwrite.go).
	tap  *dtlsTap
	thin atomic.Pointer[thinWriter]

	// mu guards the following fields.
	mu         sync.Mutex
	closed     bool
	uptracks   map[*webrtc.RTPReceiver]*UpTrack
	downtracks map[string]*DownTrack // by track ID

	// negMu serializes the subscriber PeerConnection's negotiation and
	// guards the following fields.
	negMu        sync.Mutex
	offerPending bool
	needOffer    bool
	early        [2][]webrtc.ICECandidateInit // candidates before the remote description
	// remote holds the distinct remote candidates accepted per
	// PeerConnection, at most maxRemoteCandidates each.
	remote [2]map[candKey]struct{}
	// relay holds the subscriber PeerConnection's relayed candidates
	// back while a direct path may still win (relayhold.go).
	relay relayHold

	// fwd is what ParticipantEvents.Forwarding was last told
	// (lastn.go). Owned by the room loop.
	fwd fwdReport
}

func newParticipant(r *Room, id string, ev ParticipantEvents) (*Participant, error) {
	pubAPI, subAPI, err := r.b.apis()
	if err != nil {
		return nil, err
	}
	p := &Participant{
		room:       r,
		id:         id,
		ev:         ev,
		log:        r.log.With("participant", id),
		uptracks:   map[*webrtc.RTPReceiver]*UpTrack{},
		downtracks: map[string]*DownTrack{},
	}
	cfg := webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	}
	if p.pubPC, err = pubAPI.NewPeerConnection(cfg); err != nil {
		return nil, err
	}
	p.tap = &dtlsTap{}
	if p.subPC, err = subAPI.forTap(p.tap).NewPeerConnection(cfg); err != nil {
		_ = p.pubPC.Close()
		return nil, err
	}
	for i, pc := range []*webrtc.PeerConnection{p.pubPC, p.subPC} {
		which := PC(i)
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if p.ev.Candidate == nil || p.closing.Load() {
				return
			}
			if c == nil {
				p.ev.Candidate(which, nil)
				return
			}
			if !p.room.b.advertised(c.Address) {
				return
			}
			init := c.ToJSON()
			p.ev.Candidate(which, &init)
		})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			switch s {
			case webrtc.PeerConnectionStateConnected:
				if which == PCSub && !p.subReady.Swap(true) {
					p.startThin()
					p.requestKeyframes()
				}
			case webrtc.PeerConnectionStateFailed:
				p.fail(ErrICEFailed)
			case webrtc.PeerConnectionStateClosed:
				p.fail(ErrConnectionClosed)
			}
		})
	}
	p.subPC.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateChecking {
			go p.transportStarted()
			go p.subChecking()
		}
	})
	p.watchPubPair()
	p.pubPC.OnTrack(p.onTrack)
	return p, nil
}

// transportStarted sends the subscriber offer that negotiateLocked held
// back until the subscriber PeerConnection's ICE transport had started.
func (p *Participant) transportStarted() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.needOffer {
		p.negotiateLocked()
	}
}

// fail reports the first failure, unless the bridge itself is closing the
// participant.
func (p *Participant) fail(err error) {
	if p.closing.Load() || !p.failed.CompareAndSwap(false, true) {
		return
	}
	p.log.Debug("participant media failed", "err", err)
	if p.ev.Failed != nil {
		p.ev.Failed(err)
	}
}

// requestKeyframes gets a keyframe to p for every video track it receives,
// from the cache or from the publisher.
func (p *Participant) requestKeyframes() {
	p.mu.Lock()
	dts := make([]*DownTrack, 0, len(p.downtracks))
	for _, dt := range p.downtracks {
		dts = append(dts, dt)
	}
	p.mu.Unlock()
	for _, dt := range dts {
		dt.startVideo()
	}
}

// onTrack is pion's OnTrack for the publisher PeerConnection: the first
// layer of a track creates and publishes its UpTrack; each layer gets a
// reader.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	up := p.uptracks[recv]
	created := up == nil
	if created && len(p.uptracks) >= p.room.b.cfg.MaxTracksPerParticipant {
		p.mu.Unlock()
		return // checkOffer bounds the m-lines; this bounds what pion makes of them
	}
	if created {
		up = newUpTrack(p, remote, recv)
		p.uptracks[recv] = up
	}
	p.mu.Unlock()
	if created {
		p.room.publish(up)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	li := up.layerIndex(remote.RID())
	if p.closed || li < 0 || up.layers[li].started {
		return
	}
	up.layers[li].started = true
	up.live.Add(1)
	p.wg.Add(2)
	go up.readLoop(li, remote)
	go p.drainReceiverRTCP(recv, remote.RID())
	if created {
		p.wg.Add(1)
		go up.rtcpLoop()
	}
}

// drainReceiverRTCP reads the RTCP (sender reports) of one received
// stream, so that the receive-side interceptors see it: receiver reports
// then carry LSR/DLSR and the publisher can measure its RTT. Ends when the
// receiver stops.
func (p *Participant) drainReceiverRTCP(recv *webrtc.RTPReceiver, rid string) {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		var err error
		if rid == "" {
			_, _, err = recv.Read(buf)
		} else {
			_, _, err = recv.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
	}
}

// addDownTrack subscribes p to up: a track on the subscriber
// PeerConnection (the client answers recvonly) whose transceiver offers
// up's codec only. It reports whether a track was added (the caller then
// calls negotiate). Called with the room's mu held.
func (p *Participant) addDownTrack(up *UpTrack) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.downtracks[up.info.ID] != nil {
		return false
	}
	dt := newDownTrack(up, p)
	dt.selectLayer(0) // max height and active layers; the estimate comes later
	if !up.attach(dt) {
		return false
	}
	// AddTrack reuses the m-line of a track that left, once that removal
	// was negotiated, so the subscriber's SDP does not grow with churn.
	sender, err := p.subPC.AddTrack(dt)
	if err != nil {
		p.log.Warn("add track to subscriber", "err", err)
		up.removeSub(dt)
		return false
	}
	if c, ok := matchCodec(up.codec, subCodecs(up.info.Kind)); ok {
		for _, tr := range p.subPC.GetTransceivers() {
			if tr.Sender() == sender {
				_ = tr.SetCodecPreferences([]webrtc.RTPCodecParameters{c})
			}
		}
	}
	dt.sender = sender
	p.downtracks[up.info.ID] = dt
	p.wg.Add(2)
	dt.startWriter()
	go p.readSenderRTCP(dt)
	return true
}

// subCodecs lists the subscriber-side codecs of a kind.
func subCodecs(kind webrtc.RTPCodecType) []webrtc.RTPCodecParameters {
	var out []webrtc.RTPCodecParameters
	for _, c := range codecs(nil) {
		if c.kind == kind {
			out = append(out, c.p)
		}
	}
	return out
}

// removeDownTrack unsubscribes p from dt's track and renegotiates.
func (p *Participant) removeDownTrack(dt *DownTrack) {
	p.mu.Lock()
	if p.downtracks[dt.up.info.ID] != dt {
		p.mu.Unlock()
		return
	}
	delete(p.downtracks, dt.up.info.ID)
	closed := p.closed
	p.mu.Unlock()
	dt.up.removeSub(dt)
	dt.stop()
	if closed {
		return
	}
	if dt.sender != nil {
		_ = p.subPC.RemoveTrack(dt.sender)
	}
	p.negotiate()
}

// readSenderRTCP drains the RTCP of one RTPSender (interceptors only see
// what is read) and acts on it: PLI/FIR go to the publisher (rate-limited),
// NACKs are answered from the cache, REMB feeds layer selection.
func (p *Participant) readSenderRTCP(dt *DownTrack) {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := dt.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				li := dt.cur.Load()
				if li < 0 {
					li = dt.target.Load()
				}
				dt.up.requestKeyframe(int(li))
			case *rtcp.TransportLayerNack:
				for _, pair := range pkt.Nacks {
					pair.Range(func(seq uint16) bool {
						dt.enqueueNACK(seq)
						return true
					})
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				p.remb.Store(int64(pkt.Bitrate))
			}
		}
	}
}

// negotiate sends a new subscriber offer, or marks one as needed when an
// offer is outstanding (HandleAnswer then sends it).
func (p *Participant) negotiate() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.negotiateLocked()
}

func (p *Participant) negotiateLocked() {
	if p.closing.Load() {
		return
	}
	if p.offerPending {
		p.needOffer = true
		return
	}
	// pion starts a PeerConnection's ICE transport asynchronously after
	// the first answer is applied, and until it has, the agent holds no
	// remote credentials: a renegotiation applied in that window (a
	// second track published a millisecond after the first) looks to pion
	// like an ICE restart, on this side and on a pion client's, and left
	// the two agents with different credentials, checking forever (seen
	// in about one run of TestBridgeDialsNobody in ten on a busy machine).
	// So the next offer waits for the transport (transportStarted).
	if p.subPC.CurrentRemoteDescription() != nil && p.subPC.ICEConnectionState() == webrtc.ICEConnectionStateNew {
		p.needOffer = true
		return
	}
	p.needOffer = false
	if len(p.subPC.GetTransceivers()) == 0 {
		return // nothing to receive yet: no offer
	}
	offer, err := p.subPC.CreateOffer(nil)
	if err != nil {
		p.log.Warn("create subscriber offer", "err", err)
		return
	}
	if err := p.subPC.SetLocalDescription(offer); err != nil {
		p.log.Warn("set subscriber offer", "err", err)
		return
	}
	p.offerPending = true
	if p.ev.Offer != nil {
		p.ev.Offer(p.room.b.filterLocalSDP(offer.SDP))
	}
}

// closedErr turns an error from a PeerConnection that Close tore down
// meanwhile into ErrClosed.
func (p *Participant) closedErr(err error) error {
	if err != nil && p.closing.Load() {
		return ErrClosed
	}
	return err
}

// HandleOffer applies the client's offer for the publisher PeerConnection
// and returns the answer. An offer the bridge refuses leaves the
// PeerConnection as it was (ErrBadOffer, ErrTooManyTracks); one that leaves
// it unable to negotiate ends the participant's media (ErrNegotiationFailed).
func (p *Participant) HandleOffer(sdp string) (answer string, err error) {
	defer func() { err = p.closedErr(err) }()
	if p.closing.Load() {
		return "", ErrClosed
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if err := checkOffer(sdp, p.room.b.cfg.MaxTracksPerParticipant); err != nil {
		return "", err // the PeerConnection is untouched: the client may offer again
	}
	sdp = p.filterSDPLocked(PCPub, sdp)
	stage := "set remote description"
	err = p.pubPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	if err == nil {
		p.flushEarlyLocked(PCPub)
		stage = "create answer"
		var desc webrtc.SessionDescription
		if desc, err = p.pubPC.CreateAnswer(nil); err == nil {
			stage = "set local description"
			err = p.pubPC.SetLocalDescription(desc)
		}
	}
	if err == nil {
		return p.room.b.filterLocalSDP(p.pubPC.LocalDescription().SDP), nil
	}
	if p.pubPC.SignalingState() == webrtc.SignalingStateStable {
		return "", refused(ErrBadOffer, stage, err)
	}
	// pion cannot roll a remote offer back: the PeerConnection would
	// refuse every later offer. End the participant's media with a clear
	// error instead of leaving it wedged; the client joins again.
	err = refused(ErrNegotiationFailed, stage, err)
	p.fail(err)
	return "", err
}

// checkOffer refuses, before pion sees it, an offer that does not parse,
// whose media sections lack a unique mid or a DTLS fingerprint (pion would
// accept such an offer and then fail to answer it), or that sends more than
// maxTracks audio and video tracks.
func checkOffer(raw string, maxTracks int) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return refused(ErrBadOffer, "parse", err)
	}
	_, sessionFP := d.Attribute("fingerprint")
	sessionDir := direction(d.Attributes, "sendrecv")
	mids := make(map[string]bool, len(d.MediaDescriptions))
	sending := 0
	for _, m := range d.MediaDescriptions {
		mid, ok := m.Attribute("mid")
		if !ok || mid == "" || mids[mid] {
			return refused(ErrBadOffer, "media section without a unique mid", nil)
		}
		mids[mid] = true
		if _, ok := m.Attribute("fingerprint"); !ok && !sessionFP {
			return refused(ErrBadOffer, "no DTLS fingerprint", nil)
		}
		kind := m.MediaName.Media
		if (kind == "audio" || kind == "video") && m.MediaName.Port.Value != 0 {
			if dir := direction(m.Attributes, sessionDir); dir == "sendrecv" || dir == "sendonly" {
				sending++
			}
		}
	}
	if sending > maxTracks {
		return ErrTooManyTracks
	}
	return nil
}

// direction returns the direction attribute among attrs, or def.
func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

// HandleAnswer applies the client's answer to the last Offer.
func (p *Participant) HandleAnswer(sdp string) (err error) {
	defer func() { err = p.closedErr(err) }()
	if p.closing.Load() {
		return ErrClosed
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if !p.offerPending {
		return ErrNoPendingOffer
	}
	sdp = p.filterSDPLocked(PCSub, sdp)
	err = p.subPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	if err != nil {
		err = refused(ErrBadAnswer, "set remote description", err)
	}
	if p.subPC.SignalingState() != webrtc.SignalingStateStable {
		return err // the offer is still outstanding: the client may answer again
	}
	// Applied, perhaps with an error starting a sender (a codec the
	// subscriber refused): the offer is answered either way.
	p.offerPending = false
	p.flushEarlyLocked(PCSub)
	if p.needOffer {
		p.negotiateLocked()
	}
	return err
}

func (p *Participant) pc(which PC) *webrtc.PeerConnection {
	switch which {
	case PCPub:
		return p.pubPC
	case PCSub:
		return p.subPC
	}
	return nil
}

// forgetUpTrack drops a closed UpTrack from p's map.
func (p *Participant) forgetUpTrack(up *UpTrack) {
	p.mu.Lock()
	if p.uptracks[up.recv] == up {
		delete(p.uptracks, up.recv)
	}
	p.mu.Unlock()
}

// AddCandidate adds a remote ICE candidate to one PeerConnection. A
// candidate the bridge's policy refuses (Config.AllowRemoteCandidate) is
// dropped quietly; a malformed one is ErrBadCandidate, one too many
// ErrTooManyCandidates.
func (p *Participant) AddCandidate(which PC, c webrtc.ICECandidateInit) (err error) {
	defer func() { err = p.closedErr(err) }()
	if p.closing.Load() {
		return ErrClosed
	}
	pc := p.pc(which)
	if pc == nil {
		return ErrUnknownPC
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	switch err := p.admitCandidateLocked(which, c.Candidate); {
	case errors.Is(err, errCandidateDenied):
		return nil // a browser's private address: not an error, just not used
	case err != nil:
		return err
	}
	if p.holdRelayLocked(which, c) {
		return nil
	}
	if pc.RemoteDescription() == nil {
		p.early[which] = append(p.early[which], c) // bounded by admitCandidateLocked
		return nil
	}
	if err := pc.AddICECandidate(c); err != nil {
		return refused(ErrBadCandidate, "add", err)
	}
	return nil
}

// errCandidateDenied is admitCandidateLocked's verdict on a candidate the
// policy refuses; AddCandidate drops such a candidate silently.
var errCandidateDenied = errors.New("bridge: remote candidate denied")

// admitCandidateLocked parses a remote candidate attribute value (with or
// without the "candidate:" prefix), applies the bridge's candidate policy
// and the per-PeerConnection limit, and counts what it refuses. Called
// with negMu held.
func (p *Participant) admitCandidateLocked(which PC, value string) error {
	stats := &p.room.b.stats
	c, err := ice.UnmarshalCandidate(strings.TrimPrefix(value, "candidate:"))
	if err != nil {
		stats.candMalformed.Add(1)
		return ErrBadCandidate
	}
	p.noteCandidateLocked(c)
	switch p.room.b.checkRemoteCandidate(c, which == PCPub) {
	case candMalformed: // a browser's mDNS name: dropped quietly like a private address
		stats.candMalformed.Add(1)
		return errCandidateDenied
	case candDenied:
		stats.candDenied.Add(1)
		return errCandidateDenied
	}
	k := candKey{network: c.NetworkType(), typ: c.Type(), tcp: c.TCPType(), addr: c.Address(), port: c.Port()}
	if p.remote[which] == nil {
		p.remote[which] = map[candKey]struct{}{}
	}
	if _, ok := p.remote[which][k]; ok {
		return nil
	}
	if len(p.remote[which]) >= maxRemoteCandidates {
		stats.candOverLimit.Add(1)
		return ErrTooManyCandidates
	}
	p.remote[which][k] = struct{}{}
	return nil
}

// filterSDPLocked removes from a remote description the candidate lines
// that admitCandidateLocked refuses, so that pion never sees them. Called
// with negMu held.
func (p *Participant) filterSDPLocked(which PC, sdp string) string {
	return filterCandidateLines(sdp, func(v string) bool {
		return p.admitCandidateLocked(which, v) == nil && !p.holdRelayLocked(which, webrtc.ICECandidateInit{Candidate: v})
	})
}

// flushEarlyLocked adds the candidates that came before the remote
// description. Called with negMu held.
func (p *Participant) flushEarlyLocked(which PC) {
	pc := p.pc(which)
	for _, c := range p.early[which] {
		if err := pc.AddICECandidate(c); err != nil {
			p.log.Debug("add early candidate", "err", refused(ErrBadCandidate, "add", err)) // pion's text quotes the address
		}
	}
	p.early[which] = nil
}

// SetMaxHeight caps the video layer this participant receives of track;
// 0 pauses it (the tile is not shown).
func (p *Participant) SetMaxHeight(trackID string, h int) {
	if h < 0 {
		h = -1
	}
	if h > 1<<15 {
		h = 1 << 15
	}
	p.mu.Lock()
	dt := p.downtracks[trackID]
	p.mu.Unlock()
	if dt == nil || !dt.video {
		return
	}
	dt.maxHeight.Store(int32(h))
	dt.selectLayer(p.videoBudget())
}

// videoBudget is the subscriber's bandwidth estimate shared among its video
// downtracks (bits/s; 0: unknown).
func (p *Participant) videoBudget() int64 {
	est := p.remb.Load()
	if est <= 0 {
		return 0
	}
	p.mu.Lock()
	n := 0
	for _, dt := range p.downtracks {
		if dt.video && dt.maxHeight.Load() != 0 && (!dt.lastNOff.Load() || dt.pinned.Load()) {
			n++
		}
	}
	p.mu.Unlock()
	if n == 0 {
		return est
	}
	// Audio and RTCP take a little; keep 10% aside.
	return est * 9 / 10 / int64(n)
}

// selectLayers runs the layer choice for every video downtrack and
// re-requests keyframes that are still awaited. Called by the room loop.
func (p *Participant) selectLayers() {
	budget := p.videoBudget()
	p.mu.Lock()
	dts := make([]*DownTrack, 0, len(p.downtracks))
	for _, dt := range p.downtracks {
		if dt.video {
			dts = append(dts, dt)
		}
	}
	p.mu.Unlock()
	for _, dt := range dts {
		dt.selectLayer(budget)
		if dt.needsKeyframe() {
			dt.up.requestKeyframe(int(dt.target.Load()))
		}
	}
}

// Close removes the participant from its room: its tracks are unpublished
// and its PeerConnections closed. Idempotent. It waits for the participant's
// goroutines and pion's handlers, so it must not be called from inside a
// ParticipantEvents or RoomEvents callback.
func (p *Participant) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	p.closing.Store(true)
	ups := make([]*UpTrack, 0, len(p.uptracks))
	for _, up := range p.uptracks {
		ups = append(ups, up)
	}
	dts := make([]*DownTrack, 0, len(p.downtracks))
	for _, dt := range p.downtracks {
		dts = append(dts, dt)
	}
	p.mu.Unlock()

	p.thin.Store(nil) // nothing more leaves for the subscriber's address
	p.room.removeParticipant(p)
	for _, up := range ups {
		up.close()
	}
	for _, dt := range dts {
		p.removeDownTrack(dt)
	}
	err := errors.Join(p.subPC.GracefulClose(), p.pubPC.GracefulClose())
	if err != nil {
		p.log.Debug("close peer connections", "err", err)
	}
	p.wg.Wait()
	p.log.Debug("participant left")
}
