package signaling_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// joinAnswer sends one join on a new socket to n and returns the first answer.
func joinAnswer(t *testing.T, n *node, m *wire.Message) *wire.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, err := dialFrom(ctx, n, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	data, _ := json.Marshal(m)
	if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
	_, data, err = ws.Read(ctx)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	var a wire.Message
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

// TestResumeOnAnotherNode: a participant's resume secret is good on every
// node of the cluster (same room key), so a client whose node is gone joins
// another one as the same participant, with its display name; a wrong
// secret, another room's, or a removed participant's is refused.
func TestResumeOnAnotherNode(t *testing.T) {
	a := startNode(t, func(c *signaling.Config) { c.NodeName = "a" })
	b := startNode(t, func(c *signaling.Config) { c.NodeName = "b" })
	room := roomname.New()
	ca := join(t, a, room, client.Options{Name: "Ada"})
	id, secret := ca.Welcome.Participant, ca.Welcome.Secret

	w := joinAnswer(t, b, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: "Ada",
		Resume: &wire.Resume{Participant: id, Secret: secret}})
	if w.Type != wire.TypeWelcome {
		t.Fatalf("resume on another node: got %s %v, want welcome", w.Type, w.Error)
	}
	if w.Participant != id || w.Secret != secret {
		t.Errorf("resumed as %q (secret kept: %v), want %q", w.Participant, w.Secret == secret, id)
	}
	if w.Resumed {
		t.Error("welcome says resumed: the client would keep PeerConnections this node never had")
	}
	if b.Srv.Arrived() != 1 {
		t.Errorf("Arrived = %d, want 1", b.Srv.Arrived())
	}
	// Another participant on b sees the arrival under its ID and name.
	cb := join(t, b, room, client.Options{Name: "Bob"})
	var seen bool
	for _, p := range cb.Welcome.Participants {
		seen = seen || (p.ID == id && p.Name == "Ada")
	}
	if !seen {
		t.Errorf("b's roster %+v lacks the arrived participant", cb.Welcome.Participants)
	}

	refused := func(what string, r *wire.Resume, roomName string) {
		t.Helper()
		m := joinAnswer(t, b, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: roomName, Resume: r})
		if m.Type != wire.TypeError || m.Error.Code != wire.CodeResumeFailed {
			t.Errorf("%s: got %s %+v, want resume-failed", what, m.Type, m.Error)
		}
	}
	bad := []byte(secret)
	bad[0] = 'A'
	if secret[0] == 'A' {
		bad[0] = 'B'
	}
	refused("wrong secret", &wire.Resume{Participant: id, Secret: string(bad)}, room)
	notID := "x" + id[1:]
	if notID == id {
		notID = "y" + id[1:] // (an ID may start with x)
	}
	refused("another participant's secret", &wire.Resume{Participant: notID, Secret: secret}, room)
	refused("another room", &wire.Resume{Participant: id, Secret: secret}, roomname.New())
	c2 := join(t, a, room, client.Options{Name: "Cy"})
	b.Srv.RevokeResume(mesh.NewRoomKey(testRoomKey, room), c2.Welcome.Participant)
	refused("removed participant", &wire.Resume{Participant: c2.Welcome.Participant, Secret: c2.Welcome.Secret}, room)

	// A node with another cluster secret (room key) refuses it too.
	other := startNode(t, func(c *signaling.Config) { c.RoomKey = []byte("another cluster's room key 0123456") })
	m := joinAnswer(t, other, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Resume: &wire.Resume{Participant: id, Secret: secret}})
	if m.Type != wire.TypeError || m.Error.Code != wire.CodeResumeFailed {
		t.Errorf("other cluster: got %s %+v, want resume-failed", m.Type, m.Error)
	}
}

// TestResumeSameNodeKeepsMedia: on the node that holds the participant a
// resume is the single-node resume (welcome.resumed), as before.
func TestResumeSameNodeKeepsMedia(t *testing.T) {
	a := startNode(t, nil)
	room := roomname.New()
	c := join(t, a, room, client.Options{Name: "Ada"})
	c.DropSocket()
	var w *wire.Message
	waitFor(t, 15*time.Second, "resume", func() bool {
		w = joinAnswer(t, a, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room,
			Resume: &wire.Resume{Participant: c.Welcome.Participant, Secret: c.Welcome.Secret}})
		return w.Type == wire.TypeWelcome
	})
	if !w.Resumed || w.Participant != c.Welcome.Participant {
		t.Errorf("same-node resume: resumed=%v participant=%q", w.Resumed, w.Participant)
	}
	if a.Srv.Arrived() != 0 {
		t.Errorf("a same-node resume counted as an arrival")
	}
}
