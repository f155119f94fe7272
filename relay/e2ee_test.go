package relay

import (
	"bytes"
	"testing"
)

// TestPublishParamsE2EE: the TrackE2EE flag of TrackPublished reaches the
// bridge's PublishParams (it was dropped before), and its absence stays
// absent.
func TestPublishParamsE2EE(t *testing.T) {
	m := &Message{Type: MsgTrackPublished, TrackID: "t", Participant: "p", Kind: KindVideo, Mime: "video/VP8", ClockRate: 90000, Flags: TrackE2EE}
	if p := publishParams(m); !p.E2EE {
		t.Fatalf("E2EE flag lost: %+v", p)
	}
	m.Flags = 0
	if p := publishParams(m); p.E2EE {
		t.Fatalf("E2EE set without the flag: %+v", p)
	}
	// The flag survives the wire.
	m.Flags = TrackE2EE
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := NewControlReader(bytes.NewReader(b)).Read(&got); err != nil {
		t.Fatal(err)
	}
	if !publishParams(&got).E2EE {
		t.Fatalf("E2EE flag lost on the wire: %+v", got)
	}
}
