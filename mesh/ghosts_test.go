package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// liveSets stand in for the bridges: the rooms each node's signaling holds
// participants of, as Config.LiveRooms reports them. A test adds a room
// when a Join succeeded, as signaling does.
type liveSets struct {
	mu   sync.Mutex
	sets map[string]map[RoomKey]bool
}

func newLiveSets() *liveSets { return &liveSets{sets: map[string]map[RoomKey]bool{}} }

func (l *liveSets) add(node string, k RoomKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sets[node] == nil {
		l.sets[node] = map[RoomKey]bool{}
	}
	l.sets[node][k] = true
}

func (l *liveSets) holds(node string, k RoomKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sets[node][k]
}

func (l *liveSets) fn(node string) func() []RoomKey {
	return func() []RoomKey {
		l.mu.Lock()
		defer l.mu.Unlock()
		keys := make([]RoomKey, 0, len(l.sets[node]))
		for k := range l.sets[node] {
			keys = append(keys, k)
		}
		return keys
	}
}

// ghostOpts reports live rooms quickly and removes ghosts after a short
// grace.
func ghostOpts(live *liveSets, more func(*Config)) func(*Config) {
	return func(c *Config) {
		c.LiveRooms = live.fn(c.NodeName)
		c.ReportInterval = 100 * time.Millisecond
		c.GhostGrace = 1500 * time.Millisecond
		if more != nil {
			more(c)
		}
	}
}

func allReady(t *testing.T, tc *testCluster, names ...string) {
	t.Helper()
	eventually(t, "every node ready", func() bool {
		for _, name := range names {
			if !tc.node(name).Ready() {
				return false
			}
		}
		return true
	})
}

// TestClusterGhostAfterUnavailableJoin: both followers stall (as under
// SIGSTOP) while the leader takes a Join; its caller is told
// ErrUnavailable, and once the followers resume the Join commits anyway.
// Nobody holds that room: the leader removes it after the grace, and the
// same name later is a new meeting with a new conference ID.
func TestClusterGhostAfterUnavailableJoin(t *testing.T) {
	live := newLiveSets()
	tc := newTestCluster(t, 3, ghostOpts(live, func(c *Config) {
		// A lease (half of it) much longer than the stall, so the leader
		// keeps leading through it and the stalled entry commits.
		c.RaftTimeout = 6 * time.Second
	}))
	names := tc.names()
	l := tc.formed(names...)
	allReady(t, tc, names...)
	name := l.cfg.NodeName
	var followers []string
	for _, n := range names {
		if n != name {
			followers = append(followers, n)
		}
	}

	// A room that really runs here stays through it all.
	real := NewRoomKey([]byte("k"), "a real meeting")
	if _, _, err := l.Join(ctxT(t), real, name); err != nil {
		t.Fatal(err)
	}
	live.add(name, real)

	key := NewRoomKey([]byte("k"), "joined while the followers were stopped")
	tc.net.pause(followers...)
	short, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	_, _, err := l.Join(short, key, name)
	cancel()
	tc.net.resume()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("join with stalled followers: %v, want ErrUnavailable", err)
	}
	// The caller was told unavailable, so no participant is there (live
	// is not told); the command commits anyway.
	var ghostConf string
	eventually(t, "the unavailable join commits after the resume", func() bool {
		r, ok := l.fsm.lookup(key)
		ghostConf = r.ConferenceID
		return ok
	})
	eventually(t, "the ghost entry is removed on every replica", func() bool {
		for _, n := range names {
			if tc.node(n).fsm.holds(key) {
				return false
			}
		}
		return true
	})
	r, ok, err := l.Lookup(ctxT(t), real)
	if err != nil || !ok || r.Bridges[name] != 1 {
		t.Fatalf("the real room after the reconciliation: %+v %v %v", r, ok, err)
	}
	r, created, err := tc.node(followers[0]).Join(ctxT(t), key, followers[0])
	if err != nil || !created || r.ConferenceID == ghostConf {
		t.Fatalf("the same name later: created %v, same conference ID %v, %v", created, r.ConferenceID == ghostConf, err)
	}
}

// TestClusterGhostsAfterLeaderKilledInJoinStorm: joins with short
// deadlines through every node while the leader is killed. Some callers
// are told ErrUnavailable for joins that commit later. Once reports have
// run, the directory lists exactly what the surviving bridges hold, and
// every room nobody holds is a new meeting when joined again.
func TestClusterGhostsAfterLeaderKilledInJoinStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("join storm: skipped under -short")
	}
	live := newLiveSets()
	tc := newTestCluster(t, 3, ghostOpts(live, nil))
	tc.start("x", false, 3, "")
	names := tc.names()
	l := tc.formed(names...)
	allReady(t, tc, names...)
	killed := l.cfg.NodeName

	var (
		stop      atomic.Bool
		mu        sync.Mutex
		keys      []RoomKey
		failed    = map[RoomKey]bool{}
		succeeded = map[RoomKey]bool{}
		wg        sync.WaitGroup
	)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				via := names[rand.IntN(len(names))]
				n := tc.node(via)
				if n == nil {
					continue // killed
				}
				k := NewRoomKey([]byte("k"), fmt.Sprintf("storm %d %d", w, i))
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				_, _, err := n.Join(ctx, k, via)
				cancel()
				mu.Lock()
				keys = append(keys, k)
				if err == nil {
					succeeded[k] = true
					live.add(via, k)
				} else {
					failed[k] = true
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // the storm runs
	tc.kill(killed)
	time.Sleep(3 * time.Second) // and goes on through the election
	stop.Store(true)
	wg.Wait()

	var rest []string
	for _, n := range names {
		if n != killed {
			rest = append(rest, n)
		}
	}
	nl := tc.leader(rest...)
	ghosts := 0
	ghostConf := map[RoomKey]string{} // rooms nobody holds: their conference ID
	for _, k := range keys {
		r, ok := nl.fsm.lookup(k)
		if !ok {
			continue
		}
		held := false
		for b := range r.Bridges {
			if b != killed && !live.holds(b, k) {
				ghosts++
			}
			held = held || live.holds(b, k)
		}
		if !held {
			ghostConf[k] = r.ConferenceID
		}
	}
	t.Logf("%d joins, %d failed, %d ghost entries before the reconciliation", len(keys), len(failed), ghosts)

	eventually(t, "the directory lists exactly what the surviving bridges hold", func() bool {
		for _, k := range keys {
			r, ok := nl.fsm.lookup(k)
			for _, b := range rest {
				if live.holds(b, k) != (ok && r.Bridges[b] > 0) {
					return false
				}
			}
			if ok && r.Bridges[killed] > 0 {
				return false
			}
		}
		return true
	})
	// A room nobody holds is a new meeting when joined again.
	for k, conf := range ghostConf {
		r, created, err := nl.Join(ctxT(t), k, nl.cfg.NodeName)
		if err != nil || !created || r.ConferenceID == conf {
			t.Fatalf("a ghost room joined again: created %v, same conference ID %v, %v", created, r.ConferenceID == conf, err)
		}
	}
	_ = succeeded
}

// TestFSMDropGhosts: a drop applies only to the entry it was decided on:
// the same conference ID and the same count on that bridge. A join that
// landed after the decision, or a later room of the same name, stays.
func TestFSMDropGhosts(t *testing.T) {
	apply := func(f *fsm, c command) applyResult {
		r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: c.encode()}).(applyResult)
		return r
	}
	join := func(f *fsm, k RoomKey, bridge, conf string) Room {
		return apply(f, command{typ: cmdJoin, reqID: newRequestID(), key: k, bridge: bridge, conferenceID: conf, created: 1}).room
	}
	a, b, c := NewRoomKey([]byte("k"), "a"), NewRoomKey([]byte("k"), "b"), NewRoomKey([]byte("k"), "c")
	f := newFSM()
	join(f, a, "n1", "ca")
	join(f, a, "n2", "ca")
	join(f, b, "n1", "cb")
	join(f, c, "n1", "cc")
	if got := f.roomsOf("n1"); len(got) != 3 {
		t.Fatalf("roomsOf: %d rooms, want 3", len(got))
	}
	join(f, b, "n1", "cb") // landed after the decision below: n1 holds 2 now
	apply(f, command{typ: cmdDropGhosts, bridge: "n1", ghosts: []ghost{
		{key: a, conferenceID: "ca", count: 1},  // dropped: n2 keeps the room
		{key: b, conferenceID: "cb", count: 1},  // stale count: stays
		{key: c, conferenceID: "old", count: 1}, // another meeting: stays
	}})
	if r, ok := f.lookup(a); !ok || r.Bridges["n1"] != 0 || r.Bridges["n2"] != 1 {
		t.Fatalf("room a: %+v %v", r, ok)
	}
	if r, ok := f.lookup(b); !ok || r.Bridges["n1"] != 2 {
		t.Fatalf("room b: %+v %v", r, ok)
	}
	if r, ok := f.lookup(c); !ok || r.Bridges["n1"] != 1 {
		t.Fatalf("room c: %+v %v", r, ok)
	}
	apply(f, command{typ: cmdDropGhosts, bridge: "n1", ghosts: []ghost{{key: c, conferenceID: "cc", count: 1}}})
	if f.holds(c) {
		t.Fatal("a room held by the dropped bridge alone survives")
	}
}
