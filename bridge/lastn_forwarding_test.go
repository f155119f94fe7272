package bridge

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// fwdCall is one ParticipantEvents.Forwarding call.
type fwdCall struct {
	all bool
	ids []string
}

// fwdLog records ParticipantEvents.Forwarding calls.
type fwdLog struct {
	mu    sync.Mutex
	calls []fwdCall
}

func (l *fwdLog) event(all bool, ids []string) {
	l.mu.Lock()
	l.calls = append(l.calls, fwdCall{all, ids})
	l.mu.Unlock()
}

// last returns the latest report and the number of reports so far.
func (l *fwdLog) last() (fwdCall, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == 0 {
		return fwdCall{all: true}, 0
	}
	return l.calls[len(l.calls)-1], len(l.calls)
}

// TestLastNForwardingReport: the Forwarding event names exactly the
// subscriber's video tracks inside last-N or pinned, is called again when a
// speaker or a pin moves the set and when a video subscription is added,
// not at all when nothing changed, and says "all" once last-N is off.
func TestLastNForwardingReport(t *testing.T) {
	lr := newLastNRoom(t, 5, 2)
	var log fwdLog
	lr.sub.ev.Forwarding = log.event
	expect := func(what string, want ...string) {
		t.Helper()
		got, _ := log.last()
		if got.all || !slices.Equal(got.ids, want) {
			t.Fatalf("%s: forwarding all=%v %v, want %v", what, got.all, got.ids, want)
		}
	}
	lr.tick()
	expect("before anyone spoke", "v0", "v1")
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
	expect("after p3 spoke", "v0", "v3")
	for k := 0; k < 20; k++ {
		lr.speak(t, 4, 20)
	}
	lr.tick()
	expect("after p3 then p4 spoke", "v3", "v4")
	lr.sub.Pin("v1", true)
	lr.tick()
	expect("with v1 pinned", "v1", "v3", "v4")
	lr.sub.Pin("v1", false)
	lr.tick()
	expect("v1 unpinned", "v3", "v4")
	// A forwarded track unsubscribed leaves the list.
	dt := lr.sub.downtracks["v4"]
	delete(lr.sub.downtracks, "v4")
	lr.tick()
	expect("v4 gone", "v3")
	lr.sub.downtracks["v4"] = dt // for newLastNRoom's cleanup too
	lr.tick()
	expect("v4 back", "v3", "v4")
	// A new video subscription is reported even when the list stays the
	// same (it is paused): the client learns it after subscribing.
	dt = lr.sub.downtracks["v0"]
	delete(lr.sub.downtracks, "v0")
	lr.tick()
	_, n = log.last()
	lr.sub.downtracks["v0"] = dt
	lr.tick()
	expect("paused v0 subscribed again", "v3", "v4")
	if _, n2 := log.last(); n2 != n+1 {
		t.Fatalf("%d reports after a paused video subscription was added, want 1", n2-n)
	}
	// Last-N off: all forwarded, no list.
	lr.r.SetLastN(-1)
	lr.tick()
	if got, _ := log.last(); !got.all || got.ids != nil {
		t.Fatalf("last-N off: forwarding all=%v %v, want all and no list", got.all, got.ids)
	}
	_, n = log.last()
	lr.tick()
	if _, n2 := log.last(); n2 != n {
		t.Fatalf("%d reports after ticks with last-N off, want none", n2-n)
	}
}

// TestLastNForwardingBounded: with 40 video publishers and N = 2, the
// report lists at most N videos plus the subscriber's pins, whatever the
// number of paused ones (the old report listed the 38 paused).
func TestLastNForwardingBounded(t *testing.T) {
	lr := newLastNRoom(t, 40, 2)
	var log fwdLog
	lr.sub.ev.Forwarding = log.event
	lr.tick()
	check := func(what string, pins int) {
		t.Helper()
		got, n := log.last()
		if n == 0 || got.all {
			t.Fatalf("%s: no limited report (%d reports, all=%v)", what, n, got.all)
		}
		if len(got.ids) > 2+pins {
			t.Fatalf("%s: %d videos listed, want at most %d (N=2 + %d pins)", what, len(got.ids), 2+pins, pins)
		}
	}
	check("nobody spoke", 0)
	for k := 0; k < 20; k++ {
		lr.speak(t, 17, 20)
	}
	lr.tick()
	check("p17 spoke", 0)
	lr.sub.Pin("v30", true)
	lr.sub.Pin("v31", true)
	lr.tick()
	check("two pins", 2)
	if got, _ := log.last(); !slices.Contains(got.ids, "v30") || !slices.Contains(got.ids, "v17") {
		t.Fatalf("two pins: %v lacks the pinned v30 or the speaker's v17", got.ids)
	}
}

// TestLastNForwardingRealClients: participants on real pion PeerConnections.
// With N = 1 the subscriber is told that only the one recent speaker's
// video is forwarded, receives no packets of those videos, and
// hears of the change when another publisher speaks and when it pins.
func TestLastNForwardingRealClients(t *testing.T) {
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
	var log fwdLog
	sub.setForwarding(log.event)
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
	waitForwarded := func(what string, want ...string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() bool {
			got, _ := log.last()
			return !got.all && slices.Equal(got.ids, want)
		})
	}
	// Nobody speaks (level -100 dBov): the first publisher in order.
	waitForwarded("only alice's video forwarded", video["alice"])
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
	waitForwarded("after carol spoke: only carol's video forwarded", video["carol"])
	sub.p.Pin(video["bob"], true)
	waitForwarded("bob pinned: bob's and carol's videos forwarded", sorted(video["bob"], video["carol"])...)
	eventually(t, 20*time.Second, "dave receives bob's pinned video", func() bool { return received("bob") > 10 })
}
