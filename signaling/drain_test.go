package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestDrainMovesParticipants: a draining node sends its participants, a few
// at a time, to the node its Target names; each client follows the
// redirect, resumes its identity there and gets the others' media again;
// nobody sees an error; the drained node ends empty and reports not ready.
func TestDrainMovesParticipants(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	a := startNode(t, func(c *signaling.Config) { c.NodeName = "a"; lenientSource(c) })
	b := startNode(t, func(c *signaling.Config) { c.NodeName = "b"; lenientSource(c) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	var ps []*publisher
	ids := map[string]bool{}
	for tag := uint32(1); tag <= 4; tag++ {
		p := startPublisher(ctx, t, a, room, tag)
		ps = append(ps, p)
		ids[p.c.Welcome.Participant] = true
	}
	// The publishers' event loops read Events; errors would show there
	// and end the session: watch Done instead.
	var redirects sync.Map
	for _, p := range ps {
		go func() {
			<-p.c.Done()
			redirects.Store(p.tag, p.c.Err())
		}()
	}

	if got := readyz(t, a); got != http.StatusOK {
		t.Fatalf("readyz before drain = %d", got)
	}
	done := make(chan error, 1)
	go func() {
		done <- a.Srv.Drain(ctx, signaling.DrainOptions{
			Target:   func([]string) (string, bool) { return b.URL, true },
			Batch:    2,
			Interval: 200 * time.Millisecond,
		})
	}()
	waitFor(t, 10*time.Second, "a not ready", func() bool { return readyz(t, a) == http.StatusServiceUnavailable })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("drain did not finish")
	}
	if n := a.Srv.Participants(); n != 0 {
		t.Errorf("a still holds %d participants", n)
	}
	waitFor(t, 20*time.Second, "all on b", func() bool { return b.Srv.Participants() == 4 })
	if got := a.Srv.Redirected(); got != 4 {
		t.Errorf("Redirected = %d, want 4", got)
	}
	if got := b.Srv.Arrived(); got != 4 {
		t.Errorf("Arrived = %d, want 4 (identities kept)", got)
	}
	redirects.Range(func(k, v any) bool {
		t.Errorf("P%v's session ended: %v", k, v)
		return true
	})

	// Media again, between everyone, on b: new packets after the move.
	base := map[string]int{}
	for _, p := range ps {
		for _, o := range ps {
			n, _ := p.count("audio", o.tag)
			base[fmt.Sprint(p.tag, o.tag)] = n
		}
	}
	for _, p := range ps {
		for _, o := range ps {
			if o == p {
				continue
			}
			waitForf(t, 30*time.Second, func() string {
				return fmt.Sprintf("P%d hears P%d after the move (%v)", p.tag, o.tag, p.debug())
			}, func() bool {
				n, _ := p.count("audio", o.tag)
				return n >= base[fmt.Sprint(p.tag, o.tag)]+25
			})
		}
	}

	// A new join on the drained node goes to b too.
	c := join(t, a, room, client.Options{Name: "Late"})
	if !ids[c.Welcome.Participant] && b.Srv.Participants() != 5 {
		t.Errorf("late join: b holds %d participants, want 5", b.Srv.Participants())
	}
}

// TestDrainRefusesJoinsWithoutTarget: a draining node with nowhere to send
// a new participant refuses it with unavailable, but a participant it
// holds may still resume on it.
func TestDrainRefusesJoinsWithoutTarget(t *testing.T) {
	a := startNode(t, nil)
	room := roomname.New()
	held := join(t, a, room, client.Options{Name: "Ada"})
	a.Srv.StartDrain()
	if got := readyz(t, a); got != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining = %d, want 503", got)
	}
	m := joinAnswer(t, a, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	if m.Type != wire.TypeError || m.Error.Code != wire.CodeUnavailable {
		t.Errorf("join while draining: got %s %+v, want unavailable", m.Type, m.Error)
	}
	held.DropSocket()
	waitFor(t, 15*time.Second, "resume on the draining node", func() bool {
		w := joinAnswer(t, a, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room,
			Resume: &wire.Resume{Participant: held.Welcome.Participant, Secret: held.Welcome.Secret}})
		return w.Type == wire.TypeWelcome && w.Resumed
	})
}

func readyz(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get(n.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainAsksTargetWithinRoomPin: a drain asks its Target for a node in
// the regions each participant may be held in, its meeting's stored pin
// included. Ada joined a meeting pinned to eu (created through an
// eu-pinned node) on an unpinned eu node; Zoe is in an unpinned meeting on
// the same node. With only a us node to go to, the drain moves Zoe there
// and keeps Ada (never redirected, her session goes on), asking again at
// every batch.
func TestDrainAsksTargetWithinRoomPin(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	pinned := cl.node(t, "eu1", "eu", "eu")
	eu := cl.node(t, "eu2", "eu")
	us := cl.node(t, "us1", "us")
	cl.set(bridgeOf("eu1", "eu", pinned.URL), bridgeOf("eu2", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "DrainPinnedRoom"
	bea, err := client.Join(ctx, pinned.URL, room, client.Options{Name: "Bea"})
	if err != nil {
		t.Fatal(err)
	}
	defer bea.Close()
	// Placement would send Ada to the meeting's bridge eu1: hide it.
	cl.set(bridgeOf("eu2", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	var redirects []string
	ada, err := client.Join(ctx, eu.URL, room, client.Options{Name: "Ada", OnRedirect: func(u string) { redirects = append(redirects, u) }})
	if err != nil {
		t.Fatal(err)
	}
	defer ada.Close()
	zoe, err := client.Join(ctx, eu.URL, "DrainFreeRoom", client.Options{Name: "Zoe"})
	if err != nil {
		t.Fatal(err)
	}
	defer zoe.Close()
	if ada.Node() != eu.URL || zoe.Node() != eu.URL {
		t.Fatalf("Ada on %s, Zoe on %s; want both on eu2 %s", ada.Node(), zoe.Node(), eu.URL)
	}

	var mu sync.Mutex
	asked := map[string]int{} // pins Target was asked with, joined by ","
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	done := make(chan error, 1)
	go func() {
		done <- eu.Srv.Drain(dctx, signaling.DrainOptions{
			Target: func(pin []string) (string, bool) {
				mu.Lock()
				asked[strings.Join(pin, ",")]++
				mu.Unlock()
				if len(pin) > 0 && !slices.Contains(pin, "us") {
					return "", false
				}
				return us.URL, true
			},
			Batch:    1,
			Interval: 100 * time.Millisecond,
		})
	}()
	waitFor(t, 30*time.Second, "Zoe moved to us1", func() bool { return zoe.Node() == us.URL })
	waitFor(t, 30*time.Second, "Ada's pin asked for at three batches", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return asked["eu"] >= 3
	})
	dcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with Ada left: %v, want context.Canceled", err)
	}
	mu.Lock()
	if len(asked) != 2 || asked[""] < 1 {
		t.Errorf("Target asked with pins %v; want Zoe's (none) and Ada's (eu) only", asked)
	}
	mu.Unlock()
	if got := eu.Srv.Redirected(); got != 1 {
		t.Errorf("Redirected = %d, want 1 (Zoe)", got)
	}
	select {
	case <-ada.Done():
		t.Fatalf("Ada's session ended: %v", ada.Err())
	default:
	}
	if ada.Node() != eu.URL || len(redirects) != 0 || eu.Srv.Participants() != 1 {
		t.Errorf("Ada on %s after redirects %v, eu2 holds %d; want Ada kept on eu2", ada.Node(), redirects, eu.Srv.Participants())
	}
}

// TestDrainRedirectsResumeWithinRoomPin: a client that fails over (its
// node died) to a node that is draining is sent on to a node of its
// meeting's stored pin, not to the one the drain would pick without it.
// Ada is in a meeting created through eu1 (--region-pin eu); her resume
// reaches eu2 (unpinned, draining), whose drain would send an unpinned
// participant to us1, the least loaded. She is redirected to eu1; Zoe, of
// an unpinned meeting, to us1; with no eu node left to take her, Ada is
// refused with the pinned error rather than sent to us1. On the old code,
// which asked the drain's Target without a pin, Ada was redirected to us1,
// which refuses her (checked below too).
func TestDrainRedirectsResumeWithinRoomPin(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu1 := cl.node(t, "eu1", "eu", "eu")
	eu2 := cl.node(t, "eu2", "eu")
	us1 := cl.node(t, "us1", "us")
	cl.set(bridgeOf("eu1", "eu", eu1.URL), bridgeOf("eu2", "eu", eu2.URL), bridgeOf("us1", "us", us1.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ada, err := client.Join(ctx, eu1.URL, "FailoverPinnedRoom", client.Options{Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	defer ada.Close()
	zoe, err := client.Join(ctx, us1.URL, "FailoverFreeRoom", client.Options{Name: "Zoe"})
	if err != nil {
		t.Fatal(err)
	}
	defer zoe.Close()

	// eu2's drain: us1 first (least loaded), then eu1, each only for a
	// pin that allows its region; euGone hides eu1.
	var mu sync.Mutex
	euGone := false
	var asked [][]string
	target := func(pin []string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, slices.Clone(pin))
		if len(pin) == 0 || slices.Contains(pin, "us") {
			return us1.URL, true
		}
		if slices.Contains(pin, "eu") && !euGone {
			return eu1.URL, true
		}
		return "", false
	}
	// No participant on eu2: Drain returns at once; eu2 stays draining
	// with this Target, as a drained node until it stops.
	if err := eu2.Srv.Drain(ctx, signaling.DrainOptions{Target: target}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	resume := func(c *client.Client, room string) *wire.Message {
		return &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room,
			Resume: &wire.Resume{Participant: c.Welcome.Participant, Secret: c.Welcome.Secret}}
	}

	m := joinAnswer(t, eu2, resume(ada, "FailoverPinnedRoom"))
	if m.Type != wire.TypeRedirect || m.URL != eu1.URL {
		t.Errorf("Ada's resume on draining eu2: got %s %q %+v, want a redirect to eu1 %s (us1 is %s)", m.Type, m.URL, m.Error, eu1.URL, us1.URL)
	}
	m = joinAnswer(t, eu2, resume(zoe, "FailoverFreeRoom"))
	if m.Type != wire.TypeRedirect || m.URL != us1.URL {
		t.Errorf("Zoe's resume on draining eu2: got %s %q %+v, want a redirect to us1 %s", m.Type, m.URL, m.Error, us1.URL)
	}
	mu.Lock()
	if len(asked) != 2 || !slices.Equal(asked[0], []string{"eu"}) || len(asked[1]) != 0 {
		t.Errorf("Target asked with pins %q, want [eu] for Ada then none for Zoe", asked)
	}
	euGone = true
	mu.Unlock()

	m = joinAnswer(t, eu2, resume(ada, "FailoverPinnedRoom"))
	if m.Type != wire.TypeError || !pinnedError(m.Error) {
		t.Errorf("Ada's resume on draining eu2 with no eu node: got %s %q %+v, want the pinned error", m.Type, m.URL, m.Error)
	}
	// Where the old code sent her: us1 refuses her.
	m = joinAnswer(t, us1, resume(ada, "FailoverPinnedRoom"))
	if m.Type != wire.TypeError || !pinnedError(m.Error) {
		t.Errorf("Ada's resume on us1: got %s %+v, want the pinned error", m.Type, m.Error)
	}
}
