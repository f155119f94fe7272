package bridge

import (
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Nominating a relayed pair on the subscriber PeerConnection.
//
// The bridge is the controlling ICE agent of the subscriber PeerConnection:
// it decides which candidate pair carries the media. pion nominates the
// highest-priority pair that has answered a check once both of its
// candidates have waited their type's acceptance wait since the checks
// began; a pair with a relayed candidate has the lowest priority, and its
// wait is what keeps it from winning over a direct pair that has not
// answered yet. The bridge's own candidates are host candidates, so the wait
// that matters is the one for the client's relayed candidates.
//
// A fixed wait makes every participant that reaches the node only through
// TURN pay it for its first frame (500 ms here until late 2026; pion's default
// is 2 s), while most of them have no direct path at all. So the subscriber
// agent has no relay wait, and the participant holds the client's relayed
// candidates back instead, only while a direct path may still win:
//
//   - a client that has sent no host or server-reflexive candidate so far,
//     on either PeerConnection (a TURN-only client: iceTransportPolicy
//     "relay"), gets its relayed candidates added at once. Its publisher
//     PeerConnection is negotiated first, so a client with direct
//     candidates has usually sent some before its subscriber's relayed
//     ones; candidates the policy refuses count too (the client may still
//     reach the node directly, learnt as a peer-reflexive candidate);
//   - a client whose publisher PeerConnection, which the client nominates,
//     has selected a pair through a relayed candidate gets its held relayed
//     candidates added then: it reaches the node only through TURN;
//   - otherwise they are added relayHoldUnknown after the subscriber's checks
//     began (the wait pion applied before), or relayHoldDirect after when the
//     publisher PeerConnection selected a direct pair: the same client
//     reached the same UDP port of the node directly, so the subscriber's
//     direct pair will answer and TURN is only the fallback.
//
// A relayed pair still only wins when no better pair has answered when it
// is added (pion nominates the best valid pair), so a direct path that
// works wins in every case where it answered within the old wait. The
// client's checks from a held relayed candidate still reach the bridge;
// pion takes that address for a peer-reflexive candidate, which it
// nominates only after its own 1 s wait (and replaces by the relayed
// candidate when that is added).
const (
	relayHoldUnknown = 500 * time.Millisecond
	relayHoldDirect  = 2 * time.Second
)

// relayHold is the state of a participant's held relayed candidates.
// Guarded by the Participant's negMu.
type relayHold struct {
	direct    bool      // the client sent a non-relayed candidate (either PeerConnection)
	pubDirect bool      // the publisher PeerConnection selected a direct pair
	released  bool      // relayed candidates go to the subscriber PeerConnection at once
	started   time.Time // the subscriber's checks began; zero before
	timer     *time.Timer
	// held are the subscriber PeerConnection's relayed candidates not
	// added yet; bounded by admitCandidateLocked's per-PC limit.
	held []webrtc.ICECandidateInit
}

// noteCandidateLocked records what a parsed remote candidate says about the
// client's paths, before the candidate policy (a refused private address
// still means the client may reach the node directly, learnt from its
// checks as a peer-reflexive candidate). Called with negMu held.
func (p *Participant) noteCandidateLocked(c ice.Candidate) {
	if c.Type() != ice.CandidateTypeRelay {
		p.relay.direct = true
	}
}

// holdRelayLocked keeps c, an admitted candidate for which, if it is a
// relayed candidate of the subscriber PeerConnection that must wait (see
// above), and reports whether it did. Called with negMu held.
func (p *Participant) holdRelayLocked(which PC, c webrtc.ICECandidateInit) bool {
	h := &p.relay
	if which != PCSub || h.released || !h.direct {
		return false
	}
	cand, err := ice.UnmarshalCandidate(strings.TrimPrefix(c.Candidate, "candidate:"))
	if err != nil || cand.Type() != ice.CandidateTypeRelay {
		return false
	}
	h.held = append(h.held, c)
	return true
}

// subChecking starts the hold's deadline when the subscriber
// PeerConnection's connectivity checks begin.
func (p *Participant) subChecking() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	h := &p.relay
	if h.released || !h.started.IsZero() {
		return
	}
	h.started = time.Now()
	p.armRelayHoldLocked()
}

// pubSelected learns from the pair the client nominated on the publisher
// PeerConnection whether it reaches the node directly.
func (p *Participant) pubSelected(pair *webrtc.ICECandidatePair) {
	if pair == nil || pair.Remote == nil {
		return
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	h := &p.relay
	if h.released {
		return
	}
	if pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
		p.releaseRelayLocked()
		return
	}
	h.pubDirect = true
	if !h.started.IsZero() {
		p.armRelayHoldLocked()
	}
}

// armRelayHoldLocked (re)sets the timer that adds the held candidates.
// Called with negMu held, after the checks began.
func (p *Participant) armRelayHoldLocked() {
	h := &p.relay
	d := relayHoldUnknown
	if h.pubDirect {
		d = relayHoldDirect
	}
	d -= time.Since(h.started)
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timer = time.AfterFunc(max(d, 0), func() {
		p.negMu.Lock()
		defer p.negMu.Unlock()
		p.releaseRelayLocked()
	})
}

// releaseRelayLocked adds the held relayed candidates to the subscriber
// PeerConnection (or to its early candidates before its remote
// description) and lets later ones through. Called with negMu held.
func (p *Participant) releaseRelayLocked() {
	h := &p.relay
	if h.released {
		return
	}
	h.released = true
	if h.timer != nil {
		h.timer.Stop()
	}
	held := h.held
	h.held = nil
	if p.closing.Load() {
		return
	}
	if p.subPC.RemoteDescription() == nil {
		p.early[PCSub] = append(p.early[PCSub], held...)
		return
	}
	for _, c := range held {
		if err := p.subPC.AddICECandidate(c); err != nil {
			p.log.Debug("add held relayed candidate", "err", refused(ErrBadCandidate, "add", err))
		}
	}
}

// watchPubPair calls pubSelected whenever the client nominates a pair on
// the publisher PeerConnection.
func (p *Participant) watchPubPair() {
	p.pubPC.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		go p.pubSelected(pair)
	})
}
