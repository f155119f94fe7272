package bench

import (
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
)

// TestLastNPauseNotLossOrFreeze: a video last-N pauses for two seconds (the
// forwarding messages say so) loses no packets and does not freeze in the
// figures, even when its resume begins with a replay of frames cached
// before the pause; the pause is counted as paused time. Without the messages the
// same packets are 63 lost and one freeze.
func TestLastNPauseNotLossOrFreeze(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	run := func(tell bool) (lost uint64, freezes int, paused time.Duration) {
		r := &runner{}
		r.fromNS.Store(t0.UnixNano())
		r.toNS.Store(at(6000).UnixNano())
		p := &participant{run: r}
		s := &stream{sub: p, video: true, trackID: "v1", layer: -1, frames: map[uint64]*framePackets{}, pending: map[uint32]bool{}}
		p.streams = []*stream{s}
		// One packet per frame, every 33 ms; the bridge forwards nothing
		// from 1 s to 3.1 s (paused by last-N), then a keyframe.
		for f := 0; f < 180; f++ {
			ms := f * 33
			if tell && f == 31 {
				p.forwarding([]string{"v1"}, at(1010))
			}
			if tell && f == 91 {
				p.forwarding(nil, at(3000))
			}
			if ms >= 1000 && ms < 3100 {
				continue
			}
			if tell && f == 94 {
				// On resume the bridge first replays what it cached
				// before the pause (frames 25-30), then a fresh keyframe.
				for g := 25; g <= 30; g++ {
					v := client.VideoInfo{Stamp: client.Stamp{Frame: uint32(g), SentNS: at(g * 33).UnixNano()}, Key: g == 25, Count: 1, Seq: uint32(g)}
					s.onVideo(at(ms), v, 100)
				}
			}
			v := client.VideoInfo{Stamp: client.Stamp{Frame: uint32(f), SentNS: at(ms).UnixNano()}, Key: f == 0 || f == 94, Count: 1, Seq: uint32(f)}
			s.onVideo(at(ms+5), v, 100)
		}
		exp, got := s.loss[0].totals()
		c, _ := s.frz.finish(t0, at(6000))
		return exp - got, c, p.pauses["v1"].within(t0, at(6000))
	}
	if lost, frz, paused := run(true); lost != 0 || frz != 0 || paused != 1990*time.Millisecond {
		t.Errorf("paused by last-N: %d packets lost, %d freezes, %v paused; want 0, 0, 1.99s", lost, frz, paused)
	}
	if lost, frz, paused := run(false); lost != 63 || frz != 1 || paused != 0 {
		t.Errorf("not told: %d packets lost, %d freezes, %v paused; want 63, 1, 0", lost, frz, paused)
	}
}

// TestPauseSpansWithin: paused time is clipped to the window; an open span
// lasts until the window's end.
func TestPauseSpansWithin(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	ps := pauseSpans{{start: s(0), end: s(3)}, {start: s(5), end: s(6)}, {start: s(8)}}
	if got := ps.within(s(2), s(10)); got != 4*time.Second {
		t.Errorf("within [2,10): %v, want 4s", got)
	}
	if got := ps.within(s(3), s(5)); got != 0 {
		t.Errorf("within [3,5): %v, want 0", got)
	}
}
