package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestRoomPinAcrossNodes: three serve nodes, eu-1 (--region-pin eu,
// room for two participants), us-1 and ap-1 without a pin. A meeting
// created through eu-1 is pinned to eu in the directory, so a participant
// entering through us-1, whose round trips say us is nearest, is
// redirected to eu-1 and joins the meeting there. Once eu-1 is full, a
// join through us-1 is refused with the pinned error instead of being
// placed in us (data residency).
func TestRoomPinAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster; skipped in -short mode")
	}
	urls := startRegionCluster(t, []string{"eu", "us", "ap"}, []string{"--region-pin", "eu", "--max-participants", "2"})
	eu, us := urls[0], urls[1]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "ResidencyAcrossNodes"
	nearUS := []wire.RegionRTT{{Region: "us", MS: 3}, {Region: "eu", MS: 95}, {Region: "ap", MS: 180}}

	ada := joinUntil(ctx, t, eu, "eu-1", room, client.Options{Name: "Ada"})
	if ada.Node() != eu {
		t.Fatalf("Ada, entering through the pinned eu node, on %s", ada.Node())
	}

	var redirects []string
	bob := joinUntil(ctx, t, us, "us-1", room, client.Options{Name: "Bob", RTTs: nearUS,
		OnRedirect: func(u string) { redirects = append(redirects, u) }})
	if bob.Node() != eu || !slices.Contains(redirects, eu) {
		t.Fatalf("Bob, entering through us-1, on %s after redirects %v; want the eu node %s", bob.Node(), redirects, eu)
	}
	if len(bob.Welcome.Participants) != 1 || bob.Welcome.Participants[0].Name != "Ada" {
		t.Fatalf("Bob sees %+v at join, want Ada", bob.Welcome.Participants)
	}

	// eu-1 is full now. Until us-1 counts that (its own placement or
	// eu-1's next load report), a join may still be sent to eu-1 and
	// refused there as full; it is never admitted anywhere.
	for {
		c, err := client.Join(ctx, us, room, client.Options{Name: "Cy", RTTs: nearUS})
		if err == nil {
			c.Close()
			t.Fatalf("a third join was admitted on %s with the pinned region full", c.Node())
		}
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeFull && strings.Contains(we.Message, "restricted to certain regions") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("join through us-1 with eu-1 full: %v; want the pinned error", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
