package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Loopback addresses that play separate sources.
const (
	attackerIP = "127.0.0.1"
	otherIP    = "127.0.0.2"
	meetingIP  = "127.0.0.3"
)

// meeting is two participants of one room, joined from meetingIP, whose
// chat shows whether an attack harmed them.
type meeting struct {
	alice, bob *websocket.Conn
}

func startMeeting(ctx context.Context, t *testing.T, n *node) *meeting {
	t.Helper()
	var m meeting
	for _, ws := range []**websocket.Conn{&m.alice, &m.bob} {
		c, typ, code, err := rawJoinFrom(ctx, n, meetingIP, "existing meeting")
		if err != nil || typ != wire.TypeWelcome {
			t.Fatalf("meeting join: %v %s %s", err, typ, code)
		}
		t.Cleanup(func() { c.CloseNow() })
		*ws = c
	}
	return &m
}

// check sends a chat from Alice and waits for Bob to receive it.
func (m *meeting) check(ctx context.Context, t *testing.T, text string) {
	t.Helper()
	b, _ := json.Marshal(&wire.Message{Type: wire.TypeChat, Text: text})
	if err := m.alice.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("meeting: Alice cannot send: %v", err)
	}
	for {
		_, data, err := m.bob.Read(ctx)
		if err != nil {
			t.Fatalf("meeting: Bob's session ended: %v", err)
		}
		var msg wire.Message
		json.Unmarshal(data, &msg)
		if msg.Type == wire.TypeError {
			t.Fatalf("meeting: Bob got %s", data)
		}
		if msg.Type == wire.TypeChat && msg.Text == text {
			return
		}
	}
}

// wantBusy checks that ws was refused with a fatal busy error and closed.
func wantBusy(ctx context.Context, t *testing.T, ws *websocket.Conn, what string) {
	t.Helper()
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("%s: closed without an error message: %v", what, err)
	}
	var m wire.Message
	json.Unmarshal(data, &m)
	if m.Type != wire.TypeError || m.Error.Code != wire.CodeBusy || !m.Error.Fatal {
		t.Fatalf("%s: got %s, want a fatal %q error", what, data, wire.CodeBusy)
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatalf("%s: socket still open after busy", what)
	}
}

// TestOneSourceCannotFillNode: one source holds at most MaxPerSource
// sockets and as many participants, dropped sockets included; past that it
// is told "busy", while another source still joins and an existing meeting
// carries on.
func TestOneSourceCannotFillNode(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) {
		c.MaxPerSource = 4
		c.ResumeWindow = time.Minute // dropped sockets' participants stay
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := startMeeting(ctx, t, n)

	var held []*websocket.Conn
	for i := range 4 {
		ws, typ, code, err := rawJoinFrom(ctx, n, attackerIP, "flood")
		if err != nil || typ != wire.TypeWelcome {
			t.Fatalf("attacker join %d within the limit: %v %s %s", i, err, typ, code)
		}
		held = append(held, ws)
	}
	// A fifth socket is refused at once.
	ws, err := dialFrom(ctx, n, attackerIP)
	if err != nil {
		t.Fatal(err)
	}
	wantBusy(ctx, t, ws, "fifth socket from one source")

	// Dropping the sockets frees socket slots, but the participants wait
	// for a resume and still count: new joins are refused.
	for _, ws := range held {
		ws.CloseNow()
	}
	waitFor(t, 10*time.Second, "a join refused for the source's participants, not its sockets", func() bool {
		ws, err := dialFrom(ctx, n, attackerIP)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		b, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: "flood"})
		ws.Write(ctx, websocket.MessageText, b)
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m wire.Message
		json.Unmarshal(data, &m)
		if m.Type != wire.TypeError || m.Error.Code != wire.CodeBusy {
			t.Fatalf("join past the source's participants: %s", data)
		}
		// Until the server has seen the sockets close, the refusal is
		// for sockets; then it must be for participants.
		return strings.Contains(m.Error.Message, "participants")
	})

	// Another source joins, and the meeting never noticed.
	if _, typ, code, err := rawJoinFrom(ctx, n, otherIP, "flood"); err != nil || typ != wire.TypeWelcome {
		t.Fatalf("second source: %v %s %s", err, typ, code)
	}
	m.check(ctx, t, "still here")
	if st := n.Srv.Stats(); st.BusyRefused == 0 {
		t.Fatal("refusals not counted")
	}
}

// TestSourceJoinRate: one source's joins are paced; past its budget it is
// told "busy" while another source joins.
func TestSourceJoinRate(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) {
		c.SourceJoinRate = 0.001 // no refill during the test
		c.SourceJoinBurst = 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := startMeeting(ctx, t, n)
	for i := range 3 {
		ws, typ, code, err := rawJoinFrom(ctx, n, attackerIP, "churn")
		if err != nil || typ != wire.TypeWelcome {
			t.Fatalf("join %d within the budget: %v %s %s", i, err, typ, code)
		}
		b, _ := json.Marshal(&wire.Message{Type: wire.TypeLeave})
		ws.Write(ctx, websocket.MessageText, b)
		ws.CloseNow()
	}
	ws, typ, code, err := rawJoinFrom(ctx, n, attackerIP, "churn")
	if err != nil || typ != wire.TypeError || code != wire.CodeBusy {
		t.Fatalf("join past the budget: %v %s %s, want busy", err, typ, code)
	}
	ws.CloseNow()
	if _, typ, code, err := rawJoinFrom(ctx, n, otherIP, "churn"); err != nil || typ != wire.TypeWelcome {
		t.Fatalf("second source: %v %s %s", err, typ, code)
	}
	m.check(ctx, t, "still here")
}

// TestUnjoinedSocketsCappedAndClosed: sockets that never send join are
// capped node-wide and closed after JoinTimeout.
func TestUnjoinedSocketsCappedAndClosed(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) {
		c.MaxUnjoined = 5
		// Long enough that the idle sockets are still open when the
		// sixth arrives, even on a loaded machine.
		c.JoinTimeout = 3 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := startMeeting(ctx, t, n)

	var idle []*websocket.Conn
	for range 5 {
		ws, err := dialFrom(ctx, n, attackerIP)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		idle = append(idle, ws)
	}
	ws, err := dialFrom(ctx, n, otherIP)
	if err != nil {
		t.Fatal(err)
	}
	wantBusy(ctx, t, ws, "a socket past the not-joined cap")

	// The server closes the idle sockets itself.
	for i, ws := range idle {
		if _, _, err := ws.Read(ctx); err == nil || ctx.Err() != nil {
			t.Fatalf("idle socket %d: %v, want closed by the server", i, err)
		}
	}
	if _, typ, code, err := rawJoinFrom(ctx, n, otherIP, "after"); err != nil || typ != wire.TypeWelcome {
		t.Fatalf("join after the idle sockets were closed: %v %s %s", err, typ, code)
	}
	m.check(ctx, t, "still here")
}

// TestWebSocketOutlivesHTTPTimeouts: the node's http.Server bounds plain
// requests with ReadTimeout and WriteTimeout; a WebSocket session outlives
// both (net/http clears the deadlines of a hijacked connection, and the
// session bounds each read and write itself). This is what lets serve set
// those timeouts.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	n := startNodeServer(t, func(hs *http.Server) {
		hs.ReadTimeout = 200 * time.Millisecond
		hs.WriteTimeout = 200 * time.Millisecond
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, typ, code, err := rawJoinFrom(ctx, n, "", "long meeting")
	if err != nil || typ != wire.TypeWelcome {
		t.Fatalf("join: %v %s %s", err, typ, code)
	}
	defer ws.CloseNow()
	// Outlast both timeouts, then use the socket both ways.
	time.Sleep(time.Second)
	b, _ := json.Marshal(&wire.Message{Type: wire.TypePing})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write after the HTTP timeouts: %v", err)
	}
	for {
		typ, _, err := readType(ctx, ws)
		if err != nil {
			t.Fatalf("session ended by the HTTP timeouts: %v", err)
		}
		if typ == wire.TypePong {
			return
		}
	}
}

// TestSourceMessageBudget: the sockets of one source share one message
// budget; past it, the source's next message waits unread (counted) while
// another source and an existing meeting are served as before.
func TestSourceMessageBudget(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) {
		c.SourceMessageRate = 0.001 // no refill during the test
		c.SourceMessageBurst = 4
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := startMeeting(ctx, t, n)

	ping, _ := json.Marshal(&wire.Message{Type: wire.TypePing})
	var socks []*websocket.Conn
	for i := range 2 { // two joins: two messages of the budget
		ws, typ, code, err := rawJoinFrom(ctx, n, attackerIP, "chatter")
		if err != nil || typ != wire.TypeWelcome {
			t.Fatalf("join %d within the budget: %v %s %s", i, err, typ, code)
		}
		defer ws.CloseNow()
		socks = append(socks, ws)
	}
	waitPong := func(ws *websocket.Conn, what string) {
		t.Helper()
		for {
			typ, code, err := readType(ctx, ws)
			if err != nil || typ == wire.TypeError {
				t.Fatalf("%s: %v %s %s", what, err, typ, code)
			}
			if typ == wire.TypePong {
				return
			}
		}
	}
	for i, ws := range socks { // two pings: the budget is spent
		ws.Write(ctx, websocket.MessageText, ping)
		waitPong(ws, fmt.Sprintf("ping %d within the budget", i))
	}
	if got := n.Srv.Stats().SourceThrottled; got != 0 {
		t.Fatalf("throttled %d messages within the budget", got)
	}
	// A fifth message from either socket waits, unread, for the budget.
	socks[0].Write(ctx, websocket.MessageText, ping)
	waitFor(t, 10*time.Second, "the source's fifth message throttled", func() bool {
		return n.Srv.Stats().SourceThrottled == 1
	})
	// Another source is not slowed, nor is the meeting.
	ws, typ, code, err := rawJoinFrom(ctx, n, otherIP, "chatter")
	if err != nil || typ != wire.TypeWelcome {
		t.Fatalf("second source: %v %s %s", err, typ, code)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, ping)
	waitPong(ws, "second source's ping")
	m.check(ctx, t, "still here")
}
