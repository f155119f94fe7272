package main

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// pinWatch records what one client of TestDrainHonoursRoomPin was told:
// the redirects it followed and the error messages it was sent.
type pinWatch struct {
	mu        sync.Mutex
	redirects []string
	errors    []string
}

func (w *pinWatch) onRedirect(u string) {
	w.mu.Lock()
	w.redirects = append(w.redirects, u)
	w.mu.Unlock()
}

// read reads c's events until it ends, keeping the errors.
func (w *pinWatch) read(c *client.Client) {
	for m := range c.Events() {
		if m.Type == wire.TypeError && m.Error != nil {
			w.mu.Lock()
			w.errors = append(w.errors, m.Error.Code+": "+m.Error.Message)
			w.mu.Unlock()
		}
	}
}

func (w *pinWatch) seen() (redirects, errors []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.redirects), slices.Clone(w.errors)
}

// memberParticipants is the participant count node asks reports for
// member, -1 when it cannot tell.
func memberParticipants(ctx context.Context, asked string, token []byte, member string) int {
	st, _, err := fetchStatus(ctx, asked, token)
	if err != nil {
		return -1
	}
	for _, m := range st.Members {
		if m.Name == member {
			return m.Participants
		}
	}
	return -1
}

// TestDrainHonoursRoomPin: three nodes, eu-1 (region eu-west, no pin),
// eu-2 (eu-central, --region-pin eu-west,eu-central) and us-1 (us). Bea and
// Cy create a meeting through eu-2, so the directory keeps it pinned to the
// two eu regions; Ada joins it through eu-1, where only the meeting's
// stored pin holds her; Zoe is in another, unpinned meeting on eu-1. eu-2
// holds two participants and us-1 none, so us-1 is the least loaded node.
// When eu-1 drains, Zoe moves to us-1 but Ada to eu-2, never to us-1 (which
// would refuse her), and she sees no error. When eu-2 drains next, only
// us-1 is left: Ada, Bea and Cy are kept on eu-2 (no node of their
// meeting's regions can take them) until eu-2's --drain-timeout, and none
// is sent to us-1. On the old code, which picked drain targets without the
// meeting's pin, Ada is sent to us-1 and her session ends with the pinned
// error.
func TestDrainHonoursRoomPin(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with media; skipped in -short mode")
	}
	nodes := startServeNodes(t, "local", []nodeSpec{
		{name: "eu-1", region: "eu-west"},
		{name: "eu-2", region: "eu-central", extra: []string{"--region-pin", "eu-west,eu-central", "--drain-timeout", "10s"}},
		{name: "us-1", region: "us"},
	})
	eu1, eu2, us1 := "http://"+nodes[0].http, "http://"+nodes[1].http, "http://"+nodes[2].http
	for _, u := range []string{eu1, eu2, us1} {
		waitFor(t, "every region listed by "+u, func() bool { return len(regionsOf(u)) == 3 })
	}
	token, err := adminToken("drain", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	const pinned = "PinnedToEurope"
	join := func(node, who, room, name string) (*client.Client, *pinWatch) {
		w := &pinWatch{}
		c := joinUntil(ctx, t, node, who, room, client.Options{Name: name, OnRedirect: w.onRedirect})
		go w.read(c)
		if c.Node() != node {
			t.Fatalf("%s, entering through %s, on %s", name, who, c.Node())
		}
		return c, w
	}
	bea, bw := join(eu2, "eu-2", pinned, "Bea")
	cy, cw := join(eu2, "eu-2", pinned, "Cy")
	ada, aw := join(eu1, "eu-1", pinned, "Ada")
	zoe, zw := join(eu1, "eu-1", "UnpinnedNextDoor", "Zoe")
	// eu-1 must count Bea and Cy on eu-2 before it drains: then the least
	// loaded node, which a drain without the pin picks, is us-1.
	waitFor(t, "eu-1 sees two participants on eu-2", func() bool {
		return memberParticipants(ctx, eu1, token, "eu-2") == 2 && memberParticipants(ctx, eu1, token, "us-1") == 0
	})

	if err := postDrain(ctx, eu1, token, "eu-1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{ada, zoe} {
		waitFor(t, "moved off eu-1", func() bool {
			select {
			case <-c.Done():
				return true
			default:
			}
			return c.Node() != eu1
		})
		select {
		case <-c.Done():
			r, _ := aw.seen()
			t.Fatalf("a session ended in eu-1's drain (Ada's redirects %v): %v", r, c.Err())
		default:
		}
	}
	if got := ada.Node(); got != eu2 {
		t.Fatalf("eu-1's drain moved Ada to %s, want eu-2 %s (us-1 is %s)", got, eu2, us1)
	}
	if r, e := aw.seen(); !slices.Equal(r, []string{eu2}) || len(e) > 0 {
		t.Fatalf("Ada was redirected to %v and sent errors %v; want eu-2 only, no error", r, e)
	}
	if got := zoe.Node(); got != us1 {
		t.Errorf("eu-1's drain moved Zoe (unpinned) to %s, want the least loaded us-1 %s", got, us1)
	}
	if r, e := zw.seen(); len(e) > 0 {
		t.Errorf("Zoe was redirected to %v and sent errors %v", r, e)
	}
	waitFor(t, "eu-1 gone after its drain", func() bool { return status(eu1+"/readyz") == 0 })

	// eu-2 drains: us-1 is the only node left, outside the meeting's
	// regions. Its --drain-timeout is 10 s: wait well beyond that.
	if err := postDrain(ctx, eu2, token, "eu-2"); err != nil {
		t.Fatal(err)
	}
	for status(eu2+"/readyz") != 0 {
		if ctx.Err() != nil {
			t.Fatal("eu-2 did not stop at its --drain-timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, x := range []struct {
		name string
		w    *pinWatch
		want []string
	}{{"Ada", aw, []string{eu2}}, {"Bea", bw, nil}, {"Cy", cw, nil}} {
		if r, _ := x.w.seen(); !slices.Equal(r, x.want) {
			t.Errorf("%s was redirected to %v, want %v (never us-1 %s)", x.name, r, x.want, us1)
		}
	}
	for _, c := range []*client.Client{bea, cy} {
		if c.Node() != eu2 {
			t.Errorf("a participant of the pinned meeting left eu-2 for %s", c.Node())
		}
	}
	if n := memberParticipants(ctx, us1, token, "us-1"); n != 1 {
		t.Errorf("us-1 holds %d participants, want Zoe only", n)
	}
}
