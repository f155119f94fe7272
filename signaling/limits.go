package signaling

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// maxSources bounds the per-source entries kept. Entries with a live socket
// or participant are bounded by the node's caps; idle ones only remember a
// join budget, so at this size they are all forgotten at once.
const maxSources = 1 << 16

// maxForwardedHops bounds the X-Forwarded-For entries looked at.
const maxForwardedHops = 8

// sourceOf names the source of a request: an IPv4 address, or the /64 of an
// IPv6 address (one host usually holds a whole /64); IPv4-mapped IPv6
// counts as IPv4. The address is the TCP peer's, unless that peer is one of
// trusted (a reverse proxy of the operator's): then it is the last address
// of X-Forwarded-For that is not itself trusted. From any other peer
// X-Forwarded-For is ignored, since anyone can send it. ok is false for a
// peer address that does not parse.
func sourceOf(r *http.Request, trusted []netip.Prefix) (src netip.Prefix, ok bool) {
	a, ok := parseHost(r.RemoteAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	if isTrusted(a, trusted) {
		// The right-most entry was written by the proxy that reached us;
		// walk left past the operator's own proxies only.
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(v, ",")...)
		}
		for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxForwardedHops; i-- {
			h, ok := parseHost(strings.TrimSpace(hops[i]))
			if !ok {
				break
			}
			a = h
			if !isTrusted(h, trusted) {
				break
			}
		}
	}
	if a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	return netip.PrefixFrom(a, 64).Masked(), true
}

// parseHost parses "addr", "addr:port" or "[addr]:port", unmapped and
// without zone.
func parseHost(s string) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sources enforces the per-source and node-wide limits on sockets and joins
// (docs/security.md): one source may hold cfg.MaxPerSource sockets and as
// many participants, and start joins at cfg.SourceJoinRate; the node holds at
// most cfg.MaxUnjoined sockets that have not sent join.
type sources struct {
	maxPer      int        // static
	maxUnjoined int        // static
	joinRate    rate.Limit // static
	joinBurst   int        // static
	msgRate     rate.Limit // static
	msgBurst    int        // static

	refused   atomic.Uint64 // connections and joins refused as busy
	throttled atomic.Uint64 // messages whose reading waited for the source's budget

	// mu guards the following fields.
	mu       sync.Mutex
	m        map[netip.Prefix]*source
	unjoined int // sockets node-wide that have not sent join
}

// source is what one source holds.
type source struct {
	conns        int           // open WebSockets
	participants int           // participants it joined, attached or not
	joins        *rate.Limiter // join and resume attempts
	// msgs is the budget of messages all the source's sockets share. It
	// lives while a socket of the source is open (conns > 0).
	msgs *rate.Limiter
}

func newSources(cfg Config) *sources {
	return &sources{
		maxPer:      cfg.MaxPerSource,
		maxUnjoined: cfg.MaxUnjoined,
		joinRate:    rate.Limit(cfg.SourceJoinRate),
		joinBurst:   cfg.SourceJoinBurst,
		msgRate:     rate.Limit(cfg.SourceMessageRate),
		msgBurst:    cfg.SourceMessageBurst,
		m:           map[netip.Prefix]*source{},
	}
}

// getLocked returns src's entry, making it if absent. s.mu is held.
func (s *sources) getLocked(src netip.Prefix) *source {
	e := s.m[src]
	if e == nil {
		if len(s.m) >= maxSources {
			s.sweepLocked(time.Time{})
		}
		e = &source{joins: rate.NewLimiter(s.joinRate, s.joinBurst), msgs: rate.NewLimiter(s.msgRate, s.msgBurst)}
		s.m[src] = e
	}
	return e
}

// putLocked forgets src's entry once it holds nothing and its join budget
// is whole again. s.mu is held.
func (s *sources) putLocked(src netip.Prefix, e *source) {
	if e.conns == 0 && e.participants == 0 && e.joins.Tokens() >= float64(s.joinBurst) {
		delete(s.m, src)
	}
}

// sweepLocked forgets the entries that hold nothing; with a zero now, also
// those whose join budget is not whole yet (it is forgiven). s.mu is held.
func (s *sources) sweepLocked(now time.Time) {
	for k, e := range s.m {
		if e.conns == 0 && e.participants == 0 && (now.IsZero() || e.joins.TokensAt(now) >= float64(s.joinBurst)) {
			delete(s.m, k)
		}
	}
}

// sweep forgets idle entries; Run calls it now and then.
func (s *sources) sweep() {
	s.mu.Lock()
	s.sweepLocked(time.Now())
	s.mu.Unlock()
}

// connect admits a new, not yet joined socket from src, or returns a busy error.
func (s *sources) connect(src netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.getLocked(src)
	var err error
	switch {
	case e.conns >= s.maxPer:
		err = errBusyConns
	case s.unjoined >= s.maxUnjoined:
		err = errBusyUnjoined
	}
	if err != nil {
		s.putLocked(src, e)
		s.refused.Add(1)
		return err
	}
	e.conns++
	s.unjoined++
	return nil
}

// messages returns the message budget src's sockets share; src holds an
// open socket (connect admitted it and disconnect has not run).
func (s *sources) messages(src netip.Prefix) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(src).msgs
}

// wait takes one message from the source's shared budget, waiting (reading
// nothing more from that socket) while it is spent: many sockets of one
// source, each within its own rate, cost the node at most the source's
// rate together, and a busy source slows only itself. It returns ctx's
// error when the socket ends while waiting.
func (s *sources) wait(ctx context.Context, lim *rate.Limiter) error {
	r := lim.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	s.throttled.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// joined notes that a socket connect admitted sent its first message.
func (s *sources) joined() {
	s.mu.Lock()
	s.unjoined--
	s.mu.Unlock()
}

// disconnect gives back what connect took. unjoined says the socket never
// got as far as joined.
func (s *sources) disconnect(src netip.Prefix, unjoined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if unjoined {
		s.unjoined--
	}
	if e := s.m[src]; e != nil {
		e.conns--
		s.putLocked(src, e)
	}
}

// join takes one join (or resume) from src's budget, or returns a busy error.
func (s *sources) join(src netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.getLocked(src).joins.Allow() {
		s.refused.Add(1)
		return errBusyJoins
	}
	return nil
}

// addParticipant counts a new participant against src, or returns a busy error.
func (s *sources) addParticipant(src netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.getLocked(src)
	if e.participants >= s.maxPer {
		s.refused.Add(1)
		return errBusyParticipants
	}
	e.participants++
	return nil
}

// removeParticipant gives back what addParticipant took.
func (s *sources) removeParticipant(src netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[src]; e != nil {
		e.participants--
		s.putLocked(src, e)
	}
}
