package signaling

import (
	"slices"
	"sync"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// forwarding is what a participant's client is told of last-N
// (wire.TypeForwarding): the video tracks the bridge pauses for it.
//
// The bridge reports a new set from its room loop (bridge
// ParticipantEvents.Paused) and must not wait; the client needs only the
// latest set. So a report replaces latest and queues one marker message
// (Type forwarding, no fields) unless one is already queued; writeLoop
// replaces the marker by the latest set when it reaches the socket, and
// skips it when that socket was already sent that set. However often the
// set changes while the client reads slowly or is detached, at most one
// forwarding message waits in its queue.
type forwarding struct {
	mu     sync.Mutex
	latest []string // the bridge's last report; guarded by mu
	queued bool     // a marker is in the send queue; guarded by mu
	sent   []string // what sentTo was last sent; guarded by mu
	sentTo *conn    // guarded by mu
}

// setPaused records the bridge's latest report for p and queues a marker.
// It never blocks (bridge callback).
func (p *participant) setPaused(ids []string) {
	f := &p.fwd
	f.mu.Lock()
	f.latest = ids
	queue := !f.queued
	f.queued = true
	f.mu.Unlock()
	if queue {
		p.send(&wire.Message{Type: wire.TypeForwarding})
	}
}

// resendForwarding queues a marker after a resume: the new socket's client
// starts from "nothing paused" (its welcome), so a non-empty set is sent
// again.
func (p *participant) resendForwarding() {
	f := &p.fwd
	f.mu.Lock()
	queue := !f.queued && len(f.latest) > 0
	f.queued = f.queued || queue
	f.mu.Unlock()
	if queue {
		p.send(&wire.Message{Type: wire.TypeForwarding})
	}
}

// forwardingFor turns a dequeued marker into the message for socket c: the
// latest set, or nil when c's client already has it (a client starts,
// after its welcome, with nothing paused).
func (p *participant) forwardingFor(c *conn) *wire.Message {
	f := &p.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = false
	if f.sentTo != c {
		f.sentTo, f.sent = c, nil
	}
	if slices.Equal(f.latest, f.sent) {
		return nil
	}
	f.sent = f.latest
	return &wire.Message{Type: wire.TypeForwarding, Paused: f.latest}
}
