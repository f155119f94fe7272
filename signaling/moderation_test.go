package signaling_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// stateDir is a LocalDirectory that also changes a room's shared state
// (SetState), as mesh.Node does: the state lives as long as the room.
type stateDir struct {
	*mesh.LocalDirectory
	mu    sync.Mutex
	state map[mesh.RoomKey]mesh.RoomState
}

func (d *stateDir) with(key mesh.RoomKey, r mesh.Room) mesh.Room {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state[key]
	r.PasswordHash, r.Locked, r.Moderation, r.E2EERequired = st.PasswordHash, st.Locked, st.Moderation, st.E2EERequired
	return r
}

func (d *stateDir) Join(ctx context.Context, key mesh.RoomKey, bridge string) (mesh.Room, bool, error) {
	r, created, err := d.LocalDirectory.Join(ctx, key, bridge)
	if created {
		d.mu.Lock()
		delete(d.state, key)
		d.mu.Unlock()
	}
	return d.with(key, r), created, err
}

func (d *stateDir) Leave(ctx context.Context, key mesh.RoomKey, bridge string) error {
	err := d.LocalDirectory.Leave(ctx, key, bridge)
	if _, ok, _ := d.LocalDirectory.Lookup(ctx, key); !ok {
		d.mu.Lock()
		delete(d.state, key)
		d.mu.Unlock()
	}
	return err
}

func (d *stateDir) Lookup(ctx context.Context, key mesh.RoomKey) (mesh.Room, bool, error) {
	r, ok, err := d.LocalDirectory.Lookup(ctx, key)
	return d.with(key, r), ok, err
}

func (d *stateDir) SetState(ctx context.Context, key mesh.RoomKey, conferenceID string, st mesh.RoomState) (mesh.Room, error) {
	r, ok, _ := d.LocalDirectory.Lookup(ctx, key)
	if !ok || r.ConferenceID != conferenceID {
		return mesh.Room{}, mesh.ErrRoomNotFound
	}
	d.mu.Lock()
	d.state[key] = st
	d.mu.Unlock()
	return d.with(key, r), nil
}

// locked reports whether the directory holds the room with its lobby on.
func (d *stateDir) locked(room string) bool {
	r, ok, _ := d.Lookup(context.Background(), mesh.NewRoomKey(testRoomKey, room))
	return ok && r.Locked
}

// startModNode is startNode with a directory that keeps room state and
// lenient per-source limits.
func startModNode(t *testing.T, log *slog.Logger, mod func(*signaling.Config)) (*node, *stateDir) {
	t.Helper()
	var sd *stateDir
	if log == nil {
		log = testLogger(t)
	}
	n := startNodeLog(t, log, func(c *signaling.Config) {
		sd = &stateDir{LocalDirectory: c.Directory.(*mesh.LocalDirectory), state: map[mesh.RoomKey]mesh.RoomState{}}
		c.Directory = sd
		lenientSource(c)
		if mod != nil {
			mod(c)
		}
	})
	return n, sd
}

func send(t *testing.T, c *client.Client, m *wire.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// moderationEvent waits for c's next moderation event and checks it.
func moderationEvent(t *testing.T, c *client.Client, action, by, target string) {
	t.Helper()
	m := nextEvent(t, c, wire.TypeModeration)
	if m.Action != action || m.By != by || m.Participant != target {
		t.Fatalf("moderation = {%s by %s on %s}, want {%s by %s on %s}", m.Action, m.By, m.Participant, action, by, target)
	}
}

// fatalError waits for c's session to end with a fatal error and returns
// its code.
func fatalError(t *testing.T, c *client.Client) string {
	t.Helper()
	m := nextEvent(t, c, wire.TypeError)
	if !m.Error.Fatal {
		t.Fatalf("error %+v is not fatal", m.Error)
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("session not closed after a fatal error")
	}
	return m.Error.Code
}

// TestSoftModeration: under the default soft moderation any participant
// mutes another, asks it to stop its camera and removes it; everyone sees
// who did what; the removed participant's session ends, its TURN session
// is reported ended, the others see it leave, and its resume secret no
// longer works.
func TestSoftModeration(t *testing.T) {
	sessions := newSessionLog()
	n, _ := startModNode(t, nil, sessions.configure)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	bobSession := sessions.last()
	carol := join(t, n, room, client.Options{Name: "Carol"})
	aID, bID, cID := alice.Welcome.Participant, bob.Welcome.Participant, carol.Welcome.Participant
	if !alice.Welcome.Moderator || !bob.Welcome.Moderator {
		t.Fatal("under soft moderation a welcome must say its participant may moderate")
	}

	send(t, alice, &wire.Message{Type: wire.TypeMuteParticipant, Participant: bID})
	for _, c := range []*client.Client{alice, bob, carol} {
		moderationEvent(t, c, wire.ActionMute, aID, bID)
	}
	send(t, carol, &wire.Message{Type: wire.TypeStopCamera, Participant: aID})
	for _, c := range []*client.Client{alice, bob, carol} {
		moderationEvent(t, c, wire.ActionStopCamera, cID, aID)
	}
	// A participant that is not in the meeting: nothing happens.
	send(t, alice, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: "nobody-here"})
	send(t, alice, &wire.Message{Type: wire.TypePing})
	if m := nextEvent(t, alice, wire.TypeModeration, wire.TypePong, wire.TypeError); m.Type != wire.TypePong {
		t.Fatalf("removing an unknown participant answered %+v", m)
	}

	send(t, carol, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: bID})
	// Bob is told who removed him, then his session ends.
	moderationEvent(t, bob, wire.ActionRemove, cID, bID)
	if code := fatalError(t, bob); code != wire.CodeRemoved {
		t.Fatalf("removed participant's error = %s, want %s", code, wire.CodeRemoved)
	}
	for _, c := range []*client.Client{alice, carol} {
		moderationEvent(t, c, wire.ActionRemove, cID, bID)
		if m := nextEvent(t, c, wire.TypeParticipantLeft); m.Participant != bID {
			t.Fatalf("participant-left %s, want Bob", m.Participant)
		}
	}
	waitFor(t, 20*time.Second, "the removed participant's TURN session ended", func() bool {
		_, ended := sessions.counts(bobSession)
		return ended == 1
	})

	// The removed participant's secret no longer resumes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room,
		Resume: &wire.Resume{Participant: bID, Secret: bob.Welcome.Secret}})
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeError || m.Error.Code != wire.CodeResumeFailed {
		t.Fatalf("resume of a removed participant answered %s", raw)
	}
	// Alice and Carol are untouched.
	send(t, alice, &wire.Message{Type: wire.TypeChat, Text: "still here"})
	if m := nextEvent(t, carol, wire.TypeChat); m.Text != "still here" {
		t.Fatalf("chat after removal: %+v", m)
	}
}

// TestEndMeetingForAll: end-meeting removes every participant and every
// waiting person, and the room leaves the directory.
func TestEndMeetingForAll(t *testing.T) {
	n, sd := startModNode(t, nil, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	send(t, alice, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(true)})
	for _, c := range []*client.Client{alice, bob} {
		moderationEvent(t, c, wire.ActionLobbyOn, alice.Welcome.Participant, "")
	}
	if !sd.locked(room) {
		t.Fatal("lobby not on in the directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: "Waiting Walter"})
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeWaiting {
		t.Fatalf("join with the lobby on answered %s", raw)
	}

	send(t, bob, &wire.Message{Type: wire.TypeEndMeeting})
	for _, c := range []*client.Client{alice, bob} {
		moderationEvent(t, c, wire.ActionEnd, bob.Welcome.Participant, "")
		if code := fatalError(t, c); code != wire.CodeRemoved {
			t.Fatalf("error = %s, want %s", code, wire.CodeRemoved)
		}
	}
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeError || m.Error.Code != wire.CodeRefused {
		t.Fatalf("the waiting person got %s, want the generic refusal", raw)
	}
	waitFor(t, 20*time.Second, "room deleted from the directory", func() bool {
		r, _ := n.Dir.Rooms(ctx)
		return r == 0
	})
}

// TestStrongModerationNotAllowed: with strong moderation a participant
// without a moderator token may not mute, remove, end or lock; it gets a
// non-fatal not-allowed error and nobody sees anything.
func TestStrongModerationNotAllowed(t *testing.T) {
	n, sd := startModNode(t, nil, func(c *signaling.Config) { c.StrongModeration = true })
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	bID := bob.Welcome.Participant
	for _, m := range []*wire.Message{
		{Type: wire.TypeMuteParticipant, Participant: bID},
		{Type: wire.TypeRemoveParticipant, Participant: bID},
		{Type: wire.TypeEndMeeting},
		{Type: wire.TypeSetLobby, Lobby: ptrTo(true)},
	} {
		send(t, alice, m)
		e := nextEvent(t, alice, wire.TypeError, wire.TypeModeration)
		if e.Type != wire.TypeError || e.Error.Code != wire.CodeNotAllowed || e.Error.Fatal {
			t.Fatalf("%s by a non-moderator answered %+v", m.Type, e)
		}
	}
	if sd.locked(room) {
		t.Fatal("a non-moderator turned the lobby on")
	}
	send(t, alice, &wire.Message{Type: wire.TypeChat, Text: "no harm done"})
	if m := nextEvent(t, bob, wire.TypeChat, wire.TypeModeration, wire.TypeError); m.Type != wire.TypeChat {
		t.Fatalf("Bob got %+v before the chat", m)
	}
}

// TestLobby: with the lobby on, a joiner waits and learns nothing (its
// first message after waiting is its welcome, though chat, mute changes
// and joins happened meanwhile); moderators see it with its name; admitted
// it enters like any participant; denied it gets the generic refusal;
// turning the lobby off lets whoever waits in.
func TestLobby(t *testing.T) {
	n, sd := startModNode(t, nil, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	aID := alice.Welcome.Participant
	send(t, alice, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(true)})
	moderationEvent(t, alice, wire.ActionLobbyOn, aID, "")
	if m := nextEvent(t, alice, wire.TypeLobby); m.Lobby == nil || !*m.Lobby || len(m.Participants) != 0 {
		t.Fatalf("lobby = %+v", m)
	}
	if !sd.locked(room) {
		t.Fatal("lobby not on in the directory")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waiter := func(name string) *websocket.Conn {
		ws := dialWS(ctx, t, n)
		writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: name})
		if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeWaiting || raw != `{"type":"waiting"}` {
			t.Fatalf("join with the lobby on answered %s", raw)
		}
		return ws
	}
	lobbyWith := func(name string) string {
		t.Helper()
		for {
			m := nextEvent(t, alice, wire.TypeLobby)
			for _, p := range m.Participants {
				if p.Name == name {
					return p.ID
				}
			}
		}
	}
	w := waiter("Wanda")
	wID := lobbyWith("Wanda")

	// The meeting goes on while Wanda waits.
	send(t, alice, &wire.Message{Type: wire.TypeChat, Text: "before Wanda"})
	send(t, alice, &wire.Message{Type: wire.TypeState, Muted: &wire.Muted{Audio: true}})
	send(t, alice, &wire.Message{Type: wire.TypeAdmit, Participant: wID})
	moderationEvent(t, alice, wire.ActionAdmit, aID, wID)
	m, raw := readJSON(ctx, t, w)
	if m.Type != wire.TypeWelcome || m.Participant != wID || m.E2EERequired == nil || *m.E2EERequired || !m.Moderator {
		t.Fatalf("Wanda's first message after waiting: %s", raw)
	}
	if len(m.Participants) == 0 || m.Participants[0].ID != aID || m.Participants[0].Name != "Alice" {
		t.Fatalf("Wanda's welcome lists %+v", m.Participants)
	}
	if m, raw := readJSON(ctx, t, w); m.Type != wire.TypeChat || m.Text != "before Wanda" {
		t.Fatalf("Wanda's history: %s", raw)
	}
	if m := nextEvent(t, alice, wire.TypeParticipantJoined); m.Participants[0].ID != wID || m.Participants[0].Name != "Wanda" {
		t.Fatalf("Alice sees %+v join, want Wanda", m.Participants)
	}

	// Denied: the generic refusal, and nothing else.
	v := waiter("Victor")
	vID := lobbyWith("Victor")
	send(t, alice, &wire.Message{Type: wire.TypeDeny, Participant: vID})
	if m, raw := readJSON(ctx, t, v); m.Type != wire.TypeError || m.Error.Code != wire.CodeRefused || !m.Error.Fatal {
		t.Fatalf("denied: %s", raw)
	}

	// Lobby off: whoever waits comes in.
	u := waiter("Ursula")
	lobbyWith("Ursula")
	send(t, alice, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(false)})
	if m, raw := readJSON(ctx, t, u); m.Type != wire.TypeWelcome {
		t.Fatalf("Ursula after lobby off: %s", raw)
	}
	waitFor(t, 20*time.Second, "lobby off in the directory", func() bool { return !sd.locked(room) })
}

// TestModerationStateDiesWithMeeting: after the last participant leaves, a
// new meeting of the same name has no lobby and no speaker stats.
func TestModerationStateDiesWithMeeting(t *testing.T) {
	n, sd := startModNode(t, nil, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	send(t, alice, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(true)})
	moderationEvent(t, alice, wire.ActionLobbyOn, alice.Welcome.Participant, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice.Leave(ctx)
	waitFor(t, 20*time.Second, "room deleted", func() bool { r, _ := n.Dir.Rooms(ctx); return r == 0 })
	if sd.locked(room) {
		t.Fatal("the lobby outlived the meeting")
	}
	bob := join(t, n, room, client.Options{Name: "Bob"}) // a welcome, not waiting
	send(t, bob, &wire.Message{Type: wire.TypeSpeakerStats})
	if m := nextEvent(t, bob, wire.TypeSpeakerStats, wire.TypeLobby); m.Type != wire.TypeSpeakerStats || len(m.Stats) != 0 {
		t.Fatalf("new meeting: %+v", m)
	}
}

// TestModerationLogsNoNames is the canary sweep of invariant 3 over
// moderation: lobby on, a waiting person admitted and one denied, mute,
// stop camera, remove and end meeting, at debug level, leave no room
// name, display name or chat text in the logs.
func TestModerationLogsNoNames(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, _ := startModNode(t, log, nil)
	const (
		room   = "Canary Room Xylophone Quartz"
		alice  = "Canary Alicename"
		waiter = "Canary Waitername"
		denied = "Canary Deniedname"
		text   = "canary chat zumbrota"
	)
	a := join(t, n, room, client.Options{Name: alice})
	b := join(t, n, room, client.Options{Name: "Canary Bobname"})
	aID := a.Welcome.Participant
	send(t, a, &wire.Message{Type: wire.TypeChat, Text: text})
	send(t, a, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(true)})
	moderationEvent(t, a, wire.ActionLobbyOn, aID, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := map[string]string{}
	for _, name := range []string{waiter, denied} {
		ws := dialWS(ctx, t, n)
		writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: name})
		readJSON(ctx, t, ws)
		for ids[name] == "" {
			for _, p := range nextEvent(t, a, wire.TypeLobby).Participants {
				if p.Name == name {
					ids[name] = p.ID
				}
			}
		}
	}
	send(t, a, &wire.Message{Type: wire.TypeAdmit, Participant: ids[waiter]})
	send(t, a, &wire.Message{Type: wire.TypeDeny, Participant: ids[denied]})
	send(t, a, &wire.Message{Type: wire.TypeMuteParticipant, Participant: b.Welcome.Participant})
	send(t, a, &wire.Message{Type: wire.TypeStopCamera, Participant: b.Welcome.Participant})
	send(t, a, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: b.Welcome.Participant})
	fatalError(t, b)
	send(t, a, &wire.Message{Type: wire.TypeEndMeeting})
	fatalError(t, a)
	waitFor(t, 20*time.Second, "room deleted", func() bool { r, _ := n.Dir.Rooms(ctx); return r == 0 })

	out := logs.String()
	for _, want := range []string{`"action":"remove"`, `"action":"lobby-on"`, "participant waits in the lobby", "participant admitted"} {
		if !strings.Contains(out, want) {
			t.Fatalf("logs lack %q; the sweep would prove nothing:\n%s", want, out)
		}
	}
	for _, canary := range []string{room, "Canary", "Xylophone", "Alicename", "Waitername", "Deniedname", "Bobname", "zumbrota"} {
		if strings.Contains(out, canary) {
			t.Errorf("logs contain %q", canary)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestRemovedMediaStops: when a participant is removed, its PeerConnection
// is closed by the bridge and its tracks stop reaching the others (real
// pion clients over loopback).
func TestRemovedMediaStops(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	n, _ := startModNode(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	alice := startPublisher(ctx, t, n, room, 1)
	aID := alice.c.Welcome.Participant
	bob := &publisher{tag: 2, got: map[string]*received{}, keyframe: map[uint32]bool{}}
	bob.c = join(t, n, room, client.Options{Name: "Bob", OnTrack: bob.onTrack})
	carol := join(t, n, room, client.Options{Name: "Carol"})
	waitFor(t, 30*time.Second, "Bob receives Alice's audio", func() bool {
		got, intact := bob.count("audio", 1)
		return got >= 20 && intact == got
	})

	removedAt := time.Now()
	send(t, carol, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: aID})
	unpublished := 0
	for unpublished < 2 {
		m := nextEvent(t, bob.c, wire.TypeTrackUnpublished)
		if m.Track.Participant == aID {
			unpublished++
		}
	}
	unpublishedAfter := time.Since(removedAt)
	waitFor(t, 30*time.Second, "Alice's PeerConnection closed by the bridge", func() bool {
		s := alice.c.Pub().ConnectionState()
		return s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateDisconnected
	})
	// A figure for docs and reports, not a check of speed.
	t.Logf("removal: tracks unpublished for Bob after %v, Alice's PeerConnection %s after %v",
		unpublishedAfter, alice.c.Pub().ConnectionState(), time.Since(removedAt))
	// Alice's client still sends; none of it reaches Bob any more.
	var last int
	waitFor(t, 30*time.Second, "Alice's audio stops reaching Bob", func() bool {
		now, _ := bob.count("audio", 1)
		stable := now == last
		last = now
		time.Sleep(500 * time.Millisecond)
		return stable
	})
	time.Sleep(2 * time.Second)
	if now, _ := bob.count("audio", 1); now != last {
		t.Fatalf("Bob received %d more packets of the removed participant", now-last)
	}
}

// TestStrongModerationWithTokens: under --auth jwt only a moderator
// token's holder moderates. A guest's moderation (mute, admit) is refused
// with not-allowed; the moderator turns the lobby on, and then guests
// wait while a second moderator walks in; only moderators see the lobby;
// the moderator admits a guest and removes another.
func TestStrongModerationWithTokens(t *testing.T) {
	a, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: testJWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startModNode(t, nil, func(c *signaling.Config) { c.Auth, c.StrongModeration = a, true })
	room := roomname.New()
	token := func(moderator bool) string {
		tok, err := signaling.MintToken(testJWTSecret, claims(room, func(c *signaling.Claims) { c.Moderator = moderator }))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mod := join(t, n, room, client.Options{Name: "Mod", Token: token(true)})
	guest := join(t, n, room, client.Options{Name: "Guest", Token: token(false)})
	mID, gID := mod.Welcome.Participant, guest.Welcome.Participant
	if !mod.Welcome.Moderator || guest.Welcome.Moderator {
		t.Fatalf("welcome's moderator: moderator %v, guest %v", mod.Welcome.Moderator, guest.Welcome.Moderator)
	}

	send(t, guest, &wire.Message{Type: wire.TypeMuteParticipant, Participant: mID})
	if e := nextEvent(t, guest, wire.TypeError, wire.TypeModeration); e.Type != wire.TypeError || e.Error.Code != wire.CodeNotAllowed {
		t.Fatalf("a guest's mute answered %+v", e)
	}
	send(t, mod, &wire.Message{Type: wire.TypeSetLobby, Lobby: ptrTo(true)})
	for _, c := range []*client.Client{mod, guest} {
		moderationEvent(t, c, wire.ActionLobbyOn, mID, "")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := dialWS(ctx, t, n)
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: "Late Guest", Token: token(false)})
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeWaiting {
		t.Fatalf("a guest's join with the lobby on answered %s", raw)
	}
	var wID string
	for wID == "" {
		for _, p := range nextEvent(t, mod, wire.TypeLobby).Participants {
			if p.Name == "Late Guest" {
				wID = p.ID
			}
		}
	}
	// A second moderator is not held in the lobby.
	mod2 := join(t, n, room, client.Options{Name: "Mod Two", Token: token(true)})
	if len(mod2.Welcome.Participants) != 2 {
		t.Fatalf("the second moderator's welcome lists %+v", mod2.Welcome.Participants)
	}
	send(t, guest, &wire.Message{Type: wire.TypeAdmit, Participant: wID})
	if e := nextEvent(t, guest, wire.TypeError, wire.TypeLobby); e.Type != wire.TypeError || e.Error.Code != wire.CodeNotAllowed {
		t.Fatalf("a guest's admit answered %+v (guests must not see the lobby)", e)
	}
	send(t, mod, &wire.Message{Type: wire.TypeAdmit, Participant: wID})
	if m, raw := readJSON(ctx, t, ws); m.Type != wire.TypeWelcome {
		t.Fatalf("admitted guest got %s", raw)
	}
	// The guest sees the admitted one join, and never saw the lobby (a
	// lobby message would have come before its error above).
	if m := nextEvent(t, guest, wire.TypeParticipantJoined, wire.TypeLobby, wire.TypeModeration); m.Type != wire.TypeParticipantJoined || m.Participants[0].ID != wID {
		t.Fatalf("guest got %+v", m)
	}
	send(t, mod, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: gID})
	if code := fatalError(t, guest); code != wire.CodeRemoved {
		t.Fatalf("removed guest's error: %s", code)
	}
}

// TestModerationBudget: a participant flooding the meeting with moderation
// actions is held to the room's budget: past it the action is refused with
// the non-fatal moderation-limited and nobody is told; the session goes on.
func TestModerationBudget(t *testing.T) {
	n, _ := startModNode(t, nil, nil)
	room := roomname.New()
	alice := join(t, n, room, client.Options{Name: "Alice"})
	bob := join(t, n, room, client.Options{Name: "Bob"})
	for range 30 {
		send(t, alice, &wire.Message{Type: wire.TypeMuteParticipant, Participant: bob.Welcome.Participant})
	}
	e := nextEvent(t, alice, wire.TypeError)
	if e.Error.Code != wire.CodeModerationLimited || e.Error.Fatal {
		t.Fatalf("past the budget: %+v", e.Error)
	}
	send(t, alice, &wire.Message{Type: wire.TypeChat, Text: "still here"})
	if m := nextEvent(t, alice, wire.TypeChat); m.Text != "still here" {
		t.Fatalf("after the budget: %+v", m)
	}
	got := 0
	for {
		m := nextEvent(t, bob, wire.TypeModeration, wire.TypeChat)
		if m.Type == wire.TypeChat {
			break
		}
		got++
	}
	if got >= 30 || got < 20 {
		t.Fatalf("Bob was told of %d of 30 mutes; the budget lets about 20 through", got)
	}
}
