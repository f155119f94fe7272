package relay

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// simulcast is a three-layer VP8 publisher on the publishing node.
type simulcast struct {
	pub *bridge.Publication
	seq [3]uint16
	buf [1500]byte
}

func (s *simulcast) RequestKeyframe(int)             {}
func (s *simulcast) RequestRetransmit(int, []uint16) {}
func (s *simulcast) SetDemand(bridge.Demand)         {}
func (s *simulcast) write(layer int, key bool) {
	s.seq[layer]++
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: s.seq[layer], Timestamp: uint32(s.seq[layer]) * 3000,
		SSRC: uint32(1000 + layer), Marker: true}
	n, _ := h.MarshalTo(s.buf[:])
	vp8 := []byte{0x10, 0x01, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}
	if key {
		vp8[1] = 0x00
	}
	n += copy(s.buf[n:], vp8)
	n += copy(s.buf[n:], make([]byte, 200))
	s.pub.WriteRTP(layer, s.buf[:n])
}

func (s *simulcast) frame(key bool) {
	for l := range 3 {
		s.write(l, key)
	}
}

// exportLayer returns the highest layer a's exports forward to peer, or
// -2 when none flows.
func exportLayer(a *node, peer string) int {
	d := exportLayers(a, peer)
	if d == 0 {
		return -2
	}
	return d.Highest()
}

// exportLayers returns the layers a's exports forward to peer now (each
// subscription past its first keyframe).
func exportLayers(a *node, peer string) bridge.Demand {
	l := linkTo(a, peer)
	if l == nil {
		return 0
	}
	l.mu.Lock()
	exps := make([]*exportTrack, 0, len(l.exports))
	for _, e := range l.exports {
		exps = append(exps, e)
	}
	l.mu.Unlock()
	var d bridge.Demand
	for _, e := range exps {
		for i := range MaxLayers {
			if s := e.subscription(i); s != nil && s.Layer() >= 0 {
				d |= 1 << s.Layer()
			}
		}
	}
	return d
}

// TestLayerCapFollowsLinkPressure: send-queue drops on a link lower the
// simulcast layer sent on that link, one layer per interval, before the
// subscriber on the far side loses more; calm intervals raise it again.
func TestLayerCapFollowsLinkPressure(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	// Only a lists its peer, so only a dials: the link the test holds (or
	// counts datagrams on) is never replaced by the tie-break between two
	// links dialled at once (see TestMalformedInput).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
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
	s := &sink{got: map[uint16]bool{}}
	if _, err := rb.Subscribe("cam", 2, s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a forwards the top layer", func() bool { src.frame(true); return exportLayer(a, "b") == 2 })

	l := linkTo(a, "b")
	for _, want := range []int32{2, 1} {
		l.queueDrops.Add(1) // as sendRTP counts a full queue
		waitFor(t, "layer cap lowered", func() bool { return l.layerCap.Load() == want })
	}
	waitFor(t, "a forwards layer 1 on the link", func() bool { src.frame(true); return exportLayer(a, "b") == 1 })
	// Calm intervals raise the cap again, to the layer the peer wants.
	waitFor(t, "a forwards the top layer again", func() bool { src.frame(true); return exportLayer(a, "b") == 2 })
	if st := a.relay.Stats(); st.PerLink[0].LayerCap < 2 {
		t.Fatalf("layer cap %d after calm", st.PerLink[0].LayerCap)
	}
}
