package bridge

import (
	"fmt"
	"slices"
	"sync"
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
			pub, src := publishVP8(t, r, 1)
			l := pub.up.layers[0]
			pb := &packetBuilder{buf: make([]byte, 1500)}
			for s := uint16(0); s < 5; s++ {
				b.now.Advance(int64(tc.step))
				pub.WriteRTP(0, pb.build(s, uint32(s)*3000, vp8Payload(0, uint32(s), s == 1), false))
			}
			b.now.Advance(int64(tc.idle))
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
			b.now.Advance(int64(20 * time.Millisecond))
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

// orderSource records the keyframe requests and demands a track sends its
// source, in order. SetDemand(0) blocks until release is closed once gate
// is set, so that the test can make a resume's demand change and keyframe
// request both wait for the same pass of the track's control goroutine.
type orderSource struct {
	mu      sync.Mutex
	events  []string
	gate    bool
	blocked chan struct{} // closed when SetDemand(0) blocks
	release chan struct{}
}

func (s *orderSource) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *orderSource) RequestKeyframe(layer int) {
	s.mu.Lock()
	s.events = append(s.events, fmt.Sprintf("keyframe %d", layer))
	s.mu.Unlock()
}

func (s *orderSource) RequestRetransmit(int, []uint16) {}

func (s *orderSource) SetDemand(d Demand) {
	s.mu.Lock()
	s.events = append(s.events, fmt.Sprintf("demand %d", d))
	gate := s.gate && d == 0
	if gate {
		s.gate = false
	}
	s.mu.Unlock()
	if gate {
		close(s.blocked)
		<-s.release
	}
}

// TestResumeStaleLayerAsksAfterDemand: a subscriber paused (last-N) and
// resumed on a layer that stopped meanwhile (an imported video nobody on
// this bridge wanted: its relay unsubscribed upstream) gets no replay of
// the keyframe from before the pause. The track raises its demand first,
// then asks for a keyframe: the relay's peer ignores a keyframe request
// for a layer not subscribed yet. The subscriber's first packet after the
// resume is the fresh keyframe.
func TestResumeStaleLayerAsksAfterDemand(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("resume", RoomEvents{})
	defer r.Close()
	src := &orderSource{blocked: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(src.release) }) }
	defer release()
	pub, err := r.Publish(vp8Params("t1", 1), src)
	if err != nil {
		t.Fatal(err)
	}
	pb := &packetBuilder{buf: make([]byte, 1500)}
	feed := func(s uint16, kf bool) {
		b.now.Advance(int64(30 * time.Millisecond))
		pub.WriteRTP(0, pb.build(s, uint32(s)*3000, vp8Payload(0, uint32(s), kf), false))
	}
	for s := uint16(0); s < 5; s++ {
		feed(s, s == 1)
	}
	sink := &recSink{log: true}
	sub, err := r.Subscribe("t1", 0, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	eventually(t, 5*time.Second, "replay to the new subscriber", func() bool { n, _, _, _ := sink.last(); return n == 4 })
	eventually(t, 5*time.Second, "demand 1", func() bool { return slices.Contains(src.log(), "demand 1") })

	// Pause: the next packet makes the writer drop the layer, the
	// demand falls to none (and the source blocks in SetDemand).
	src.mu.Lock()
	src.gate = true
	src.mu.Unlock()
	sub.SetLayer(-1)
	feed(5, false)
	select {
	case <-src.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the demand did not fall to none after the pause")
	}
	before := len(src.log())

	// The layer stops (nobody wants it upstream), then the subscriber
	// resumes while the control goroutine is busy.
	b.now.Advance(int64(3 * time.Second))
	sub.SetLayer(0)
	release()
	eventually(t, 5*time.Second, "keyframe request", func() bool { return slices.Contains(src.log()[before:], "keyframe 0") })
	if got := src.log()[before:]; !slices.Equal(got[:2], []string{"demand 1", "keyframe 0"}) {
		t.Fatalf("after the resume the source was told %q, want the demand first, then the keyframe request", got)
	}

	// The fresh keyframe comes; nothing from before the pause was sent.
	feed(6, false)
	feed(7, true)
	feed(8, false)
	eventually(t, 5*time.Second, "fresh keyframe", func() bool { n, _, _, _ := sink.last(); return n >= 6 })
	sink.mu.Lock()
	got := slices.Clone(sink.seqs)
	sink.mu.Unlock()
	if !slices.Equal(got, []uint16{1, 2, 3, 4, 7, 8}) {
		t.Fatalf("subscriber got %v, want the replay 1-4, then after the resume the fresh keyframe 7 and 8", got)
	}
}
