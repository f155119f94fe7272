package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Draining (issue 12 item 4, DESIGN.md section 4).
//
// A draining node takes no new participant: a join is answered with a
// redirect to another node (or, when there is none, an unavailable error),
// and /readyz says not ready so that load balancers stop sending clients.
// Drain then moves the node's participants a few at a time, with jitter, to
// the nodes its Target picks: each gets a redirect message, closes its
// socket, and joins the other node with its resume secret (resume.go).
// Target is asked for a node in the regions the participant may be held in
// (its meeting's stored pin, narrowed by its join's: participant.regionPin),
// since a node outside them would refuse it and end its session; a
// participant with no such node now (none there, or all full) stays here
// and is tried again at the next batch, until the drain ends. A join that
// reaches the draining node (a client failing over from a dead node with
// its resume secret, or a join no placement sent elsewhere) is redirected
// under the same regions: its join's pin narrowed by its meeting's stored
// one (redirectJoin). The
// node lets a redirected participant go as soon as its socket closes
// (without the resume window), so the meeting's other bridges see it leave
// here before it joins there. Its meeting goes on through the cascade.

// DrainOptions configure Drain.
type DrainOptions struct {
	// Target picks the node one participant moves to: that node's public
	// base URL, in one of the regions of pin when pin is not empty (the
	// only regions the participant may be held in: its meeting's stored
	// pin, narrowed by its join's). ok is false when no node can take the
	// participant now; Drain tries again at its next batch. Target must not
	// modify pin. Required.
	Target func(pin []string) (url string, ok bool)
	// Batch is how many participants are moved at once [5].
	Batch int
	// Interval is the pause between batches, ±50% jitter [1s].
	Interval time.Duration
}

// redirectRetry is how long a redirected participant that is still here
// waits before it is sent the redirect again (a lost message, a client
// that was busy).
const redirectRetry = 10 * time.Second

var (
	// errDraining answers a join on a draining node that has nowhere to
	// send it.
	errDraining = &wire.Error{Code: wire.CodeUnavailable, Message: "this server is draining: try again shortly"}
	// errMoved is the cause of a redirected participant's leave (logs).
	errMoved = &wire.Error{Code: "moved", Message: "moved to another node"}
	// errRedirected: the join was answered with a redirect; the session
	// ends without an error message.
	errRedirected = errors.New("redirected")
)

// StartDrain makes the node take no new participant from now on and
// report not ready. Idempotent; there is no way back (a drained node
// leaves the cluster).
func (s *Server) StartDrain() {
	if !s.moves.draining.Swap(true) {
		s.log.Info("draining: taking no new participants")
	}
}

// Draining reports whether StartDrain was called.
func (s *Server) Draining() bool { return s.moves.draining.Load() }

// Redirected is the number of participants this node moved to others.
func (s *Server) Redirected() uint64 { return s.moves.redirected.Load() }

// Arrived is the number of participants that came from another node with
// their resume secret (moved by a drain, or after their node died).
func (s *Server) Arrived() uint64 { return s.moves.arrived.Load() }

// Participants is the number of participants on this node, joins in
// progress and participants waiting for a resume included.
func (s *Server) Participants() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots
}

// Drain starts draining (StartDrain) and moves every participant to the
// nodes o.Target picks. It returns nil once no participant is left here,
// or ctx's error when ctx ends first.
func (s *Server) Drain(ctx context.Context, o DrainOptions) error {
	if o.Target == nil {
		return errors.New("signaling: Drain needs a Target")
	}
	if o.Batch <= 0 {
		o.Batch = 5
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	s.moves.mu.Lock()
	s.moves.target = o.Target // redirectJoin
	s.moves.mu.Unlock()
	s.StartDrain()
	lastKept := 0
	for {
		if s.Participants() == 0 {
			s.log.Info("drained: no participant left")
			return nil
		}
		moved, kept := 0, 0
		for _, p := range s.toRedirect(time.Now()) {
			if moved == o.Batch {
				break
			}
			url, ok := o.Target(p.regionPin)
			if !ok {
				kept++ // nowhere in its regions now: stays, tried again
				continue
			}
			s.redirect(p, url)
			moved++
		}
		if kept != lastKept && moved < o.Batch {
			// (A full batch may not have asked for everyone: the count
			// is only known when it did not fill.)
			lastKept = kept
			if kept > 0 {
				s.log.Info("draining: no node can take some participants in the regions they may be held in; they stay until a node can or the drain ends", "participants", kept)
			}
		}
		jitter := time.Duration(rand.Int64N(int64(o.Interval))) - o.Interval/2
		t := time.NewTimer(o.Interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.done:
			t.Stop()
			return errShutdown
		case <-t.C:
		}
	}
}

// toRedirect returns the connected participants that were not sent a
// redirect in the last redirectRetry, in no promised order.
func (s *Server) toRedirect(now time.Time) []*participant {
	s.mu.Lock()
	ps := make([]*participant, 0, len(s.participants))
	for _, p := range s.participants {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	s.moves.mu.Lock()
	defer s.moves.mu.Unlock()
	if s.moves.sent == nil {
		s.moves.sent = map[*participant]time.Time{}
	}
	var out []*participant
	for _, p := range ps {
		p.mu.Lock()
		connected, closed := p.conn != nil, p.closed
		p.mu.Unlock()
		at, sent := s.moves.sent[p]
		if closed {
			delete(s.moves.sent, p)
			continue
		}
		// A detached participant cannot hear a redirect: it resumes here
		// first (and is redirected then) or its resume window ends.
		if !connected || (sent && now.Sub(at) < redirectRetry) {
			continue
		}
		out = append(out, p)
	}
	for k, at := range s.moves.sent {
		if now.Sub(at) > 10*redirectRetry {
			delete(s.moves.sent, k) // gone without our seeing it closed
		}
	}
	return out
}

// redirect tells p to continue on the node at url.
func (s *Server) redirect(p *participant, url string) {
	s.moves.mu.Lock()
	s.moves.sent[p] = time.Now()
	s.moves.mu.Unlock()
	s.moves.redirected.Add(1)
	p.send(&wire.Message{Type: wire.TypeRedirect, URL: url})
	p.log.Debug("participant redirected")
}

// wasRedirected reports whether p was sent a redirect by the drain.
func (s *Server) wasRedirected(p *participant) bool {
	s.moves.mu.Lock()
	defer s.moves.mu.Unlock()
	_, ok := s.moves.sent[p]
	return ok
}

// redirectJoin answers a join on a draining node: a redirect to the node
// the drain's Target picks in the regions the join may be held in, or,
// when there is none, errPinnedFull under a pin and errDraining without.
// Those regions are the join's pin (this node's --region-pin and its
// token's regions claim) narrowed by its meeting's stored pin, looked up
// in the directory as placement does: a resume from another node (its
// node died) was placed by nobody, and sent outside them it would be
// refused there.
func (s *Server) redirectJoin(ctx context.Context, c *conn, m *wire.Message) error {
	s.moves.mu.Lock()
	target := s.moves.target
	s.moves.mu.Unlock()
	if target == nil {
		return errDraining
	}
	pin := s.redirectPin(ctx, m)
	url, ok := target(pin)
	if !ok {
		if len(pin) > 0 {
			s.plc.refused.Add(1)
			return errPinnedFull
		}
		return errDraining
	}
	if err := writeNow(ctx, c.ws, &wire.Message{Type: wire.TypeRedirect, URL: url}); err != nil {
		return errRedirected // the socket is gone: nothing to tell
	}
	return errRedirected
}

// redirectPin is the pin a join redirected by a draining node goes under:
// the join's own (joinPin), narrowed by its meeting's stored pin when the
// directory answers within placeLookupTimeout and holds the meeting (a
// meeting all of whose bridges died is gone from it: then the join's own).
func (s *Server) redirectPin(ctx context.Context, m *wire.Message) []string {
	pin := s.joinPin(m) // place.go
	key := mesh.NewRoomKey(s.cfg.RoomKey, m.Room)
	lctx, cancel := context.WithTimeout(ctx, placeLookupTimeout)
	room, ok, err := s.cfg.Directory.Lookup(lctx, key)
	cancel()
	if err == nil && ok {
		pin = intersectPins(pin, room.Pin)
	}
	return pin
}

// socketClosed is what happens to p when its socket c ends without a
// leave: a participant the drain redirected leaves at once (it is joining
// another node), any other is detached and may resume for the resume
// window.
func (s *Server) socketClosed(p *participant, c *conn) {
	if s.wasRedirected(p) {
		p.mu.Lock()
		current := p.conn == c
		p.mu.Unlock()
		if current {
			c.close(1001, "")
			s.leave(p, errMoved)
			return
		}
	}
	s.detach(p, c)
}

// maxAlternates bounds the URLs GET /alternates lists.
const maxAlternates = 8

// handleAlternates serves GET /alternates: {"urls": [...]}, the base URLs
// of other nodes a client may resume on when it loses this one (failover),
// this node's region first. Only node URLs: no room, participant or load.
// Same origin as the page that asks; not cached.
func (s *Server) handleAlternates(w http.ResponseWriter, r *http.Request) {
	urls := []string{}
	if s.cfg.Alternates != nil {
		for _, u := range s.cfg.Alternates() {
			if len(urls) < maxAlternates && validProbeURL(u) {
				urls = append(urls, u)
			}
		}
	}
	body, _ := json.Marshal(struct {
		URLs []string `json:"urls"`
	}{urls})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(body)
}
