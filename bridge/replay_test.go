package bridge

import (
	"slices"
	"testing"
	"time"
)

// TestReplayOnlyLiveRecentKeyframe: keyframe replay serves a subscriber
// that starts on a layer from the cache only when the layer is flowing and
// its keyframe is recent. A layer that stopped (paused upstream, an
// imported track nobody here wanted) or whose keyframe is old asks the
// source instead, and the subscriber's first packet is the fresh keyframe
// that answers; a live layer with a recent keyframe is replayed without
// asking. The bridge's coarse clock is moved by hand (no timing).
func TestReplayOnlyLiveRecentKeyframe(t *testing.T) {
	for _, tc := range []struct {
		name string
		// step is the clock advance before each of the 5 cached
		// packets (keyframe at sequence number 1); idle the one
		// between the last of them and Subscribe.
		step, idle time.Duration
		replay     bool
	}{
		{"live", 30 * time.Millisecond, 0, true},
		{"stopped", 30 * time.Millisecond, 3 * time.Second, false},
		{"stopped briefly", 30 * time.Millisecond, replayLive + 100*time.Millisecond, false},
		{"old keyframe", 400 * time.Millisecond, 100 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := unstartedBridge(t)
			r := b.NewRoom("replay", RoomEvents{})
			defer r.Close()
			src := newRecSource()
			pub, err := r.Publish(vp8Params("t1", 1), src)
			if err != nil {
				t.Fatal(err)
			}
			l := pub.up.layers[0]
			pb := &packetBuilder{buf: make([]byte, 1500)}
			for s := uint16(0); s < 5; s++ {
				b.now.Add(int64(tc.step))
				pub.WriteRTP(0, pb.build(s, uint32(s)*3000, vp8Payload(0, uint32(s), s == 1), false))
			}
			b.now.Add(int64(tc.idle))
			sink := &recSink{log: true}
			sub, err := r.Subscribe("t1", 0, sink)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if tc.replay {
				eventually(t, 5*time.Second, "replay", func() bool { n, _, _, _ := sink.last(); return n == 4 })
				sink.mu.Lock()
				got := slices.Clone(sink.seqs)
				sink.mu.Unlock()
				if !slices.Equal(got, []uint16{1, 2, 3, 4}) {
					t.Fatalf("replayed %v, want the keyframe 1 and what followed", got)
				}
				// requestKeyframe records the request synchronously.
				if l.lastPLI.Load() != 0 || l.wantPLI.Load() {
					t.Fatal("a keyframe was asked for although the cached one was replayed")
				}
				return
			}
			eventually(t, 5*time.Second, "keyframe request", func() bool { return slices.Contains(src.keyframesAsked(), 0) })
			// The source answers: a delta still in flight, then the
			// keyframe and a delta after it.
			b.now.Add(int64(20 * time.Millisecond))
			pub.WriteRTP(0, pb.build(5, 5*3000, vp8Payload(0, 5, false), false))
			pub.WriteRTP(0, pb.build(6, 6*3000, vp8Payload(0, 6, true), false))
			pub.WriteRTP(0, pb.build(7, 7*3000, vp8Payload(0, 7, false), false))
			eventually(t, 5*time.Second, "fresh keyframe", func() bool { n, _, _, _ := sink.last(); return n >= 2 })
			sink.mu.Lock()
			got := slices.Clone(sink.seqs)
			sink.mu.Unlock()
			if !slices.Equal(got, []uint16{6, 7}) {
				t.Fatalf("subscriber got %v, want the fresh keyframe 6 then 7 (nothing from the stale cache)", got)
			}
		})
	}
}
