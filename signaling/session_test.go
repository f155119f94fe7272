package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// sessionLog records the ICEServers and SessionEnded calls of a node.
type sessionLog struct {
	mu     sync.Mutex
	minted map[string]int    // session ID → ICEServers calls
	ended  map[string]int    // session ID → SessionEnded calls
	order  []string          // session IDs in the order of their first mint
	user   map[string]string // session ID → the TURN username handed out
}

func newSessionLog() *sessionLog {
	return &sessionLog{minted: map[string]int{}, ended: map[string]int{}, user: map[string]string{}}
}

func (l *sessionLog) configure(c *signaling.Config) {
	c.ICEServers = func(id string) []wire.ICEServer {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.minted[id] == 0 {
			l.order = append(l.order, id)
			l.user[id] = fmt.Sprintf("user%d", len(l.order))
		}
		l.minted[id]++
		if l.ended[id] != 0 {
			panic("ICEServers called for an ended session")
		}
		return []wire.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: l.user[id], Credential: "c"}}
	}
	c.SessionEnded = func(id string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.ended[id]++
	}
}

// last returns the session ID minted most recently for a new session.
func (l *sessionLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order[len(l.order)-1]
}

func (l *sessionLog) username(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.user[id]
}

func (l *sessionLog) counts(id string) (minted, ended int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.minted[id], l.ended[id]
}

func dialWS(ctx context.Context, t *testing.T, n *node) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func writeJSON(ctx context.Context, t *testing.T, ws *websocket.Conn, m *wire.Message) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func readJSON(ctx context.Context, t *testing.T, ws *websocket.Conn) (*wire.Message, string) {
	t.Helper()
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m wire.Message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m, string(data)
}

// TestSessionLifecycle checks the session hooks TURN builds on: every
// session gets one opaque ID, the same across a resume and shown to no
// client, and SessionEnded reports it exactly once however it ends.
func TestSessionLifecycle(t *testing.T) {
	l := newSessionLog()
	n := startNode(t, func(c *signaling.Config) {
		l.configure(c)
		c.ResumeWindow = 2 * time.Second // a resume gets there in time even on a loaded machine
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := roomname.New()

	alice := join(t, n, room, client.Options{Name: "Alice"})
	aliceID := l.last()
	bob := join(t, n, room, client.Options{Name: "Bob"})
	bobID := l.last()
	if aliceID == bobID {
		t.Fatal("two participants share a session ID")
	}
	for _, c := range []*client.Client{alice, bob} {
		w, _ := json.Marshal(c.Welcome)
		for _, id := range []string{aliceID, bobID} {
			if strings.Contains(string(w), id) {
				t.Fatalf("a welcome carries a session ID: %s", w)
			}
		}
		if len(c.Welcome.ICEServers) != 1 {
			t.Fatalf("welcome ICE servers = %+v", c.Welcome.ICEServers)
		}
	}
	if got, want := bob.Welcome.ICEServers[0].Username, l.username(bobID); got != want {
		t.Fatalf("Bob was handed TURN user %q, want %q minted for his session", got, want)
	}

	// A resume mints again for the same session and ends nothing.
	bob.DropSocket()
	ws := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: 1, Room: room,
		Resume: &wire.Resume{Participant: bob.Welcome.Participant, Secret: bob.Welcome.Secret}})
	if w, raw := readJSON(ctx, t, ws); w.Type != wire.TypeWelcome || !w.Resumed {
		t.Fatalf("resume answered %s", raw)
	}
	if m, e := l.counts(bobID); m != 2 || e != 0 {
		t.Fatalf("after resume: Bob's session minted %d times, ended %d times; want 2, 0", m, e)
	}

	// Leave ends Alice's session.
	if err := alice.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Alice's session ended", func() bool { _, e := l.counts(aliceID); return e > 0 })

	// The resume window expiring ends Bob's.
	ws.CloseNow()
	waitFor(t, 10*time.Second, "Bob's session ended", func() bool { _, e := l.counts(bobID); return e > 0 })

	// Removal after a bad message ends Carol's.
	carol := join(t, n, room, client.Options{Name: "Carol"})
	carolID := l.last()
	carol.SendRaw(ctx, []byte(`{{{`))
	waitFor(t, 10*time.Second, "Carol's session ended", func() bool { _, e := l.counts(carolID); return e > 0 })

	// Node shutdown ends Dave's.
	join(t, n, room, client.Options{Name: "Dave"})
	daveID := l.last()
	n.Stop()

	for who, id := range map[string]string{"Alice": aliceID, "Bob": bobID, "Carol": carolID, "Dave": daveID} {
		if _, e := l.counts(id); e != 1 {
			t.Errorf("%s's session ended %d times, want exactly once", who, e)
		}
	}
}
