package turn

import (
	"net/netip"
	"sync"
	"time"
)

// bucket is a token bucket. Tokens are bytes for bandwidth limits and
// answers for the 401 limit. The zero value with rate 0 allows everything.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; 0: unlimited
	burst  float64
	tokens float64
	last   time.Duration // monotonic time of the last refill
}

func newBucket(rate, burst float64, now time.Duration) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take removes n tokens if there are enough and reports whether it did.
func (b *bucket) take(n float64, now time.Duration) bool {
	if b.rate == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now > b.last {
		b.tokens += b.rate * (now - b.last).Seconds()
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// clock is a monotonic clock: the time since the server was built.
type clock struct{ start time.Time }

func (c clock) now() time.Duration { return time.Since(c.start) }

// sourceLimiter limits events (answers to unauthenticated sources) per
// source: an IPv4 address, or an IPv6 /64 (what one host or one customer
// commonly has). It tracks at most max sources and, when full, forgets the
// one it heard from least recently, so a busy source keeps its empty
// bucket however many others come and go.
type sourceLimiter struct {
	rate, burst float64
	max         int // most sources tracked

	mu         sync.Mutex // guards the following fields
	srcs       map[netip.Addr]*srcEntry
	head, tail *srcEntry // most and least recently used
}

// srcEntry is one source's bucket in the limiter's recency list.
type srcEntry struct {
	key        netip.Addr
	b          *bucket
	prev, next *srcEntry // toward head, toward tail
}

// maxSources bounds the memory of the 401 limiter: ~100 bytes a source.
const maxSources = 100000

func newSourceLimiter(rate float64, burst int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: float64(burst), max: maxSources, srcs: map[netip.Addr]*srcEntry{}}
}

// sourceKey is the limiter's key of src: the address for IPv4, its /64
// for IPv6.
func sourceKey(src netip.Addr) netip.Addr {
	src = src.Unmap().WithZone("")
	if src.Is6() {
		return netip.PrefixFrom(src, 64).Masked().Addr()
	}
	return src
}

// allow takes one token of src's bucket.
func (l *sourceLimiter) allow(src netip.Addr, now time.Duration) bool {
	if l.rate == 0 {
		return true
	}
	key := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.srcs[key]
	if e == nil {
		if len(l.srcs) >= l.max && l.tail != nil {
			old := l.tail
			l.unlinkLocked(old)
			delete(l.srcs, old.key)
		}
		e = &srcEntry{key: key, b: newBucket(l.rate, l.burst, now)}
		l.srcs[key] = e
	} else {
		l.unlinkLocked(e)
	}
	// Link e at the head.
	e.next = l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
	return e.b.take(1, now)
}

func (l *sourceLimiter) unlinkLocked(e *srcEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// quota counts live allocations per session and in total, holds each
// session's relay sockets so that EndSession can close them, and
// remembers ended sessions until their credentials can no longer allocate.
type quota struct {
	perSession, total int

	mu       sync.Mutex // guards the following fields
	sessions map[string]*sessionAllocs
	ended    map[string]time.Duration // ended session → when it may be forgotten (clock time)
	sweepAt  time.Duration            // next sweep of ended
	n        int
	zero     chan struct{} // closed and replaced when n drops to 0
}

// sessionAllocs is one session's live allocations: reserved counts those
// not yet opened too.
type sessionAllocs struct {
	reserved int
	conns    map[*relayConn]struct{}
}

func newQuota(perSession, total int) *quota {
	return &quota{perSession: perSession, total: total, sessions: map[string]*sessionAllocs{},
		ended: map[string]time.Duration{}, zero: make(chan struct{})}
}

// Quota verdicts.
const (
	quotaOK    = ""
	quotaUser  = "user"  // the session holds its most allocations
	quotaTotal = "total" // the server holds its most allocations
	quotaEnded = "ended" // the session ended
)

// check reports which limit a new allocation of session would exceed.
func (q *quota) check(session string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkLocked(session)
}

func (q *quota) checkLocked(session string) string {
	switch {
	case q.isEndedLocked(session):
		return quotaEnded
	case q.n >= q.total:
		return quotaTotal
	case q.sessions[session] != nil && q.sessions[session].reserved >= q.perSession:
		return quotaUser
	}
	return quotaOK
}

func (q *quota) isEndedLocked(session string) bool {
	_, ok := q.ended[session]
	return ok
}

// isEnded reports whether session ended.
func (q *quota) isEnded(session string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.isEndedLocked(session)
}

// acquire reserves an allocation for session unless a limit is reached.
func (q *quota) acquire(session string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.checkLocked(session); r != quotaOK {
		return r
	}
	sa := q.sessions[session]
	if sa == nil {
		sa = &sessionAllocs{conns: map[*relayConn]struct{}{}}
		q.sessions[session] = sa
	}
	sa.reserved++
	q.n++
	return quotaOK
}

// attach records rc as an open allocation of its session, reserved by
// acquire. It returns false if the session ended meanwhile: the caller
// closes rc, which releases the reservation.
func (q *quota) attach(rc *relayConn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isEndedLocked(rc.session) {
		return false
	}
	q.sessions[rc.session].conns[rc] = struct{}{}
	return true
}

// release returns a reservation of session, and forgets rc (nil: the
// allocation never opened).
func (q *quota) release(session string, rc *relayConn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	sa := q.sessions[session]
	if sa == nil {
		panic("turn: allocation released twice")
	}
	delete(sa.conns, rc)
	if sa.reserved--; sa.reserved <= 0 {
		delete(q.sessions, session)
	}
	if q.n--; q.n == 0 {
		close(q.zero)
		q.zero = make(chan struct{})
	}
	if q.n < 0 {
		panic("turn: allocation count below zero")
	}
}

// end marks session ended until forget (clock time) and returns its open
// relay sockets, for the caller to close outside the lock. Ended entries
// are swept at most once a minute, so their memory is bounded by the
// sessions that end within one credential lifetime.
func (q *quota) end(session string, now, forget time.Duration) []*relayConn {
	q.mu.Lock()
	defer q.mu.Unlock()
	if now >= q.sweepAt {
		for k, t := range q.ended {
			if now >= t {
				delete(q.ended, k)
			}
		}
		q.sweepAt = now + time.Minute
	}
	if t, ok := q.ended[session]; !ok || t < forget {
		q.ended[session] = forget
	}
	sa := q.sessions[session]
	if sa == nil {
		return nil
	}
	conns := make([]*relayConn, 0, len(sa.conns))
	for rc := range sa.conns {
		conns = append(conns, rc)
	}
	return conns
}

// endedCount returns the ended sessions remembered.
func (q *quota) endedCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ended)
}

// count returns the live allocations and a channel closed when they next
// drop to zero.
func (q *quota) count() (int, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.zero
}
