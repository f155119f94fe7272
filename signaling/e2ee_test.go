package signaling_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestE2EERequiredRefusesClearClients: with Config.E2EERequired
// (--e2ee-required) a join that does not say its client encrypts is
// refused with the fatal e2ee-required error, and takes no place in the
// directory; a join that encrypts is welcomed and told the room requires
// E2EE.
func TestE2EERequiredRefusesClearClients(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) { c.E2EERequired = true })
	room := roomname.New()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The bench client (pion) cannot encrypt: refused.
	_, err := client.Join(ctx, n.URL, room, client.Options{Name: "Clear"})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE2EERequired || !werr.Fatal {
		t.Fatalf("join without e2ee: err = %v, want fatal %s", err, wire.CodeE2EERequired)
	}
	waitFor(t, 10*time.Second, "the refused join gone from the directory", func() bool {
		_, ok, _ := n.Dir.Lookup(ctx, mesh.NewRoomKey(testRoomKey, room))
		return !ok
	})

	// A client that says it encrypts is welcomed.
	ws := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, E2EE: true})
	m, raw := readJSON(ctx, t, ws)
	if m.Type != wire.TypeWelcome || m.E2EERequired == nil || !*m.E2EERequired {
		t.Fatalf("join with e2ee: got %s, want a welcome with e2eeRequired true", raw)
	}

	// A second clear client is refused from the live room too, and the
	// encrypting participant stays.
	ws2 := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws2, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	if m, raw := readJSON(ctx, t, ws2); m.Type != wire.TypeError || m.Error.Code != wire.CodeE2EERequired {
		t.Fatalf("clear join to a live E2EE room: got %s", raw)
	}
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypePing})
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypePong {
		t.Fatalf("the encrypting participant after the refusal: got %s, want pong", raw)
	}
	info, ok, err := n.Dir.Lookup(ctx, mesh.NewRoomKey(testRoomKey, room))
	if err != nil || !ok || info.Participants() != 1 {
		t.Fatalf("directory: %+v %v %v, want the room with one participant", info, ok, err)
	}

	// Without the flag, a room that nobody marked admits clear clients
	// and says it does not require E2EE.
	n2 := startNode(t, nil)
	c, err := client.Join(ctx, n2.URL, room, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := c.Welcome.E2EERequired; r == nil || *r {
		t.Fatalf("welcome of an unmarked room: e2eeRequired = %v, want false", r)
	}
}

// TestSetE2EEValidation: set-e2ee must carry e2eeRequired; the join's e2ee
// field is a boolean.
func TestSetE2EEValidation(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"type":"set-e2ee","e2eeRequired":true}`, true},
		{`{"type":"set-e2ee","e2eeRequired":false}`, true},
		{`{"type":"set-e2ee"}`, false},
		{`{"type":"set-e2ee","e2eeRequired":"yes"}`, false},
		{`{"type":"join","version":1,"room":"r","e2ee":true}`, true},
		{`{"type":"join","version":1,"room":"r","e2ee":1}`, false},
		{`{"type":"chat","text":"hi","e2ee":true}`, false},
		{`{"type":"join","version":1,"room":"r","e2eeRequired":true}`, false},
	} {
		m, err := wire.Decode([]byte(tc.in))
		if err == nil {
			err = m.Validate()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// readE2EEType reads from ws until a message of type typ arrives.
func readE2EEType(ctx context.Context, t *testing.T, ws *websocket.Conn, typ wire.Type) (*wire.Message, string) {
	t.Helper()
	for {
		m, raw := readJSON(ctx, t, ws)
		if m.Type == typ {
			return m, raw
		}
		if m.Type == wire.TypeError && typ != wire.TypeError {
			t.Fatalf("waiting for %s: got %s", typ, raw)
		}
	}
}

// TestSetE2EERequired: a moderator's set-e2ee stores the requirement in
// the directory and tells the room; a clear client is then refused, and
// admitted again once it is turned off; it cannot be turned on while a
// participant does not encrypt.
func TestSetE2EERequired(t *testing.T) {
	n, sd := startModNode(t, nil, nil)
	room := roomname.New()
	key := mesh.NewRoomKey(testRoomKey, room)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	joinWS := func(e2ee bool) (*websocket.Conn, *wire.Message) {
		ws := dialWS(ctx, t, n)
		writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, E2EE: e2ee})
		m, raw := readJSON(ctx, t, ws)
		if m.Type != wire.TypeWelcome {
			t.Fatalf("join (e2ee %v): got %s", e2ee, raw)
		}
		return ws, m
	}
	alice, aw := joinWS(true)
	if aw.E2EERequired == nil || *aw.E2EERequired {
		t.Fatalf("first welcome: e2eeRequired %v, want false", aw.E2EERequired)
	}
	bob, _ := joinWS(true)

	on, off := true, false
	writeJSON(ctx, t, alice, &wire.Message{Type: wire.TypeSetE2EE, E2EERequired: &on})
	for _, ws := range []*websocket.Conn{alice, bob} {
		m, raw := readE2EEType(ctx, t, ws, wire.TypeSecurity)
		if m.E2EERequired == nil || !*m.E2EERequired || m.Participant != aw.Participant {
			t.Fatalf("security after set-e2ee true: %s", raw)
		}
	}
	if info, _, _ := sd.Lookup(ctx, key); !info.E2EERequired {
		t.Fatalf("directory: E2EERequired false after set-e2ee true")
	}
	_, err := client.Join(ctx, n.URL, room, client.Options{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE2EERequired {
		t.Fatalf("clear join after set-e2ee true: %v, want %s", err, wire.CodeE2EERequired)
	}
	_, cw := joinWS(true)
	if cw.E2EERequired == nil || !*cw.E2EERequired {
		t.Fatalf("welcome in a marked room: e2eeRequired %v, want true", cw.E2EERequired)
	}

	writeJSON(ctx, t, bob, &wire.Message{Type: wire.TypeSetE2EE, E2EERequired: &off})
	if m, raw := readE2EEType(ctx, t, alice, wire.TypeSecurity); m.E2EERequired == nil || *m.E2EERequired {
		t.Fatalf("security after set-e2ee false: %s", raw)
	}
	clear, err := client.Join(ctx, n.URL, room, client.Options{})
	if err != nil {
		t.Fatalf("clear join after set-e2ee false: %v", err)
	}
	defer clear.Close()

	// A clear participant is here: turning it on is refused, not fatal.
	writeJSON(ctx, t, alice, &wire.Message{Type: wire.TypeSetE2EE, E2EERequired: &on})
	m, raw := readE2EEType(ctx, t, alice, wire.TypeError)
	if m.Error.Code != wire.CodeNotAllowed || m.Error.Fatal {
		t.Fatalf("set-e2ee with a clear participant present: %s, want a non-fatal %s", raw, wire.CodeNotAllowed)
	}
	if info, _, _ := sd.Lookup(ctx, key); info.E2EERequired {
		t.Fatalf("directory: E2EERequired set although a participant does not encrypt")
	}
	writeJSON(ctx, t, alice, &wire.Message{Type: wire.TypePing})
	readE2EEType(ctx, t, alice, wire.TypePong)
}

// TestE2EEKeyRelay: an e2ee-key blob goes to the one participant it names,
// from the server with the sender's ID, and to nobody else; a blob for a
// participant not in the meeting is dropped; a malformed blob closes only
// its sender's session.
func TestE2EEKeyRelay(t *testing.T) {
	n := startNode(t, nil)
	room := roomname.New()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	joinWS := func() (*websocket.Conn, string) {
		ws := dialWS(ctx, t, n)
		writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, E2EE: true})
		m, raw := readJSON(ctx, t, ws)
		if m.Type != wire.TypeWelcome {
			t.Fatalf("join: %s", raw)
		}
		return ws, m.Participant
	}
	a, aID := joinWS()
	b, bID := joinWS()
	c, _ := joinWS()

	writeJSON(ctx, t, a, &wire.Message{Type: wire.TypeE2EEKey, Participant: "nobody-here", Blob: "eyJ0IjoiaCJ9"})
	writeJSON(ctx, t, a, &wire.Message{Type: wire.TypeE2EEKey, Participant: bID, Blob: "eyJ0IjoiaCJ9"})
	m, raw := readE2EEType(ctx, t, b, wire.TypeE2EEKey)
	if m.Participant != aID || m.Blob != "eyJ0IjoiaCJ9" {
		t.Fatalf("Bob got %s, want Alice's blob", raw)
	}
	// Carol got nothing of it: her next message is the pong she asks for.
	writeJSON(ctx, t, c, &wire.Message{Type: wire.TypePing})
	for {
		m, raw := readJSON(ctx, t, c)
		if m.Type == wire.TypeE2EEKey {
			t.Fatalf("Carol received a blob meant for Bob: %s", raw)
		}
		if m.Type == wire.TypePong {
			break
		}
	}

	// A blob that is not base64url, or too long, ends only its sender's session.
	for _, blob := range []string{"not base64!", strings.Repeat("A", wire.MaxE2EEKeyBytes+1)} {
		ws, _ := joinWS()
		writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeE2EEKey, Participant: bID, Blob: blob})
		if m, raw := readE2EEType(ctx, t, ws, wire.TypeError); m.Error.Code != wire.CodeBadMessage || !m.Error.Fatal {
			t.Fatalf("bad blob: %s", raw)
		}
	}
	writeJSON(ctx, t, b, &wire.Message{Type: wire.TypePing})
	readE2EEType(ctx, t, b, wire.TypePong)
}
