package signaling_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
	"github.com/meshmeet/meshmeet/web"
)

func TestRoomLifecycleAndChat(t *testing.T) {
	n := startNode(t, nil)
	room := roomname.New()

	alice := join(t, n, room, client.Options{Name: "Alice"})
	if len(alice.Welcome.Participants) != 0 {
		t.Fatalf("first participant sees %d others", len(alice.Welcome.Participants))
	}
	conf1 := conferenceID(t, n, room)
	if alice.Welcome.Participant == "" || alice.Welcome.Secret == "" {
		t.Fatalf("welcome lacks participant or secret: %+v", alice.Welcome)
	}

	bob := join(t, n, room, client.Options{Name: "Bob"})
	if c := conferenceID(t, n, room); c != conf1 {
		t.Fatalf("second join changed the conference to %q, want %q", c, conf1)
	}
	if ps := bob.Welcome.Participants; len(ps) != 1 || ps[0].Name != "Alice" || ps[0].ID != alice.Welcome.Participant {
		t.Fatalf("Bob's welcome lists %+v, want Alice", ps)
	}
	ev := nextEvent(t, alice, wire.TypeParticipantJoined)
	if len(ev.Participants) != 1 || ev.Participants[0].Name != "Bob" || ev.Participants[0].ID != bob.Welcome.Participant {
		t.Fatalf("participant-joined = %+v, want Bob", ev.Participants)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "hello Bob"}); err != nil {
		t.Fatal(err)
	}
	got := nextEvent(t, bob, wire.TypeChat)
	if got.Text != "hello Bob" || got.Participant != alice.Welcome.Participant || got.Name != "Alice" || got.TS == 0 {
		t.Fatalf("Bob received chat %+v", got)
	}
	// The sender gets the server's copy too.
	if echo := nextEvent(t, alice, wire.TypeChat); echo.Text != "hello Bob" {
		t.Fatalf("Alice's echo = %+v", echo)
	}

	// A late joiner gets the room's chat.
	carol := join(t, n, room, client.Options{Name: "Carol"})
	if h := nextEvent(t, carol, wire.TypeChat); h.Text != "hello Bob" {
		t.Fatalf("late joiner's history = %+v", h)
	}

	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeState, Muted: &wire.Muted{Audio: true}}); err != nil {
		t.Fatal(err)
	}
	up := nextEvent(t, bob, wire.TypeParticipantUpdated)
	if len(up.Participants) != 1 || up.Participants[0].ID != alice.Welcome.Participant || !up.Participants[0].Muted.Audio {
		t.Fatalf("participant-updated = %+v", up.Participants)
	}

	for _, c := range []*client.Client{alice, bob, carol} {
		if err := c.Leave(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "room deleted from the directory", func() bool {
		rooms, _ := n.Dir.Rooms(ctx)
		return rooms == 0
	})

	// The same name again is a new meeting with none of the old state.
	dave := join(t, n, room, client.Options{Name: "Dave"})
	if conferenceID(t, n, room) == conf1 {
		t.Fatal("a later meeting of the same name reused the conference ID")
	}
	if len(dave.Welcome.Participants) != 0 {
		t.Fatalf("new meeting lists old participants: %+v", dave.Welcome.Participants)
	}
	if err := dave.Send(ctx, &wire.Message{Type: wire.TypePing}); err != nil {
		t.Fatal(err)
	}
	// The first message after welcome must be the pong: no chat survived.
	if m := nextEvent(t, dave, wire.TypeChat, wire.TypePong); m.Type != wire.TypePong {
		t.Fatalf("new meeting delivered old chat: %+v", m)
	}
}

func TestBadMessageClosesOnlyItsSession(t *testing.T) {
	n := startNode(t, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	nextEvent(t, alice, wire.TypeParticipantJoined)

	for _, tc := range []struct{ name, frame, code string }{
		{"garbage", `{{{`, wire.CodeBadMessage},
		{"duplicate key", `{"type":"chat","text":"a","text":"b"}`, wire.CodeBadMessage},
		{"spoofed sender", `{"type":"chat","text":"hi","participant":"` + alice.Welcome.Participant + `"}`, wire.CodeBadMessage},
		{"oversized chat", `{"type":"chat","text":"` + strings.Repeat("x", wire.MaxChatRunes+1) + `"}`, wire.CodeBadMessage},
		{"second join", `{"type":"join","version":1,"room":"other"}`, wire.CodeBadMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mallory := join(t, n, room, client.Options{Name: "Mallory"})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := mallory.SendRaw(ctx, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			m := nextEvent(t, mallory, wire.TypeError)
			if m.Error.Code != tc.code || !m.Error.Fatal {
				t.Fatalf("error = %+v, want fatal %s", m.Error, tc.code)
			}
			select {
			case <-mallory.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("session not closed after a fatal error")
			}
			// Everyone else is untouched: chat still flows.
			if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "still here " + tc.name}); err != nil {
				t.Fatal(err)
			}
			for {
				m := nextEvent(t, bob, wire.TypeChat)
				if m.Text == "still here "+tc.name {
					break
				}
			}
		})
	}
}

func TestFirstMessageMustBeJoin(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ frame, code string }{
		{`{"type":"chat","text":"hi"}`, wire.CodeNotJoined},
		{`{"type":"join","version":2,"room":"r"}`, wire.CodeBadVersion},
		{`{"type":"join","version":1,"room":"r","resume":{"participant":"nobody","secret":"nothing"}}`, wire.CodeResumeFailed},
		// A password or token out of bounds is refused, never quoted.
		{`{"type":"join","version":1,"room":"r","password":"zqx-hunter2\u0001"}`, wire.CodeBadMessage},
		{`{"type":"join","version":1,"room":"r","token":"zqx-eyJhbGciOi\u0001"}`, wire.CodeBadMessage},
		// Errors never echo what the client sent.
		{`{"type":"zqx-launch"}`, wire.CodeBadMessage},
		{`{"type":"join","version":1,"room":"r","zqx-field":1}`, wire.CodeBadMessage},
		{`{"type":"join","version":1,"room":zqx}`, wire.CodeBadMessage},
	} {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		ws.Write(ctx, websocket.MessageText, []byte(tc.frame))
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.frame, err)
		}
		var m wire.Message
		json.Unmarshal(data, &m)
		if m.Type != wire.TypeError || m.Error.Code != tc.code || !m.Error.Fatal {
			t.Fatalf("%s: got %s, want fatal %s", tc.frame, data, tc.code)
		}
		if strings.Contains(string(data), "zqx") {
			t.Fatalf("%s: the error echoes the client's value: %s", tc.frame, data)
		}
		if _, _, err := ws.Read(ctx); err == nil {
			t.Fatalf("%s: socket still open", tc.frame)
		}
	}

	// Without the subprotocol the socket is refused.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", nil)
	if err == nil {
		if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("socket without subprotocol: %v", err)
		}
	}
}

func TestResume(t *testing.T) {
	n := startNode(t, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	nextEvent(t, alice, wire.TypeParticipantJoined)

	bob.DropSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// A wrong secret is refused.
	bad, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: 1, Room: room,
		Resume: &wire.Resume{Participant: bob.Welcome.Participant, Secret: "wrong-secret"}})
	ws.Write(ctx, websocket.MessageText, bad)
	_, data, _ := ws.Read(ctx)
	if !strings.Contains(string(data), wire.CodeResumeFailed) {
		t.Fatalf("resume with a wrong secret: %s", data)
	}

	ws, _, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	good, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: 1, Room: room,
		Resume: &wire.Resume{Participant: bob.Welcome.Participant, Secret: bob.Welcome.Secret}})
	ws.Write(ctx, websocket.MessageText, good)
	_, data, err = ws.Read(ctx)
	if err != nil {
		t.Fatalf("after resume: %v", err)
	}
	var w wire.Message
	json.Unmarshal(data, &w)
	if w.Type != wire.TypeWelcome || !w.Resumed || w.Participant != bob.Welcome.Participant ||
		len(w.Participants) != 1 || w.Participants[0].Name != "Alice" {
		t.Fatalf("resume welcome = %s", data)
	}
	// The resumed socket is live: chat from Alice arrives on it.
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypeChat, Text: "are you there?"}); err != nil {
		t.Fatal(err)
	}
	var sawChat bool
	for !sawChat {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("after resume: %v", err)
		}
		var m wire.Message
		json.Unmarshal(data, &m)
		if m.Type == wire.TypeChat && m.Text == "are you there?" {
			sawChat = true
		}
	}
	// Alice never saw Bob leave.
	if err := alice.Send(ctx, &wire.Message{Type: wire.TypePing}); err != nil {
		t.Fatal(err)
	}
	if m := nextEvent(t, alice, wire.TypeParticipantLeft, wire.TypePong); m.Type != wire.TypePong {
		t.Fatalf("Alice saw %s during Bob's resume", m.Type)
	}
}

func TestResumeWindowExpires(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) { c.ResumeWindow = 200 * time.Millisecond })
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	nextEvent(t, alice, wire.TypeParticipantJoined)
	bob.DropSocket()
	left := nextEvent(t, alice, wire.TypeParticipantLeft)
	if left.Participant != bob.Welcome.Participant {
		t.Fatalf("participant-left names %q, want Bob", left.Participant)
	}
}

func TestPages(t *testing.T) {
	n := startNode(t, nil)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(n.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, path := range []string{"/", "/BraveOttersChaseSilverComets", "/Caf%C3%A9%20Talk"} {
		resp, body := get(path)
		if resp.StatusCode != 200 || !strings.Contains(body, "<html") {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("GET %s: headers %v", path, resp.Header)
		}
	}
	// Assets carry the pages' security headers.
	for _, path := range []string{"/static/app.js", "/static/style.css"} {
		resp, _ := get(path)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Security-Policy") != web.ContentSecurityPolicy ||
			!strings.Contains(h.Get("Permissions-Policy"), "camera=(self)") ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: %d, headers %v", path, resp.StatusCode, h)
		}
	}
	for _, path := range []string{"/ws/x", "/api", "/static", "/a/b", "/healthz/x"} {
		if resp, _ := get(path); resp.StatusCode == 200 {
			t.Errorf("GET %s: 200, want an error", path)
		}
	}
	if resp, body := get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	resp, body := get("/api/words")
	var w roomname.Lists
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &w) != nil || len(w.Nouns) < 300 || len(w.Common) == 0 {
		t.Fatalf("/api/words: %d, %d nouns", resp.StatusCode, len(w.Nouns))
	}
}
