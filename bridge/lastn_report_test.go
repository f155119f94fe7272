package bridge

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// pausedLog records ParticipantEvents.Paused calls.
type pausedLog struct {
	mu    sync.Mutex
	calls [][]string
}

func (l *pausedLog) event(ids []string) {
	l.mu.Lock()
	l.calls = append(l.calls, ids)
	l.mu.Unlock()
}

// last returns the latest report and the number of reports so far.
func (l *pausedLog) last() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == 0 {
		return nil, 0
	}
	return l.calls[len(l.calls)-1], len(l.calls)
}

// TestLastNPausedReport: the Paused event names exactly the subscriber's
// video tracks outside last-N (pins excluded), is called again when a
// speaker or a pin moves the set, and not at all when nothing changed.
func TestLastNPausedReport(t *testing.T) {
	lr := newLastNRoom(t, 5, 2)
	var log pausedLog
	lr.sub.ev.Paused = log.event
	expect := func(what string, want ...string) {
		t.Helper()
		got, _ := log.last()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: paused %v, want %v", what, got, want)
		}
	}
	lr.tick()
	expect("before anyone spoke", "v2", "v3", "v4")
	_, n := log.last()
	lr.tick()
	lr.tick()
	if _, n2 := log.last(); n2 != n {
		t.Fatalf("%d reports after ticks that changed nothing, want none", n2-n)
	}
	for k := 0; k < 20; k++ {
		lr.speak(t, 3, 20)
	}
	lr.tick()
	expect("after p3 spoke", "v1", "v2", "v4")
	for k := 0; k < 20; k++ {
		lr.speak(t, 4, 20)
	}
	lr.tick()
	expect("after p3 then p4 spoke", "v0", "v1", "v2")
	lr.sub.Pin("v1", true)
	lr.tick()
	expect("with v1 pinned", "v0", "v2")
	lr.sub.Pin("v1", false)
	lr.tick()
	expect("v1 unpinned", "v0", "v1", "v2")
	// A paused track unpublished leaves the list.
	dt := lr.sub.downtracks["v0"]
	delete(lr.sub.downtracks, "v0")
	t.Cleanup(func() { lr.sub.downtracks["v0"] = dt }) // for newLastNRoom's cleanup
	lr.tick()
	expect("v0 gone", "v1", "v2")
	// Last-N off: nothing paused.
	lr.r.SetLastN(-1)
	lr.tick()
	expect("last-N off")
}

// TestLastNPausedRealClients: participants on real pion PeerConnections.
// With N = 1 the subscriber is told that the video of everyone but the
// one recent speaker is paused, receives no packets of those videos, and
// hears of the change when another publisher speaks and when it pins.
func TestLastNPausedRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("real PeerConnections")
	}
	b := startBridge(t)
	r := b.NewRoom("lastn-real", RoomEvents{})
	defer r.Close()
	r.SetLastN(1)
	api := clientAPI(t)
	var pubs []*client
	for _, id := range []string{"alice", "bob", "carol"} {
		c := newClient(t, api, r, id)
		defer c.close()
		pubs = append(pubs, c)
	}
	sub := newClient(t, api, r, "dave")
	defer sub.close()
	var log pausedLog
	sub.setPaused(log.event)
	for _, c := range pubs {
		c.publish(nil)
	}
	video := map[string]string{} // participant → its video track ID
	eventually(t, 20*time.Second, "three video tracks", func() bool {
		for _, ti := range r.Tracks() {
			if ti.Kind == webrtc.RTPCodecTypeVideo {
				video[ti.Participant] = ti.ID
			}
		}
		return len(video) == 3
	})
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	waitPaused := func(what string, want []string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() bool {
			got, _ := log.last()
			return slices.Equal(got, want)
		})
	}
	// Nobody speaks (level -100 dBov): the first publisher in order.
	waitPaused("bob's and carol's video paused", sorted(video["bob"], video["carol"]))
	eventually(t, 20*time.Second, "dave receives alice's video", func() bool {
		rt := sub.track(video["alice"])
		if rt == nil {
			return false
		}
		pk, _, _, _ := rt.snapshot()
		return pk > 10
	})
	// Paused videos get no packets: what arrived stops growing.
	received := func(p string) int {
		if rt := sub.track(video[p]); rt != nil {
			pk, _, _, _ := rt.snapshot()
			return pk
		}
		return 0
	}
	before := received("carol")
	time.Sleep(time.Second)
	if got := received("carol"); got != before {
		t.Fatalf("carol's paused video: %d packets arrived in a second", got-before)
	}
	pubs[2].loud.Store(20) // carol speaks
	waitPaused("after carol spoke: alice's and bob's video paused", sorted(video["alice"], video["bob"]))
	sub.p.Pin(video["bob"], true)
	waitPaused("bob pinned: alice's video paused", []string{video["alice"]})
	eventually(t, 20*time.Second, "dave receives bob's pinned video", func() bool { return received("bob") > 10 })
}
