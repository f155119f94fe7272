package relay

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// TestLossRepairedHopByHop: with every 5th UDP packet into b lost, b's
// bridge finds the gaps in its cache and asks upstream; a answers from its
// bridge's cache, and the subscriber on b ends with every packet.
func TestLossRepairedHopByHop(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf", a)
	o := publishAudio(t, a, "conf", ra, "mic")
	waitFor(t, "track imported on b", func() bool { return hasTrack(rb, "mic") })
	s := subscribe(t, rb, "mic")
	flowing(t, o, s)

	b.conn.dropEvery.Store(5)
	first := o.write()
	for range 200 {
		o.write()
		time.Sleep(time.Millisecond)
	}
	b.conn.dropEvery.Store(0)
	last := o.write()
	waitFor(t, "every packet at b's subscriber", func() bool {
		for q := first; q != last+1; q++ {
			if !s.has(q) {
				o.write() // later packets reveal a lost tail
				time.Sleep(5 * time.Millisecond)
				return false
			}
		}
		return true
	})
	sa, sb := a.relay.Stats(), b.relay.Stats()
	if sb.NACKedOut == 0 || sa.NACKedIn == 0 {
		t.Fatalf("no NACK crossed the link: b asked %d, a was asked %d", sb.NACKedOut, sa.NACKedIn)
	}
	if n := a.br.Stats().Retransmits; n == 0 {
		t.Fatal("a's bridge retransmitted nothing")
	}
	t.Logf("b asked %d sequence numbers again, a's bridge retransmitted %d", sb.NACKedOut, a.br.Stats().Retransmits)
	if o.nackedCount() != 0 {
		t.Fatalf("the publisher was asked for %d packets: repair must come from a's cache", o.nackedCount())
	}
}

func (o *origin) nackedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.nacked)
}

func (o *origin) keyframeCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keyframes
}

// writeVP8 sends one VP8 packet, a keyframe or a delta frame.
func (o *origin) writeVP8(key bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: o.seq, Timestamp: uint32(o.seq) * 3000, SSRC: o.ssrc, Marker: true}
	n, _ := h.MarshalTo(o.buf[:])
	// Payload descriptor: S=1, PID 0; VP8 header: P bit clear for a
	// keyframe, with the start code and a 640x360 size.
	vp8 := []byte{0x10, 0x01, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}
	if key {
		vp8[1] = 0x00
	}
	n += copy(o.buf[n:], vp8)
	n += copy(o.buf[n:], make([]byte, 300))
	o.pub.WriteRTP(0, o.buf[:n])
}

// TestKeyframeRequestsAggregated: ten subscribers joining a remote video
// track at once on b do not turn into ten keyframe requests upstream: b asks
// at most once per keyframeInterval however many subscribers wait.
//
// No keyframe exists anywhere until the publisher is asked for one, so every
// subscriber on b finds none cached and needs one (b must ask upstream).
// The requests are counted asynchronously (the bridge's control goroutine
// passes them to the relay), so the test waits for b's request rather than
// reading the counter once, and bounds the count by the rate limit over the
// time that passed: at most 1 + elapsed/keyframeInterval, which is 1 for the
// ten simultaneous subscribers unless the machine stalls for 200 ms.
func TestKeyframeRequestsAggregated(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	// Only a lists its peer, so only a dials: b's import stays bound to
	// one link (see TestMalformedInput).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	o := &origin{id: "cam", ssrc: 4242}
	pub, err := ra.Publish(bridge.PublishParams{TrackID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.pub = pub
	a.relay.TrackPublished("conf", bridge.TrackInfo{ID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo})
	waitFor(t, "video imported on b", func() bool { return hasTrack(rb, "cam") })
	start := time.Now()
	before := b.relay.Stats().KeyframesOut
	var sinks []*sink
	for range 10 {
		sinks = append(sinks, subscribe(t, rb, "cam"))
	}
	// Deltas until the keyframe asked for arrives everywhere: the origin
	// answers a request with a keyframe.
	asked := 0
	waitFor(t, "every subscriber got a keyframe and what follows", func() bool {
		key := o.keyframeCount() > asked
		if key {
			asked = o.keyframeCount()
		}
		o.writeVP8(key)
		for _, s := range sinks {
			if n, _ := s.count(); n < 2 {
				return false
			}
		}
		return true
	})
	// b's subscribers found no keyframe on b: b asked upstream.
	waitFor(t, "b's keyframe request counted", func() bool { return b.relay.Stats().KeyframesOut > before })
	up, kf := b.relay.Stats().KeyframesOut-before, o.keyframeCount()
	elapsed := time.Since(start)
	limit := 1 + uint64(elapsed/keyframeInterval)
	t.Logf("keyframe requests: %d upstream from b, %d reached the publisher, in %v (rate limit allows %d)", up, kf, elapsed, limit)
	if up > limit {
		t.Fatalf("%d keyframe requests went upstream for 10 subscribers in %v, want at most %d (one per %v)", up, elapsed, limit, keyframeInterval)
	}
	if uint64(kf) > limit {
		t.Fatalf("the publisher was asked for %d keyframes in %v, want at most %d", kf, elapsed, limit)
	}
}

// publishVP8 publishes a VP8 track "cam" on a's room, reports it to a's
// relay and returns once b imported it.
func publishVP8(t *testing.T, a *node, ra, rb *bridge.Room) *origin {
	t.Helper()
	o := &origin{id: "cam", ssrc: 4242}
	pub, err := ra.Publish(bridge.PublishParams{TrackID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.pub = pub
	a.relay.TrackPublished("conf", bridge.TrackInfo{ID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo})
	waitFor(t, "video imported on b", func() bool { return hasTrack(rb, "cam") })
	return o
}

// TestKeyframeRequestWhileLinkDown: a subscriber on b asks for a keyframe
// while the link to the publisher's node is down (the import stays
// published, orphaned); the request goes upstream once the link is back
// and reaches a. Before, the relay dropped it (no link) and the bridge,
// which asks once, never asked again: the subscriber waited for the next
// keyframe the publisher happened to send. The same window exists between
// an import's publication and its first bind.
func TestKeyframeRequestWhileLinkDown(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	o := publishVP8(t, a, ra, rb)
	s := subscribe(t, rb, "cam")
	asked := 0
	waitFor(t, "video at b's subscriber", func() bool {
		key := o.keyframeCount() > asked
		if key {
			asked = o.keyframeCount()
		}
		o.writeVP8(key)
		n, _ := s.count()
		return n >= 2
	})

	b.conn.blocked.Store(true)
	waitFor(t, "the link down on b", func() bool { return b.links() == 0 })
	if !hasTrack(rb, "cam") {
		t.Fatal("the import was unpublished at once; it should wait for the link")
	}
	outB, inA := b.relay.Stats().KeyframesOut, a.relay.Stats().KeyframesIn
	asks := b.br.Stats().KeyframeRequests
	// The subscriber's decoder asks (a PLI); the bridge passes it to the
	// import at most once per its own interval, so ask until it did.
	waitFor(t, "b's bridge asked the import", func() bool {
		s.sub.RequestKeyframe()
		return b.br.Stats().KeyframeRequests > asks
	})
	if n := b.relay.Stats().KeyframesOut; n != outB {
		t.Fatalf("%d keyframe requests sent with no link", n-outB)
	}

	b.conn.blocked.Store(false)
	waitFor(t, "the request sent once the link is back", func() bool { return b.relay.Stats().KeyframesOut > outB })
	waitFor(t, "the request reached a", func() bool { return a.relay.Stats().KeyframesIn > inA })
	if !hasTrack(rb, "cam") {
		t.Fatal("the import was unpublished")
	}
}
