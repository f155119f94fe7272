package signaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
