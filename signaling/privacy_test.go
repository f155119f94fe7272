package signaling_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsNameNoSecret checks invariant 3 at the most verbose level: a whole
// meeting, including a bad message and a resume, leaves no room name,
// display name, chat text, secret or participant address in the logs.
func TestLogsNameNoSecret(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := startNodeLog(t, log, nil)
	const (
		room = "Quarterly Layoffs Planning Zanzibar"
		name = "Zebediah Quux"
		text = "the password is hunter2-xyzzy"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := join(t, n, room, client.Options{Name: name})
	conference := conferenceID(t, n, room)
	bob := join(t, n, room, client.Options{Name: "Bob Secretname"})
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: text}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, bob, wire.TypeChat)
	// A bad message carrying a name-like value.
	mallory := join(t, n, room, client.Options{Name: "Mallory Snoop"})
	mallory.SendRaw(ctx, []byte(`{"type":"chat","text":"x","participant":"`+name+`"}`))
	<-mallory.Done()
	bob.Leave(ctx)
	alice.Leave(ctx)
	waitFor(t, 10*time.Second, "room deleted", func() bool { r, _ := n.Dir.Rooms(ctx); return r == 0 })

	out := logs.String()
	if !strings.Contains(out, "participant joined") {
		t.Fatalf("debug logs missing; the test would prove nothing:\n%s", out)
	}
	for _, secret := range []string{
		room, "Quarterly", "Zanzibar", name, "Zebediah", "Secretname", "Snoop", text, "hunter2",
		alice.Welcome.Secret, bob.Welcome.Secret, conference,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// TestWelcomeHasNoConferenceID: no message a client receives carries the
// room's conference ID. Through a second node it would tell an outsider
// whether the room was already occupied on another node.
func TestWelcomeHasNoConferenceID(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const room = "a room with a secret conference"
	first := dialWS(ctx, t, n)
	writeJSON(ctx, t, first, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	_, w1 := readJSON(ctx, t, first)
	conference := conferenceID(t, n, room)
	second := dialWS(ctx, t, n)
	writeJSON(ctx, t, second, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	_, w2 := readJSON(ctx, t, second)
	// The first participant's next messages (the second's arrival) too.
	_, ev := readJSON(ctx, t, first)
	for _, raw := range []string{w1, w2, ev} {
		if strings.Contains(raw, conference) || strings.Contains(raw, `"conference"`) {
			t.Fatalf("a client was sent the conference ID: %s", raw)
		}
	}
}
