package relay

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// layerSink is a subscriber on the receiving node that records the
// sequence numbers it got per layer.
type layerSink struct {
	mu  sync.Mutex
	got [MaxLayers]map[uint16]bool
	sub *bridge.Subscription
}

func (s *layerSink) WriteRTP(layer int, pkt []byte) {
	var h rtp.Header
	if _, err := h.Unmarshal(pkt); err != nil || layer < 0 || layer >= MaxLayers {
		return
	}
	s.mu.Lock()
	if s.got[layer] == nil {
		s.got[layer] = map[uint16]bool{}
	}
	s.got[layer][h.SequenceNumber] = true
	s.mu.Unlock()
}

func (s *layerSink) has(layer int, seq uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[layer][seq]
}

func (s *layerSink) count(layer int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[layer])
}

func subscribeLayer(t testing.TB, rm *bridge.Room, id string, layer int) *layerSink {
	t.Helper()
	s := &layerSink{}
	sub, err := rm.Subscribe(id, layer, s)
	if err != nil {
		t.Fatal(err)
	}
	s.sub = sub
	return s
}

// layerDatagrams returns the datagrams n received on its link from peer,
// per layer.
func layerDatagrams(n *node, peer string) [MaxLayers]uint64 {
	var c [MaxLayers]uint64
	if l := linkTo(n, peer); l != nil {
		for i := range c {
			c[i] = l.layerIn[i].Load()
		}
	}
	return c
}

// publishSimulcast publishes a three-layer VP8 track "cam" on a's room and
// reports it to a's relay; it returns once b imported it.
func publishSimulcast(t *testing.T, a *node, ra, rb *bridge.Room) *simulcast {
	t.Helper()
	src := &simulcast{}
	layers := []bridge.LayerInfo{{RID: "q", Height: 180}, {RID: "h", Height: 360}, {RID: "f", Height: 720}}
	pub, err := ra.Publish(bridge.PublishParams{TrackID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Layers: layers,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}, src)
	if err != nil {
		t.Fatal(err)
	}
	src.pub = pub
	a.relay.TrackPublished("conf", bridge.TrackInfo{ID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Simulcast: true})
	waitFor(t, "video imported on b", func() bool { return hasTrack(rb, "cam") })
	return src
}

// TestEveryDemandedLayerCrosses: subscribers on b that want different
// layers of a simulcast track on a each get their layer; each wanted layer
// crosses the link once however many subscribers want it, a layer nobody
// wants does not cross, and when the last subscriber of a layer leaves,
// that layer stops crossing while the others go on.
func TestEveryDemandedLayerCrosses(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	// Only a lists its peer, so only a dials: the link the test holds (or
	// counts datagrams on) is never replaced by the tie-break between two
	// links dialled at once (see TestMalformedInput).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	src := publishSimulcast(t, a, ra, rb)

	low1 := subscribeLayer(t, rb, "cam", 0)
	low2 := subscribeLayer(t, rb, "cam", 0)
	high := subscribeLayer(t, rb, "cam", 2)
	n := 0
	waitFor(t, "each subscriber gets its layer", func() bool {
		src.frame(n%10 == 0)
		n++
		return low1.count(0) > 0 && low2.count(0) > 0 && high.count(2) > 0
	})
	waitFor(t, "a sends layers 0 and 2", func() bool { return exportLayers(a, "b") == 1<<0|1<<2 })

	// burst writes frames and waits until every subscriber has its layer's
	// packets of them (a datagram lost on a loaded machine is repaired
	// once a later packet shows the gap, so an incomplete burst gets one
	// more frame).
	burst := func(sinks map[*layerSink]int) {
		var first [3]uint16
		for i := range first {
			first[i] = src.seq[i] + 1
		}
		for range 10 {
			src.frame(false)
		}
		waitFor(t, "a burst at every subscriber", func() bool {
			for s, layer := range sinks {
				for q := first[layer]; q != src.seq[layer]+1; q++ {
					if !s.has(layer, q) {
						src.frame(false)
						time.Sleep(5 * time.Millisecond)
						return false
					}
				}
			}
			return true
		})
	}
	all := map[*layerSink]int{low1: 0, low2: 0, high: 2}
	burst(all) // quiesce
	before, resent := layerDatagrams(b, "a"), a.br.Stats().Retransmits
	start := src.seq
	for range 30 {
		burst(all)
	}
	after := layerDatagrams(b, "a")
	resent = a.br.Stats().Retransmits - resent
	for layer := range 3 {
		written := uint64(src.seq[layer] - start[layer])
		got := after[layer] - before[layer]
		t.Logf("layer %d: %d packets written, %d datagrams crossed", layer, written, got)
		switch layer {
		case 1:
			if got != 0 {
				t.Errorf("layer 1, wanted by nobody, crossed %d times", got)
			}
		default:
			// Once per packet, plus a's answers to NACKs; never once per
			// subscriber.
			if got < written || got > written+resent {
				t.Errorf("layer %d: %d datagrams for %d packets (%d resent), want one per packet", layer, got, written, resent)
			}
		}
	}
	for s, layer := range all {
		for other := range 3 {
			if other != layer && s.count(other) != 0 {
				t.Errorf("a layer-%d subscriber got %d packets of layer %d", layer, s.count(other), other)
			}
		}
	}

	// One layer-0 subscriber leaving changes nothing; the last one
	// leaving stops layer 0 on the link, layer 2 goes on.
	low1.sub.Close()
	burst(map[*layerSink]int{low2: 0, high: 2})
	low2.sub.Close()
	waitFor(t, "a sends layer 2 only", func() bool { src.frame(false); return exportLayers(a, "b") == 1<<2 })
	burst(map[*layerSink]int{high: 2}) // quiesce
	before = layerDatagrams(b, "a")
	start = src.seq
	for range 10 {
		burst(map[*layerSink]int{high: 2})
	}
	after = layerDatagrams(b, "a")
	if got := after[0] - before[0]; got != 0 {
		t.Errorf("layer 0 crossed %d times after its last subscriber left", got)
	}
	if got, written := after[2]-before[2], uint64(src.seq[2]-start[2]); got < written {
		t.Errorf("layer 2: %d datagrams for %d packets after layer 0 stopped", got, written)
	}
	if st := a.relay.Stats(); st.Subscribed != 1 {
		t.Errorf("a: %d exports subscribed, want 1", st.Subscribed)
	}

	// The last subscriber leaving ends the export's subscriptions.
	high.sub.Close()
	waitFor(t, "a's export unsubscribed", func() bool { return a.relay.Stats().Subscribed == 0 })
}

// TestLayerCapKeepsEveryLayerFed: under link pressure the layers sent for
// a wanted set move down (each at most once, lower layers first), the
// receiving bridge is told and marks the layers above the cap inactive so
// its subscribers' layer choice moves down too; calm raises them again.
func TestLayerCapKeepsEveryLayerFed(t *testing.T) {
	ca := newTestCA(t)
	// a's ticks adapt the cap; at 700 ms one stays 2.1 s (three calm
	// ticks) before it rises, long enough to watch b follow.
	const interval = 700 * time.Millisecond
	a := startNode(t, ca, "a", func(c *Config) { c.StatsInterval = interval })
	b := startNode(t, ca, "b")
	// Only a lists its peer, so only a dials: the link the test holds (or
	// counts datagrams on) is never replaced by the tie-break between two
	// links dialled at once (see TestMalformedInput).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	src := publishSimulcast(t, a, ra, rb)
	low := subscribeLayer(t, rb, "cam", 0)
	subscribeLayer(t, rb, "cam", 1)
	high := subscribeLayer(t, rb, "cam", 2)
	n := 0
	frame := func() { src.frame(n%5 == 0); n++ }
	waitFor(t, "a sends layers 0, 1 and 2", func() bool { frame(); return exportLayers(a, "b") == 0b111 })

	inactive := func(layer int) bool {
		p, err := rb.TrackParams("cam")
		return err == nil && p.Layers[layer].Inactive
	}
	// capTo presses the link (a send-queue drop, as sendRTP counts one)
	// until its cap is want, again if calm raised it meanwhile. It presses
	// the link up now: one that a loaded machine broke (1 s link timeout
	// here) and a redialled starts again from the top layer.
	var pressed time.Time
	capTo := func(want int32) func() bool {
		return func() bool {
			frame()
			l := linkTo(a, "b")
			if l == nil {
				return false
			}
			c := l.layerCap.Load()
			if c > want && time.Since(pressed) > 2*interval {
				l.queueDrops.Add(1)
				pressed = time.Now()
			}
			return c == want
		}
	}
	waitFor(t, "layer cap 1", capTo(1))
	waitFor(t, "a sends layers 0 and 1 for 0, 1 and 2", func() bool { capTo(1)(); return exportLayers(a, "b") == 0b011 })
	waitFor(t, "b marks layer 2 inactive", func() bool { capTo(1)(); return inactive(2) && !inactive(1) })
	waitFor(t, "layer cap 0", capTo(0))
	waitFor(t, "a sends layer 0 once for all three", func() bool { capTo(0)(); return exportLayers(a, "b") == 0b001 })
	waitFor(t, "b marks layers 1 and 2 inactive", func() bool { capTo(0)(); return inactive(1) && inactive(2) })
	mark := low.count(0)
	waitFor(t, "layer 0 still reaches its subscriber", func() bool { frame(); return low.count(0) > mark })

	// Calm intervals raise the cap again, up to the layers wanted.
	waitFor(t, "a sends all three layers again", func() bool { frame(); return exportLayers(a, "b") == 0b111 })
	waitFor(t, "b marks the layers active again", func() bool { frame(); return !inactive(1) && !inactive(2) })
	mark = high.count(2)
	waitFor(t, "layer 2 reaches its subscriber again", func() bool { frame(); return high.count(2) > mark })
}

// TestControlLayerSets: SubscribeLayers and LayerCap round-trip, bad sets
// and layers are refused, and a receiver that does not know them could
// skip them (ignorable types).
func TestControlLayerSets(t *testing.T) {
	for _, m := range []Message{
		{Type: MsgSubscribeLayers, Track: 7, LayerSet: 0b0101},
		{Type: MsgSubscribeLayers, Track: MaxTrackNumber, LayerSet: 1<<MaxLayers - 1},
		{Type: MsgLayerCap, Layer: 1},
	} {
		if m.Type < msgIgnorable {
			t.Fatalf("%v is not ignorable", m.Type)
		}
		b, err := m.Append(nil)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		var g Message
		if err := g.Unmarshal(MsgType(b[0]), b[controlHeader:]); err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if g.Type != m.Type || g.Track != m.Track || g.LayerSet != m.LayerSet || g.Layer != m.Layer {
			t.Fatalf("round trip %+v -> %+v", m, g)
		}
	}
	for _, m := range []Message{
		{Type: MsgSubscribeLayers, Track: 1, LayerSet: 1 << MaxLayers},
		{Type: MsgLayerCap, Layer: MaxLayer + 1},
	} {
		if _, err := m.Append(nil); err == nil {
			t.Errorf("%+v encoded", m)
		}
	}
	for name, body := range map[string][]byte{
		"set beyond MaxLayer": {byte(MsgSubscribeLayers), 0, 2, 1, 1 << MaxLayers},
		"set missing":         {byte(MsgSubscribeLayers), 0, 1, 1},
		"trailing byte":       {byte(MsgSubscribeLayers), 0, 3, 1, 1, 0},
		"cap beyond MaxLayer": {byte(MsgLayerCap), 0, 1, MaxLayer + 1},
		"cap missing":         {byte(MsgLayerCap), 0, 0},
	} {
		var m Message
		if err := m.Unmarshal(MsgType(body[0]), body[controlHeader:]); err == nil {
			t.Errorf("%s: decoded as %+v", name, m)
		}
	}
}
