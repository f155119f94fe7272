package signaling_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/placement"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// pinnedError reports whether err is the refusal of a join to a room
// pinned to regions none of whose servers can take it.
func pinnedError(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == wire.CodeFull && strings.Contains(we.Message, "restricted to certain regions")
}

// TestRoomPinStoredWithRoom: a room created through a node started with
// --region-pin eu keeps the pin in the directory. A later join arriving at
// an unpinned us node is redirected to eu; through a node pinned to
// another region it is refused; with the eu bridge draining it is refused
// with the pinned error rather than placed in us; and a join admitted
// straight on a us node that does not see the eu bridge (no placement
// there) is refused by the admitting node, its directory count taken back.
func TestRoomPinStoredWithRoom(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu", "eu")
	us := cl.node(t, "us1", "us")
	ch := cl.node(t, "ch1", "ch", "ch")
	// us2 sees only itself, as a node whose gossip has not reached the
	// others yet: it places nothing and admits what reaches it.
	us2 := startNode(t, func(c *signaling.Config) {
		c.NodeName, c.Region, c.Directory = "us2", "us", cl.dir
		c.Bridges = func() []placement.Bridge { return []placement.Bridge{bridgeOf("us2", "us", "")} }
	})
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL), bridgeOf("ch1", "ch", ch.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "ResidencyPinnedRoom"
	key := mesh.NewRoomKey(testRoomKey, room)

	a, err := client.Join(ctx, eu.URL, room, client.Options{Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if r, ok, _ := cl.dir.Lookup(ctx, key); !ok || !slices.Equal(r.Pin, []string{"eu"}) {
		t.Fatalf("directory holds %+v, want the room pinned to eu", r)
	}

	// Through the unpinned us node, whose region the client measured
	// nearest: redirected to eu.
	var redirects []string
	b, err := client.Join(ctx, us.URL, room, client.Options{
		Name:       "Bob",
		RTTs:       []wire.RegionRTT{{Region: "us", MS: 3}, {Region: "eu", MS: 95}},
		OnRedirect: func(u string) { redirects = append(redirects, u) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Node() != eu.URL || len(redirects) != 1 || len(b.Welcome.Participants) != 1 {
		t.Fatalf("join through us ended on %s after redirects %v seeing %d others; want on eu with Ada", b.Node(), redirects, len(b.Welcome.Participants))
	}

	// Through a node pinned to ch: the join's pin and the room's are
	// disjoint.
	if _, err := client.Join(ctx, ch.URL, room, client.Options{}); !pinnedError(err) {
		t.Fatalf("join through the ch-pinned node: %v; want the pinned error", err)
	}

	// eu drains: no eu bridge can take a join, and none goes to us.
	draining := bridgeOf("eu1", "eu", eu.URL)
	draining.Draining = true
	cl.set(draining, bridgeOf("us1", "us", us.URL), bridgeOf("ch1", "ch", ch.URL))
	if _, err := client.Join(ctx, us.URL, room, client.Options{RTTs: []wire.RegionRTT{{Region: "us", MS: 3}}}); !pinnedError(err) {
		t.Fatalf("join through us with eu draining: %v; want the pinned error", err)
	}

	// Straight to a us node that places nothing: the admitting node
	// refuses, and the directory does not keep its count.
	if _, err := client.Join(ctx, us2.URL, room, client.Options{}); !pinnedError(err) {
		t.Fatalf("join admitted on us2: %v; want the pinned error", err)
	}
	r, ok, _ := cl.dir.Lookup(ctx, key)
	if !ok || r.Bridges["eu1"] != 2 || len(r.Bridges) != 1 || !slices.Equal(r.Pin, []string{"eu"}) {
		t.Fatalf("directory holds %+v pinned %v; want 2 participants on eu1 only, pinned to eu", r.Bridges, r.Pin)
	}
	if _, _, refused := us.Srv.Placed(); refused != 1 {
		t.Fatalf("us1 refused %d joins, want 1", refused)
	}

	// A room created through the unpinned node is not pinned.
	c, err := client.Join(ctx, us.URL, "ResidencyFreeRoom", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, ok, _ := cl.dir.Lookup(ctx, mesh.NewRoomKey(testRoomKey, "ResidencyFreeRoom")); !ok || len(r.Pin) != 0 || c.Node() != us.URL {
		t.Fatalf("unpinned room: %+v on %s", r, c.Node())
	}
}
