package client

import (
	"slices"
	"testing"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestForwardingRule: a video not listed in a limited forwarding message is
// paused only when the client knew of it before that message; a video
// learned of later counts as forwarded until the next message; all
// forwards everything; a welcome starts over with everything forwarded.
func TestForwardingRule(t *testing.T) {
	c := &Client{}
	video := func(id string) *wire.Track { return &wire.Track{ID: id, Kind: wire.KindVideo} }
	expect := func(what string, want ...string) {
		t.Helper()
		got := c.PausedVideos()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: paused %v, want %v", what, got, want)
		}
	}
	c.welcomeForwarding(&wire.Message{Type: wire.TypeWelcome, Tracks: []wire.Track{*video("v1"), *video("v2"), {ID: "a1", Kind: wire.KindAudio}}})
	expect("after the welcome")
	c.noteForwarding(&wire.Message{Type: wire.TypeForwarding, Video: []string{"v1"}})
	expect("v1 forwarded", "v2")
	// Learned of after the latest forwarding: not paused yet.
	c.noteForwarding(&wire.Message{Type: wire.TypeTrackPublished, Track: video("v3")})
	expect("v3 new", "v2")
	if c.Paused("v3") {
		t.Fatal("v3 paused before a forwarding message came after it")
	}
	c.noteForwarding(&wire.Message{Type: wire.TypeForwarding, Video: []string{"v1"}})
	expect("v3 known to the next forwarding", "v2", "v3")
	c.noteForwarding(&wire.Message{Type: wire.TypeTrackUnpublished, Track: video("v2")})
	expect("v2 unpublished", "v3")
	c.noteForwarding(&wire.Message{Type: wire.TypeForwarding})
	expect("none forwarded", "v1", "v3")
	c.noteForwarding(&wire.Message{Type: wire.TypeForwarding, All: true})
	expect("all forwarded")
	c.noteForwarding(&wire.Message{Type: wire.TypeForwarding})
	c.welcomeForwarding(&wire.Message{Type: wire.TypeWelcome, Tracks: []wire.Track{*video("v1")}})
	expect("after a new welcome")
}
