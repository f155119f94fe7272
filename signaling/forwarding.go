package signaling

import (
	"sync"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// forwarding is what a participant's client is told of last-N
// (wire.TypeForwarding): all its videos forwarded, or the list of those
// forwarded (bounded by N's publishers and its pins; the paused ones are
// the others, which may be ~1,000 in a large meeting and are never listed).
//
// The bridge reports a new state from its room loop (bridge
// ParticipantEvents.Forwarding) and must not wait; the client needs only
// the latest. So a report replaces the state and queues one marker message
// (Type forwarding, no fields) unless one is already queued; writeLoop
// replaces the marker by the latest state when it reaches the socket, and
// skips it when that socket was already sent that report. However often
// the state changes while the client reads slowly or is detached, at most
// one such marker waits in its queue.
//
// A client counts a video it learned of after the latest forwarding as
// forwarded until the next one. The bridge reports after every new video
// subscription, but that report may reach the queue before the
// track-published naming the video (the two travel separately); so after a
// video's track-published the state is sent once more (afterTrack), in
// queue order behind it, while last-N limits.
type forwarding struct {
	mu      sync.Mutex
	limited bool     // last-N does not forward every video; guarded by mu
	video   []string // with limited: the forwarded ones; guarded by mu
	seq     uint64   // bumped by each report; guarded by mu
	queued  bool     // a report marker is in the send queue; guarded by mu
	// after is the latest marker queued behind a track-published: it is
	// sent even when its socket already has the latest report.
	after   *wire.Message // guarded by mu
	sentSeq uint64        // the report sentTo was last sent; guarded by mu
	sentTo  *conn         // guarded by mu
}

// setForwarding records the bridge's latest report for p and queues a
// marker. It never blocks (bridge callback).
func (p *participant) setForwarding(all bool, ids []string) {
	f := &p.fwd
	f.mu.Lock()
	f.limited, f.video = !all, ids
	f.seq++
	queue := !f.queued
	f.queued = true
	f.mu.Unlock()
	if queue {
		p.send(&wire.Message{Type: wire.TypeForwarding})
	}
}

// resendForwarding queues a marker after a resume: the new socket's client
// starts from "everything forwarded" (its welcome), so a limited state is
// sent again.
func (p *participant) resendForwarding() {
	f := &p.fwd
	f.mu.Lock()
	queue := !f.queued && f.limited
	f.queued = f.queued || queue
	f.mu.Unlock()
	if queue {
		p.send(&wire.Message{Type: wire.TypeForwarding})
	}
}

// afterMarker tells a marker queued by afterVideoPublished from a report's.
const afterMarker = -1

// afterVideoPublished queues, for every participant of r but the track's
// publisher, the forwarding state behind the track-published of a video
// just queued (see forwarding). r.mu must not be held.
func (r *room) afterVideoPublished(publisher string) {
	r.mu.Lock()
	ps := make([]*participant, 0, len(r.participants))
	for _, p := range r.participants {
		if p.id != publisher {
			ps = append(ps, p)
		}
	}
	r.mu.Unlock()
	for _, p := range ps {
		p.afterVideo()
	}
}

// afterVideo queues the forwarding state behind a video's track-published
// just queued for p, while last-N limits.
func (p *participant) afterVideo() {
	f := &p.fwd
	f.mu.Lock()
	var m *wire.Message
	if f.limited {
		m = &wire.Message{Type: wire.TypeForwarding, TS: afterMarker}
		f.after = m
	}
	f.mu.Unlock()
	if m != nil {
		p.send(m)
	}
}

// forwardingFor turns dequeued marker m into the message for socket c: the
// latest state, or nil when c's client already has it (a client starts,
// after its welcome, with everything forwarded) and m need not follow a
// track-published.
func (p *participant) forwardingFor(c *conn, m *wire.Message) *wire.Message {
	f := &p.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	force := m == f.after
	if force {
		f.after = nil
	}
	if m.TS != afterMarker {
		f.queued = false
	}
	if f.sentTo != c {
		f.sentTo, f.sentSeq = c, 0
		if !f.limited {
			f.sentSeq = f.seq // the welcome said as much
		}
	}
	if f.sentSeq == f.seq && !force {
		return nil
	}
	f.sentSeq = f.seq
	if !f.limited {
		return &wire.Message{Type: wire.TypeForwarding, All: true}
	}
	return &wire.Message{Type: wire.TypeForwarding, Video: f.video}
}
