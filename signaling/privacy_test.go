package signaling_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestLogsNameNoSecret checks invariant 3 at the most verbose level: a whole
// meeting, including a bad message and a resume, leaves no room name,
// display name, chat text, secret or participant address in the logs.
func TestLogsNameNoSecret(t *testing.T) {
	var logs syncbuf.Buffer
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

// iceCredentials returns the ice-ufrag and ice-pwd values of an SDP.
func iceCredentials(sdp string) []string {
	var out []string
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		for _, p := range []string{"a=ice-ufrag:", "a=ice-pwd:"} {
			if v, ok := strings.CutPrefix(line, p); ok && v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// TestDebugLogsNoClientTextOrCredentials: at debug level, refused offers,
// answers and candidates are logged without the client's text, and no ICE
// username fragment or password, the client's or the bridge's, reaches a
// log line.
func TestDebugLogsNoClientTextOrCredentials(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := startNodeLog(t, log, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := "credentials room"

	audio, err := client.NewAudio("a", "s")
	if err != nil {
		t.Fatal(err)
	}
	alice := join(t, n, room, client.Options{Name: "Alice", Tracks: []webrtc.TrackLocal{audio}})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	waitFor(t, 15*time.Second, "Alice's publisher PeerConnection connected", func() bool {
		return alice.Pub().ConnectionState() == webrtc.PeerConnectionStateConnected
	})

	// Mallory sends what the bridge refuses, each carrying canaries.
	mallory := join(t, n, room, client.Options{Name: "Mallory"})
	const canary = "zqxCanary"
	for _, m := range []*wire.Message{
		// pion's SDP parser quotes the bad value: "invalid port value `…`".
		{Type: wire.TypeOffer, PC: wire.PCPub, SDP: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:" + canary + "uf\r\na=ice-pwd:" + canary +
			"pwd0123456789abcdef\r\nm=audio " + canary + " UDP/TLS/RTP/SAVPF 111\r\n"},
		{Type: wire.TypeAnswer, PC: wire.PCSub, SDP: "v=0\r\na=ice-pwd:" + canary + "ans\r\n"},
		{Type: wire.TypeCandidate, PC: wire.PCPub, Candidate: &wire.Candidate{Candidate: "candidate:" + canary + " 1 udp 1 x" + canary + " 9 typ host ufrag " + canary}},
		{Type: wire.TypeCandidate, PC: wire.PCSub, Candidate: &wire.Candidate{Candidate: "candidate:1 1 udp 2130706431 198.51.100.7 9 typ host ufrag " + canary + "uf2"}},
	} {
		if err := mallory.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := mallory.Send(ctx, &wire.Message{Type: wire.TypePing}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, mallory, wire.TypePong)

	var creds []string
	for _, c := range []*client.Client{alice, bob, mallory} {
		for _, pc := range []*webrtc.PeerConnection{c.Pub(), c.Sub()} {
			if pc == nil {
				continue
			}
			if d := pc.LocalDescription(); d != nil {
				creds = append(creds, iceCredentials(d.SDP)...)
			}
			if d := pc.RemoteDescription(); d != nil {
				creds = append(creds, iceCredentials(d.SDP)...)
			}
		}
	}
	if len(creds) < 4 {
		t.Fatalf("found only %d ICE credentials to look for", len(creds))
	}
	for _, c := range []*client.Client{alice, bob, mallory} {
		c.Leave(ctx)
	}
	waitFor(t, 10*time.Second, "room deleted", func() bool { r, _ := n.Dir.Rooms(ctx); return r == 0 })

	out := logs.String()
	for _, want := range []string{"offer refused", "answer refused", "candidate refused"} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %q; the test would prove nothing:\n%s", want, out)
		}
	}
	for _, secret := range append(creds, canary, "198.51.100.7") {
		if strings.Contains(out, secret) {
			i := strings.Index(out, secret)
			t.Errorf("logs contain %q: …%s…", secret, out[max(0, i-200):min(len(out), i+100)])
		}
	}
}
