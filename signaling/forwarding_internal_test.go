package signaling

import (
	"slices"
	"testing"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestForwardingAfterTrackPublished: the bridge's report for a new video
// subscription may be queued before the track-published naming the video
// (the client would then count the video as forwarded until the next
// report, which may never come while nothing changes): the marker queued
// behind the track-published sends the state again although the socket
// already has it. Reports stay coalesced and deduplicated otherwise.
func TestForwardingAfterTrackPublished(t *testing.T) {
	p := &participant{out: make(chan *wire.Message, 16)}
	c := &conn{}
	var written []*wire.Message
	// drain is writeLoop's handling of the queue for socket c.
	drain := func() {
		for {
			select {
			case m := <-p.out:
				if m.Type == wire.TypeForwarding {
					if m = p.forwardingFor(c, m); m == nil {
						continue
					}
				}
				written = append(written, m)
			default:
				return
			}
		}
	}
	// Nothing limited yet: a video's track-published needs no state.
	p.send(&wire.Message{Type: wire.TypeTrackPublished, Track: &wire.Track{ID: "v1", Kind: wire.KindVideo}})
	p.afterVideo()
	drain()
	if len(written) != 1 {
		t.Fatalf("before any limit: %d messages written, want the track-published only", len(written))
	}
	// Two reports before the socket reads: one message, the latest.
	p.setForwarding(false, []string{"v1"})
	p.setForwarding(false, []string{"v0"})
	drain()
	if len(written) != 2 || !slices.Equal(written[1].Video, []string{"v0"}) || written[1].All {
		t.Fatalf("coalesced reports: wrote %+v", written[1:])
	}
	// The bridge reports v2's subscription (list unchanged) before the
	// track-published of v2 reaches the queue.
	p.setForwarding(false, []string{"v0"})
	p.send(&wire.Message{Type: wire.TypeTrackPublished, Track: &wire.Track{ID: "v2", Kind: wire.KindVideo}})
	p.afterVideo()
	drain()
	if len(written) != 5 {
		t.Fatalf("report, track-published, state again: %d messages written, want 3", len(written)-2)
	}
	if w := written[2:]; w[0].Type != wire.TypeForwarding || w[1].Type != wire.TypeTrackPublished ||
		w[2].Type != wire.TypeForwarding || !slices.Equal(w[2].Video, []string{"v0"}) {
		t.Fatalf("want forwarding, track-published, forwarding [v0]; wrote %v %v %v", w[0].Type, w[1].Type, w[2].Type)
	}
	// Nothing new: a resume's marker on the same socket sends nothing.
	p.resendForwarding()
	drain()
	if len(written) != 5 {
		t.Fatalf("nothing changed: %d more messages", len(written)-5)
	}
	// A new socket (resume) gets the limited state again; then last-N off
	// is sent as all, without a list.
	c = &conn{}
	p.resendForwarding()
	drain()
	if len(written) != 6 || !slices.Equal(written[5].Video, []string{"v0"}) {
		t.Fatalf("new socket: wrote %d, want the state again", len(written)-5)
	}
	p.setForwarding(true, nil)
	drain()
	if len(written) != 7 || !written[6].All || written[6].Video != nil {
		t.Fatalf("last-N off: wrote %d, last %+v", len(written)-6, written[len(written)-1])
	}
	// A new socket while everything is forwarded: its welcome said so.
	c = &conn{}
	p.resendForwarding()
	p.afterVideo()
	drain()
	if len(written) != 7 {
		t.Fatalf("new socket, all forwarded: %d messages written, want none", len(written)-7)
	}
}
