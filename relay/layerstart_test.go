package relay

import (
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// TestLayerActivityCrosses: the far bridge learns when a simulcast layer
// starts or stops flowing at the publisher's bridge. A layer that has not
// sent yet is inactive on both sides (a browser starts its upper layers
// seconds after the first; a far subscriber held on one would get no
// video until then), becomes active on the far side once it flows, and
// inactive again after it stops.
func TestLayerActivityCrosses(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	src := &simulcast{}
	// Declared inactive: layers 1 and 2 have sent nothing yet.
	layers := []bridge.LayerInfo{{RID: "q", Height: 180}, {RID: "h", Height: 360, Inactive: true}, {RID: "f", Height: 720, Inactive: true}}
	pub, err := ra.Publish(bridge.PublishParams{TrackID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Layers: layers,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}, src)
	if err != nil {
		t.Fatal(err)
	}
	src.pub = pub
	a.relay.TrackPublished("conf", bridge.TrackInfo{ID: "cam", Participant: "p", Kind: webrtc.RTPCodecTypeVideo, Simulcast: true})
	waitFor(t, "video imported on b", func() bool { return hasTrack(rb, "cam") })

	inactive := func() [3]bool {
		var v [3]bool
		if p, err := rb.TrackParams("cam"); err == nil && len(p.Layers) == 3 {
			for i := range v {
				v[i] = p.Layers[i].Inactive
			}
		}
		return v
	}
	if got := inactive(); got != [3]bool{false, true, true} {
		t.Fatalf("layers inactive on b before layers 1 and 2 sent: %v, want [false true true]", got)
	}
	n := 0
	waitFor(t, "every layer active on b once all flow at a", func() bool {
		src.frame(n%10 == 0)
		n++
		return inactive() == [3]bool{}
	})
	waitFor(t, "layers 1 and 2 inactive on b after they stop at a", func() bool {
		src.write(0, n%10 == 0)
		n++
		return inactive() == [3]bool{false, true, true}
	})
}
