package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestMeetingAcrossNodes: three real nodes (serve in this process: raft and
// memberlist on loopback, the relay over QUIC, signaling over WebSockets).
// Participants entering through different nodes see each other in the
// roster, receive each other's audio with intact payloads on tracks that
// carry the roster's participant ID, get each other's chat (a late joiner
// on the third node gets the history once), see mute changes and leaves,
// and a node shut down takes its participant out of the others' rosters.
func TestMeetingAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with media; skipped in -short mode")
	}
	nodes := lanCluster(t, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "CascadeRoomNameNeverCrossesNodes"
	joinAt := func(i int, name string, tag uint32, got *audioLog) *client.Client {
		t.Helper()
		return joinTalking(ctx, t, "http://"+nodes[i].http, fmt.Sprintf("n%d", i), room, name, tag, got)
	}
	aliceGot, bobGot := &audioLog{got: map[uint32][2]int{}}, &audioLog{got: map[uint32][2]int{}}
	alice := joinAt(0, "Alice", 1, aliceGot)
	bob := joinAt(1, "Bob", 2, bobGot)
	aliceID, bobID := alice.Welcome.Participant, bob.Welcome.Participant
	aw, bw := newWatcher(alice), newWatcher(bob)

	// Roster, both ways, with display names.
	aw.wait(t, "Alice sees Bob join", func(m *wire.Message) bool { return joined(m, bobID, "Bob") })
	bw.wait(t, "Bob sees Alice", func(m *wire.Message) bool { return joined(m, aliceID, "Alice") })
	// Bob's track reaches Alice under Bob's roster ID, and its audio decodes.
	aw.wait(t, "Bob's track announced to Alice with Bob's ID", func(m *wire.Message) bool {
		return m.Type == wire.TypeTrackPublished && m.Track.Participant == bobID
	})
	for _, c := range []struct {
		who  string
		log  *audioLog
		from uint32
	}{{"Alice", aliceGot, 2}, {"Bob", bobGot, 1}} {
		waitFor(t, c.who+" receives intact audio from the other node", func() bool {
			n := c.log.count(c.from)
			return n[0] >= 20 && n[1] == n[0]
		})
	}

	// Chat both ways.
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "hello from n0"}); err != nil {
		t.Fatal(err)
	}
	bw.wait(t, "Bob gets Alice's chat", func(m *wire.Message) bool {
		return m.Type == wire.TypeChat && m.Text == "hello from n0" && m.Participant == aliceID && m.Name == "Alice"
	})

	// A late joiner on the third node: the roster of both others, the
	// history, each message once.
	carol := joinAt(2, "Carol", 0, nil)
	carolID := carol.Welcome.Participant
	cw := newWatcher(carol)
	cw.wait(t, "Carol sees Alice and Bob", func(m *wire.Message) bool {
		return cw.hasParticipant(aliceID) && cw.hasParticipant(bobID)
	})
	cw.wait(t, "Carol gets the history", func(m *wire.Message) bool { return cw.chats("hello from n0") >= 1 })
	aw.wait(t, "Alice sees Carol", func(m *wire.Message) bool { return joined(m, carolID, "Carol") })
	bw.wait(t, "Bob sees Carol", func(m *wire.Message) bool { return joined(m, carolID, "Carol") })
	if err := bob.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "second"}); err != nil {
		t.Fatal(err)
	}
	cw.wait(t, "Carol gets Bob's chat", func(m *wire.Message) bool { return cw.chats("second") >= 1 })
	aw.wait(t, "Alice gets Bob's chat", func(m *wire.Message) bool { return m.Type == wire.TypeChat && m.Text == "second" })
	if n := cw.chats("hello from n0"); n != 1 {
		t.Errorf("Carol got the history message %d times, want once", n)
	}

	// Mute.
	if err := bob.Send(ctx, &wire.Message{Type: wire.TypeState, Muted: &wire.Muted{Audio: true}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*watcher{aw, cw} {
		w.wait(t, "Bob's mute seen on another node", func(m *wire.Message) bool {
			return m.Type == wire.TypeParticipantUpdated && len(m.Participants) == 1 &&
				m.Participants[0].ID == bobID && m.Participants[0].Muted.Audio
		})
	}

	// Bob leaves.
	bob.Leave(ctx)
	for _, w := range []*watcher{aw, cw} {
		w.wait(t, "Bob's leave seen on another node", func(m *wire.Message) bool { return left(m, bobID) })
	}

	// The third node goes away: Carol leaves Alice's roster.
	nodes[2].stop()
	aw.wait(t, "Carol leaves Alice's roster when her node stops", func(m *wire.Message) bool { return left(m, carolID) })
}

func joined(m *wire.Message, id, name string) bool {
	if m.Type != wire.TypeParticipantJoined && m.Type != wire.TypeWelcome {
		return false
	}
	for _, p := range m.Participants {
		if p.ID == id && p.Name == name {
			return true
		}
	}
	return false
}

func left(m *wire.Message, id string) bool {
	return m.Type == wire.TypeParticipantLeft && m.Participant == id
}

// watcher records a client's events and lets the test wait for one.
type watcher struct {
	c   *client.Client
	mu  sync.Mutex
	all []*wire.Message
	new chan struct{}
}

func newWatcher(c *client.Client) *watcher {
	w := &watcher{c: c, all: []*wire.Message{c.Welcome}, new: make(chan struct{}, 1)}
	go func() {
		for m := range c.Events() {
			w.mu.Lock()
			w.all = append(w.all, m)
			w.mu.Unlock()
			select {
			case w.new <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// wait waits until one recorded message (any, from the welcome on)
// satisfies ok.
func (w *watcher) wait(t *testing.T, what string, ok func(*wire.Message) bool) {
	t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		w.mu.Lock()
		msgs := append([]*wire.Message(nil), w.all...)
		w.mu.Unlock()
		for _, m := range msgs {
			if ok(m) {
				return
			}
		}
		select {
		case <-w.new:
		case <-deadline:
			t.Fatalf("timed out: %s", what)
		}
	}
}

// hasParticipant reports whether id is in the roster built from the
// welcome and the join/leave events so far.
func (w *watcher) hasParticipant(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	in := false
	for _, m := range w.all {
		switch m.Type {
		case wire.TypeWelcome, wire.TypeParticipantJoined:
			for _, p := range m.Participants {
				if p.ID == id {
					in = true
				}
			}
		case wire.TypeParticipantLeft:
			if m.Participant == id {
				in = false
			}
		}
	}
	return in
}

// chats counts the chat messages with text.
func (w *watcher) chats(text string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.all {
		if m.Type == wire.TypeChat && m.Text == text {
			n++
		}
	}
	return n
}

// audioLog counts received audio packets per sender stamp: [received,
// intact].
type audioLog struct {
	mu  sync.Mutex
	got map[uint32][2]int
}

func (a *audioLog) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	go func() {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() != webrtc.RTPCodecTypeAudio || len(pkt.Payload) < client.OpusStampOffset {
				continue
			}
			stamp, ok := client.ReadStamp(pkt.Payload[client.OpusStampOffset:])
			a.mu.Lock()
			n := a.got[stamp.Sender]
			n[0]++
			if ok && len(pkt.Payload) == 80 {
				n[1]++
			}
			a.got[stamp.Sender] = n
			a.mu.Unlock()
		}
	}()
}

func (a *audioLog) count(from uint32) [2]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[from]
}
