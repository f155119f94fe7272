package main

import (
	"context"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
)

// TestDrainSkipsFullNodes: eu-1 and eu-2 are in region eu, us-1 in us.
// eu-2 (--max-participants 1) holds Bea, so it is full; eu-1 holds Zoe.
// When eu-1 drains, Zoe moves to us-1, not to eu-2, which the drain
// prefers as a node of its own region but which would refuse her as full.
// On the old code, which did not skip full nodes, Zoe was sent to eu-2 and
// her session ended with the full error.
func TestDrainSkipsFullNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with media; skipped in -short mode")
	}
	nodes := startServeNodes(t, "local", []nodeSpec{
		{name: "eu-1", region: "eu"},
		{name: "eu-2", region: "eu", extra: []string{"--max-participants", "1"}},
		{name: "us-1", region: "us"},
	})
	eu1, eu2, us1 := "http://"+nodes[0].http, "http://"+nodes[1].http, "http://"+nodes[2].http
	for _, u := range []string{eu1, eu2, us1} {
		waitFor(t, "every region listed by "+u, func() bool { return len(regionsOf(u)) == 2 })
	}
	token, err := adminToken("drain", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	bea := joinUntil(ctx, t, eu2, "eu-2", "FullNodeRoom", client.Options{Name: "Bea"})
	zw := &pinWatch{}
	zoe := joinUntil(ctx, t, eu1, "eu-1", "MovingRoom", client.Options{Name: "Zoe", OnRedirect: zw.onRedirect})
	go zw.read(zoe)
	if bea.Node() != eu2 || zoe.Node() != eu1 {
		t.Fatalf("Bea on %s, Zoe on %s; want eu-2 %s, eu-1 %s", bea.Node(), zoe.Node(), eu2, eu1)
	}
	// eu-1 must see eu-2 full before it drains.
	waitFor(t, "eu-1 sees eu-2 holding one participant", func() bool {
		return memberParticipants(ctx, eu1, token, "eu-2") == 1
	})

	if err := postDrain(ctx, eu1, token, "eu-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Zoe moved off eu-1", func() bool {
		select {
		case <-zoe.Done():
			return true
		default:
		}
		return zoe.Node() != eu1
	})
	select {
	case <-zoe.Done():
		r, e := zw.seen()
		t.Fatalf("Zoe's session ended in eu-1's drain (redirects %v, errors %v): %v", r, e, zoe.Err())
	default:
	}
	if r, e := zw.seen(); zoe.Node() != us1 || len(e) > 0 {
		t.Errorf("Zoe on %s after redirects %v and errors %v; want on us-1 %s (eu-2 %s is full), no error", zoe.Node(), r, e, us1, eu2)
	}
	if bea.Node() != eu2 {
		t.Errorf("Bea left eu-2 for %s", bea.Node())
	}
}

// membersOf is a drainMembers of fixed members.
type membersOf []mesh.Member

func (ms membersOf) Members() []mesh.Member { return ms }
func (membersOf) SetDraining(bool)          {}

// TestDrainPickSkipsFull: the drain's target picker never names a member
// at or over its capacity, counting the participants it sent there since
// the member's last report; among the others it keeps its order (own
// region first, then the least loaded), and with none left a participant
// stays (no target). Asking whether anyone could take participants at all
// (the drain's start) counts full members.
func TestDrainPickSkipsFull(t *testing.T) {
	member := func(name, region string, participants, capacity int) mesh.Member {
		return mesh.Member{Name: name, State: mesh.MemberAlive, Meta: mesh.NodeMeta{
			Region: region, SignalingURL: "http://" + name, Participants: participants, Capacity: capacity}}
	}
	d := &drainer{self: "eu-1", region: "eu", mesh: membersOf{
		member("eu-1", "eu", 3, 10),
		member("eu-2", "eu", 5, 5), // full
		member("eu-3", "eu", 8, 10),
		member("us-1", "us", 0, 2),
		member("ch-1", "ch", 4, 4), // full
	}}
	var got []string
	for range 5 {
		u, ok := d.target(nil)
		if !ok {
			u = "stays"
		}
		got = append(got, u)
	}
	// eu-3 takes two (10 of 10), then us-1 two (2 of 2), then none.
	want := []string{"http://eu-3", "http://eu-3", "http://us-1", "http://us-1", "stays"}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("targets %v, want %v", got, want)
		}
	}
	if u, ok := d.target([]string{"ch"}); ok {
		t.Errorf("target for a ch-pinned meeting: %s, want none (ch-1 is full)", u)
	}
	if _, ok := d.pick(nil, false); !ok {
		t.Error("pick at the drain's start found nobody: full members may free up")
	}
}
