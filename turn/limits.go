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

// sourceLimiter limits events (401 answers) per source address.
type sourceLimiter struct {
	rate, burst float64
	max         int // most sources tracked; beyond, the oldest are forgotten

	mu   sync.Mutex // guards the following fields
	srcs map[netip.Addr]*bucket
}

func newSourceLimiter(rate float64, burst int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: float64(burst), max: 100000, srcs: map[netip.Addr]*bucket{}}
}

// allow takes one token of src's bucket.
func (l *sourceLimiter) allow(src netip.Addr, now time.Duration) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	b := l.srcs[src]
	if b == nil {
		if len(l.srcs) >= l.max {
			l.sweepLocked(now)
		}
		b = newBucket(l.rate, l.burst, now)
		l.srcs[src] = b
	}
	l.mu.Unlock()
	return b.take(1, now)
}

// sweepLocked forgets the sources whose bucket is full again (they are
// indistinguishable from new ones); if none is, it forgets them all.
func (l *sourceLimiter) sweepLocked(now time.Duration) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for ip, b := range l.srcs {
		b.mu.Lock()
		idle := now-b.last >= full
		b.mu.Unlock()
		if idle {
			delete(l.srcs, ip)
		}
	}
	if len(l.srcs) >= l.max {
		clear(l.srcs)
	}
}

// quota counts live allocations per user and in total.
type quota struct {
	perUser, total int

	mu    sync.Mutex // guards the following fields
	users map[string]int
	n     int
	zero  chan struct{} // closed and replaced when n drops to 0
}

func newQuota(perUser, total int) *quota {
	return &quota{perUser: perUser, total: total, users: map[string]int{}, zero: make(chan struct{})}
}

// check reports which limit a new allocation of user would exceed:
// "" (none), "user" or "total".
func (q *quota) check(user string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkLocked(user)
}

func (q *quota) checkLocked(user string) string {
	switch {
	case q.n >= q.total:
		return "total"
	case q.users[user] >= q.perUser:
		return "user"
	}
	return ""
}

// acquire reserves an allocation for user unless a limit is reached.
func (q *quota) acquire(user string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.checkLocked(user); r != "" {
		return r
	}
	q.users[user]++
	q.n++
	return ""
}

func (q *quota) release(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.users[user]--; q.users[user] <= 0 {
		delete(q.users, user)
	}
	if q.n--; q.n == 0 {
		close(q.zero)
		q.zero = make(chan struct{})
	}
	if q.n < 0 {
		panic("turn: allocation count below zero")
	}
}

// count returns the live allocations and a channel closed when they next
// drop to zero.
func (q *quota) count() (int, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.zero
}
