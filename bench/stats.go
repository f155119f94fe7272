package bench

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Histogram counts non-negative integer values (microseconds here) in
// log-linear buckets: exact below 64, then 32 buckets per power of two, so a
// percentile is within 1.6 % of the true value. It is not safe for
// concurrent use; merge per-goroutine histograms with Merge.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    uint64
}

const (
	histSubBits  = 6 // values below 1<<histSubBits are exact
	histHalf     = 1 << (histSubBits - 1)
	histBuckets  = (1 << histSubBits) + (64-histSubBits)*histHalf
	freezeWindow = 500 * time.Millisecond // a gap longer than this between video frames is a freeze
)

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // ≥ 1
	top := v >> shift                    // in [histHalf, 2*histHalf)
	return (1 << histSubBits) + (shift-1)*histHalf + int(top-histHalf)
}

// histValue is the midpoint of bucket i.
func histValue(i int) float64 {
	if i < 1<<histSubBits {
		return float64(i)
	}
	j := i - (1 << histSubBits)
	shift := j/histHalf + 1
	top := uint64(j%histHalf + histHalf)
	lo := top << shift
	hi := (top+1)<<shift - 1
	return (float64(lo) + float64(hi)) / 2
}

// Add records one value; negative values count as 0.
func (h *Histogram) Add(v int64) {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	h.counts[histIndex(u)]++
	h.n++
	h.sum += float64(u)
	h.max = max(h.max, u)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of values.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the value at quantile q (0..1): the smallest bucket
// whose cumulative count reaches ceil(q·n), at its midpoint (exact below
// 64), never above the largest value seen. 0 when empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return float64(h.max)
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return math.Min(histValue(i), float64(h.max))
		}
	}
	return float64(h.max)
}

// Buckets returns the non-empty buckets as (value, count), for plots.
func (h *Histogram) Buckets() (vals []float64, counts []uint64) {
	for i, c := range h.counts {
		if c > 0 {
			vals = append(vals, histValue(i))
			counts = append(counts, c)
		}
	}
	return
}

// Summary is a distribution in a report. Durations are in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// SummaryMS summarises a histogram of microseconds in milliseconds.
func (h *Histogram) SummaryMS() Summary {
	if h.n == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.n,
		Mean:  round3(h.sum / float64(h.n) / 1000),
		P50:   round3(h.Quantile(0.50) / 1000),
		P95:   round3(h.Quantile(0.95) / 1000),
		P99:   round3(h.Quantile(0.99) / 1000),
		Max:   round3(float64(h.max) / 1000),
	}
}

// summarize returns the exact summary of a small sample (join times, one
// value per participant), in the sample's unit.
func summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	// Nearest-rank percentiles: the smallest value with at least q·n
	// values at or below it.
	q := func(p float64) float64 {
		r := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(r, 0), len(s)-1)]
	}
	return Summary{
		Count: uint64(len(s)),
		Mean:  round3(sum / float64(len(s))),
		P50:   round3(q(0.50)),
		P95:   round3(q(0.95)),
		P99:   round3(q(0.99)),
		Max:   round3(s[len(s)-1]),
	}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// lossCounter counts distinct packets of one sequence space (one layer of
// one stream) and how many were expected. Sequence numbers are 32-bit
// counters from the synthetic Stamp, so they do not wrap within a run.
// A segment is a stretch of contiguous reception; restart begins a new one
// (the bridge switched away from this layer and back), so the packets sent
// while the receiver was on another layer are not counted as lost.
type lossCounter struct {
	started  bool
	first    uint32
	last     uint32 // highest seen
	recv     uint64 // distinct packets in this segment
	dup      uint64
	seen     [lossWindow / 64]uint64 // bit seq%lossWindow: received
	expected uint64                  // folded from finished segments
	received uint64                  // folded from finished segments
}

// lossWindow is how far back a late (reordered or retransmitted) packet
// still counts as received rather than as lost.
const lossWindow = 4096

func (l *lossCounter) bit(seq uint32) (int, uint64) {
	i := seq % lossWindow
	return int(i / 64), 1 << (i % 64)
}

// add records seq and reports whether it was new (not a duplicate and not
// older than the window).
func (l *lossCounter) add(seq uint32) bool {
	if !l.started {
		l.started = true
		l.first, l.last = seq, seq
		l.seen = [lossWindow / 64]uint64{}
		w, b := l.bit(seq)
		l.seen[w] |= b
		l.recv++
		return true
	}
	switch {
	case seq > l.last:
		// The window slides: forget the bits of the sequence numbers it
		// now covers afresh, seq's own included (it held seq-lossWindow).
		if seq-l.last >= lossWindow {
			l.seen = [lossWindow / 64]uint64{}
		} else {
			for s := l.last + 1; s != seq+1; s++ {
				w, b := l.bit(s)
				l.seen[w] &^= b
			}
		}
		l.last = seq
	case l.last-seq >= lossWindow:
		return false // too late: stays counted as lost
	case seq < l.first:
		// Reordered before the segment's first packet: widen it.
		for s := seq + 1; s != l.first; s++ {
			w, b := l.bit(s)
			l.seen[w] &^= b
		}
		l.first = seq
	}
	w, b := l.bit(seq)
	if l.seen[w]&b != 0 {
		l.dup++
		return false
	}
	l.seen[w] |= b
	l.recv++
	return true
}

// restart folds the current segment into the totals; the next add begins
// a new segment.
func (l *lossCounter) restart() {
	if l.started {
		l.expected += uint64(l.last-l.first) + 1
		l.received += l.recv
	}
	l.started = false
	l.recv = 0
}

// totals returns the packets expected and received over all segments.
func (l *lossCounter) totals() (expected, received uint64) {
	expected, received = l.expected, l.received
	if l.started {
		expected += uint64(l.last-l.first) + 1
		received += l.recv
	}
	return
}

// jitter is the RFC 3550 interarrival jitter (section 6.4.1), computed from
// the send time in the Stamp instead of the RTP timestamp (same machine,
// same clock). It keeps the running average of J for the report.
type jitter struct {
	have    bool
	transit int64 // ns
	j       float64
	sum     float64
	n       uint64
}

func (j *jitter) add(sentNS, recvNS int64) {
	t := recvNS - sentNS
	if j.have {
		d := math.Abs(float64(t - j.transit))
		j.j += (d - j.j) / 16
		j.sum += j.j
		j.n++
	}
	j.have = true
	j.transit = t
}

// meanMS is the mean of J over the stream, in milliseconds.
func (j *jitter) meanMS() float64 {
	if j.n == 0 {
		return 0
	}
	return j.sum / float64(j.n) / 1e6
}

// freezes finds gaps longer than freezeWindow between rendered frames of
// one subscribed video within the steady window.
//
// A video last-N pauses (the server's forwarding message) is not frozen:
// while paused no gap counts, and after it resumes the gap counts from
// the resume on.
type freezes struct {
	before  bool      // a frame was rendered before the window
	last    time.Time // last rendered frame within the window
	count   int
	total   time.Duration
	paused  bool      // last-N pauses the video now
	resumed time.Time // when last-N last resumed it
}

// pause records that last-N paused (on) or resumed the video at t.
func (f *freezes) pause(on bool, t time.Time) {
	f.paused = on
	if !on {
		f.resumed = t
	}
}

// frame records a frame rendered at t, the window being [from, to).
func (f *freezes) frame(t, from, to time.Time) {
	switch {
	case t.Before(from):
		f.before = true
		return
	case !t.Before(to):
		return
	}
	last := f.last
	if last.IsZero() && f.before {
		last = from // rendering when the window opened
	}
	if f.resumed.After(last) && !f.resumed.Before(from) {
		last = f.resumed // paused since the last frame: the gap starts at the resume
	}
	if !last.IsZero() && !f.paused {
		if gap := t.Sub(last); gap > freezeWindow {
			f.count++
			f.total += gap
		}
	}
	f.last = t
}

// finish closes the stream's part of the window, [start, end), and returns
// its freezes: a stream that stopped rendering before end froze until end;
// one that rendered nothing in it froze for all of it.
func (f *freezes) finish(start, end time.Time) (int, time.Duration) {
	count, total := f.count, f.total
	last := f.last
	if last.IsZero() {
		last = start
	}
	if f.resumed.After(last) {
		last = f.resumed
	}
	if gap := end.Sub(last); gap > freezeWindow && !f.paused {
		count++
		total += gap
	}
	return count, total
}

// pauseSpans are the stretches of time last-N paused one video for one
// subscriber: [start, end), end zero while it still is.
type pauseSpans []pauseSpan

type pauseSpan struct{ start, end time.Time }

// within returns how long the video was paused in [from, to).
func (ps pauseSpans) within(from, to time.Time) time.Duration {
	var d time.Duration
	for _, s := range ps {
		b, e := maxTime(s.start, from), s.end
		if e.IsZero() || e.After(to) {
			e = to
		}
		if e.After(b) {
			d += e.Sub(b)
		}
	}
	return d
}
