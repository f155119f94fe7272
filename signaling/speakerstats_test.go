package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestSpeakerStats: a participant who talks (RFC 6464 levels in its audio,
// as the bridge reads them) gathers speaking time, which any participant
// can ask for; a silent one has none.
func TestSpeakerStats(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	n, _ := startModNode(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	alice := startPublisher(ctx, t, n, room, 1)
	aID := alice.c.Welcome.Participant
	bob := join(t, n, room, client.Options{Name: "Bob"})
	var stats []wire.SpeakerStat
	waitForf(t, 30*time.Second, func() string { return "Alice's speaking time" }, func() bool {
		send(t, bob, &wire.Message{Type: wire.TypeSpeakerStats})
		stats = nextEvent(t, bob, wire.TypeSpeakerStats).Stats
		time.Sleep(200 * time.Millisecond)
		return len(stats) == 1 && stats[0].Participant == aID && stats[0].MS > 0
	})
	first := stats[0].MS
	waitFor(t, 30*time.Second, "Alice's speaking time to grow", func() bool {
		send(t, bob, &wire.Message{Type: wire.TypeSpeakerStats})
		stats = nextEvent(t, bob, wire.TypeSpeakerStats).Stats
		time.Sleep(200 * time.Millisecond)
		return len(stats) == 1 && stats[0].MS > first
	})
	for _, s := range stats {
		if s.Participant == bob.Welcome.Participant {
			t.Fatalf("silent Bob has speaking time: %+v", stats)
		}
	}
}
