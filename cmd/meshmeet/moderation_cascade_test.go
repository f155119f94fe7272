package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// rawSession is a signaling session on a bare WebSocket, for joins that do
// not end in a welcome (the lobby).
type rawSession struct {
	ws *websocket.Conn
}

func rawJoin(ctx context.Context, t *testing.T, addr, room, name string) (*rawSession, *wire.Message) {
	t.Helper()
	return rawJoinMsg(ctx, t, addr, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: name})
}

// rawJoinMsg sends join on a bare WebSocket, retrying while the directory
// is unavailable, and returns the session and its first message.
func rawJoinMsg(ctx context.Context, t *testing.T, addr string, join *wire.Message) (*rawSession, *wire.Message) {
	t.Helper()
	for {
		ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
		if err == nil {
			t.Cleanup(func() { ws.CloseNow() })
			s := &rawSession{ws: ws}
			s.write(t, ctx, join)
			m := s.read(t, ctx)
			if m.Type == wire.TypeError && m.Error.Code == wire.CodeUnavailable {
				ws.CloseNow()
				time.Sleep(200 * time.Millisecond)
				continue
			}
			return s, m
		}
		if ctx.Err() != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *rawSession) write(t *testing.T, ctx context.Context, m *wire.Message) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := s.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func (s *rawSession) read(t *testing.T, ctx context.Context) *wire.Message {
	t.Helper()
	_, data, err := s.ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m wire.Message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestModerationAcrossNodes: two real nodes of one meeting. The lobby a
// moderator on one node turns on holds on the other; a person waiting on
// one node is seen by a moderator on the other, who admits it there, and
// a denial from the other node turns a waiting person away; a removal
// from one node ends the session of a participant on the other, whose
// audio stops reaching the first node's participants, and whose resume
// secret works on neither node; moderation events reach everyone. When
// the last participant leaves, the meeting's lobby, chat and speaker
// stats are gone on both nodes: a rejoin through either sees a blank
// meeting.
func TestModerationAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("two-node cluster with media; skipped in -short mode")
	}
	addrs := httpAddrs(lanCluster(t, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const room = "ModerationAcrossNodesRoom"
	joinAt := func(i int, name string, tag uint32, got *audioLog) *client.Client {
		t.Helper()
		return joinTalking(ctx, t, "http://"+addrs[i], fmt.Sprintf("n%d", i), room, name, tag, got)
	}
	carolGot := &audioLog{got: map[uint32][2]int{}}
	alice := joinAt(0, "Alice", 0, nil)
	bob := joinAt(1, "Bob", 2, nil)
	carol := joinAt(0, "Carol", 0, carolGot)
	aID, bID := alice.Welcome.Participant, bob.Welcome.Participant
	for _, c := range []struct {
		who  string
		c    *client.Client
		node int
	}{{"Alice", alice, 0}, {"Bob", bob, 1}, {"Carol", carol, 0}} {
		if !strings.Contains(c.c.Node(), addrs[c.node]) {
			t.Fatalf("%s is served by %s, want n%d (%s): placement moved it", c.who, c.c.Node(), c.node, addrs[c.node])
		}
	}
	aw, bw, cw := newWatcher(alice), newWatcher(bob), newWatcher(carol)
	aw.wait(t, "Alice sees Bob", func(m *wire.Message) bool { return joined(m, bID, "Bob") })
	bw.wait(t, "Bob sees Alice", func(m *wire.Message) bool { return joined(m, aID, "Alice") })
	waitFor(t, "Carol receives Bob's audio from the other node", func() bool {
		n := carolGot.count(2)
		return n[0] >= 20 && n[1] == n[0]
	})
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "chat before the lobby"}); err != nil {
		t.Fatal(err)
	}

	// Lobby on at n0 holds at n1.
	on := true
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeSetLobby, Lobby: &on}); err != nil {
		t.Fatal(err)
	}
	bw.wait(t, "Bob (n1) sees Alice (n0) turn the lobby on", func(m *wire.Message) bool {
		return m.Type == wire.TypeModeration && m.Action == wire.ActionLobbyOn && m.By == aID
	})
	dave, first := rawJoin(ctx, t, addrs[1], room, "Dave")
	if first.Type != wire.TypeWaiting {
		t.Fatalf("a join at n1 with the lobby on answered %s", first.Type)
	}
	var daveID string
	aw.wait(t, "Alice (n0) sees Dave waiting at n1", func(m *wire.Message) bool {
		if m.Type != wire.TypeLobby {
			return false
		}
		for _, p := range m.Participants {
			if p.Name == "Dave" {
				daveID = p.ID
				return true
			}
		}
		return false
	})
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeAdmit, Participant: daveID}); err != nil {
		t.Fatal(err)
	}
	w := dave.read(t, ctx)
	if w.Type != wire.TypeWelcome || w.Participant != daveID {
		t.Fatalf("Dave's first message after waiting: %s", w.Type)
	}
	names := map[string]bool{}
	for _, p := range w.Participants {
		names[p.Name] = true
	}
	if !names["Alice"] || !names["Bob"] || !names["Carol"] {
		t.Fatalf("Dave's welcome lists %v", names)
	}
	cw.wait(t, "Carol (n0) sees Dave (n1) join", func(m *wire.Message) bool { return joined(m, daveID, "Dave") })

	// Denied from the other node.
	eve, first := rawJoin(ctx, t, addrs[0], room, "Eve")
	if first.Type != wire.TypeWaiting {
		t.Fatalf("Eve's join answered %s", first.Type)
	}
	var eveID string
	bw.wait(t, "Bob (n1) sees Eve waiting at n0", func(m *wire.Message) bool {
		if m.Type != wire.TypeLobby {
			return false
		}
		for _, p := range m.Participants {
			if p.Name == "Eve" {
				eveID = p.ID
				return true
			}
		}
		return false
	})
	if err := bob.Send(ctx, &wire.Message{Type: wire.TypeDeny, Participant: eveID}); err != nil {
		t.Fatal(err)
	}
	if m := eve.read(t, ctx); m.Type != wire.TypeError || m.Error.Code != wire.CodeRefused {
		t.Fatalf("Eve, denied from n1: %+v", m)
	}

	// Alice (n0) mutes Bob (n1): Bob and Carol are told, across the nodes.
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeMuteParticipant, Participant: bID}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*watcher{bw, cw} {
		w.wait(t, "the mute of Bob (n1) by Alice (n0) seen", func(m *wire.Message) bool {
			return m.Type == wire.TypeModeration && m.Action == wire.ActionMute && m.By == aID && m.Participant == bID
		})
	}

	// Alice (n0) removes Bob (n1).
	removedAt := time.Now()
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: bID}); err != nil {
		t.Fatal(err)
	}
	bw.wait(t, "Bob's session ends with removed", func(m *wire.Message) bool {
		return m.Type == wire.TypeError && m.Error.Code == wire.CodeRemoved && m.Error.Fatal
	})
	select {
	case <-bob.Done():
	case <-ctx.Done():
		t.Fatal("Bob's session not closed")
	}
	cw.wait(t, "Carol sees who removed Bob", func(m *wire.Message) bool {
		return m.Type == wire.TypeModeration && m.Action == wire.ActionRemove && m.By == aID && m.Participant == bID
	})
	cw.wait(t, "Carol sees Bob leave", func(m *wire.Message) bool { return left(m, bID) })
	cw.wait(t, "Bob's track unpublished for Carol", func(m *wire.Message) bool {
		return m.Type == wire.TypeTrackUnpublished && m.Track.Participant == bID
	})
	// A figure for docs and reports, not a check of speed.
	t.Logf("removal across nodes: Bob's track unpublished for Carol after %v", time.Since(removedAt))
	var last int
	waitFor(t, "Bob's audio stops reaching Carol", func() bool {
		now := carolGot.count(2)[0]
		stable := now == last
		last = now
		time.Sleep(500 * time.Millisecond)
		return stable
	})
	time.Sleep(2 * time.Second)
	if now := carolGot.count(2)[0]; now != last {
		t.Fatalf("Carol received %d more packets of removed Bob", now-last)
	}
	for i := range addrs {
		s, _ := rawJoinResume(ctx, t, addrs[i], room, bID, bob.Welcome.Secret)
		if s.Type != wire.TypeError {
			t.Fatalf("removed Bob's resume at n%d answered %s", i, s.Type)
		}
	}

	// Retention: everyone leaves; a rejoin through either node is blank.
	alice.Leave(ctx)
	carol.Leave(ctx)
	dave.write(t, ctx, &wire.Message{Type: wire.TypeLeave})
	for i := range addrs {
		var fresh *client.Client
		waitFor(t, fmt.Sprintf("a blank meeting at n%d", i), func() bool {
			c, err := client.Join(ctx, "http://"+addrs[i], room, client.Options{Name: "Zed"})
			if err != nil {
				return false
			}
			if len(c.Welcome.Participants) != 0 {
				c.Close()
				return false
			}
			fresh = c
			return true
		})
		if err := fresh.Send(ctx, &wire.Message{Type: wire.TypeSpeakerStats}); err != nil {
			t.Fatal(err)
		}
		fw := newWatcher(fresh)
		fw.wait(t, "speaker stats of the new meeting", func(m *wire.Message) bool { return m.Type == wire.TypeSpeakerStats })
		for _, m := range fw.all {
			if m.Type == wire.TypeChat || m.Type == wire.TypeLobby || (m.Type == wire.TypeSpeakerStats && len(m.Stats) != 0) {
				t.Fatalf("the new meeting at n%d carries old state: %+v", i, m)
			}
		}
		fresh.Leave(ctx)
		fresh.Close()
	}
}

// rawJoinResume tries a resume with a participant's secret.
func rawJoinResume(ctx context.Context, t *testing.T, addr, room, id, secret string) (*wire.Message, *rawSession) {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	s := &rawSession{ws: ws}
	s.write(t, ctx, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Resume: &wire.Resume{Participant: id, Secret: secret}})
	return s.read(t, ctx), s
}
