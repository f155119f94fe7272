package bridge

import (
	"runtime"
	"sync"
)

// Writer groups: the participants' DownTracks are written by a few writer
// goroutines (one per GOMAXPROCS at start), not one each. A reader's
// fan-out marks each subscriber's DownTrack ready in its group; the group's
// writer takes the whole ready list at once and drains it within one egress
// round (batch.go), so one packet fanned out to a hundred subscribers is one
// writer wake-up and two sendmmsg calls instead of a hundred goroutine
// switches and a hundred sendto. A writer exits when its group has no
// DownTrack left, and starts again with the next one.
//
// Sinks (Room.Subscribe) keep a writer goroutine each: a sink's WriteRTP is
// another component's code, and one slow sink must not hold up a group.

// groupDrainMax bounds what one DownTrack writes per turn, so that a round
// ends after at most this many entries per ready DownTrack; one with more
// goes to the back of the ready list.
const groupDrainMax = queueLen

// wgroup is one writer goroutine and the DownTracks it serves.
type wgroup struct {
	wake chan struct{}  // capacity 1
	buf  [slotSize]byte // the writer's packet buffer, lent to each DownTrack it serves

	// mu guards the following fields.
	mu      sync.Mutex
	ready   []*DownTrack // scheduled, in order
	n       int          // attached DownTracks
	running bool         // a writer goroutine serves the group
}

// groups are the process's writer groups; DownTracks of every bridge in
// the process share them.
var groups = func() []*wgroup {
	g := make([]*wgroup, max(1, runtime.GOMAXPROCS(0)))
	for i := range g {
		g[i] = &wgroup{wake: make(chan struct{}, 1)}
	}
	return g
}()

// pickGroup returns the group with the fewest DownTracks.
func pickGroup() *wgroup {
	best, bestN := groups[0], -1
	for _, g := range groups {
		g.mu.Lock()
		n := g.n
		g.mu.Unlock()
		if bestN < 0 || n < bestN {
			best, bestN = g, n
		}
	}
	return best
}

// attach counts a DownTrack in and starts the writer if none runs.
func (g *wgroup) attach() {
	g.mu.Lock()
	g.n++
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
}

// detach counts a DownTrack out; the writer exits when none is left.
func (g *wgroup) detach() {
	g.mu.Lock()
	g.n--
	g.mu.Unlock()
	g.signal()
}

// schedule appends dt to the ready list (dt.sched was false) and wakes the
// writer when the list was empty. Allocates only when the list grows past
// its largest size so far.
func (g *wgroup) schedule(dt *DownTrack) {
	g.mu.Lock()
	g.ready = append(g.ready, dt)
	first := len(g.ready) == 1
	g.mu.Unlock()
	if first {
		g.signal()
	}
}

func (g *wgroup) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// loop is the group's writer: it takes the ready list and serves it within
// one egress round, until the group has no DownTrack and nothing ready.
func (g *wgroup) loop() {
	var turn []*DownTrack
	for {
		g.mu.Lock()
		if len(g.ready) == 0 {
			if g.n == 0 {
				g.running = false
				g.mu.Unlock()
				return
			}
			g.mu.Unlock()
			<-g.wake
			continue
		}
		turn, g.ready = g.ready, turn[:0]
		g.mu.Unlock()
		out.begin()
		for i, dt := range turn {
			dt.serve(&g.buf)
			turn[i] = nil
		}
		out.end()
	}
}
