package mesh

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Region pins stored with the room (issue 12, data residency).

func applyCmd(f *fsm, c command) applyResult {
	r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: c.encode()}).(applyResult)
	return r
}

func persist(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	h, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPinnedJoinRoundTrip: cmdJoinPin encodes and decodes; a pin that is
// not in its one canonical form, or out of bounds, is refused.
func TestPinnedJoinRoundTrip(t *testing.T) {
	key := NewRoomKey([]byte("k"), "pinned")
	c := command{typ: cmdJoinPin, reqID: newRequestID(), key: key, bridge: "eu-1", conferenceID: "c", created: 5, pin: []string{"eu-central", "eu-west"}}
	got, err := decodeCommand(c.encode())
	if err != nil || got.typ != cmdJoinPin || !slices.Equal(got.pin, c.pin) || got.bridge != "eu-1" || got.conferenceID != "c" || got.created != 5 || got.key != key {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	long := strings.Repeat("r", MaxRegionName+1)
	var many []string
	for i := range MaxPin + 1 {
		many = append(many, string(rune('a'+i)))
	}
	for name, pin := range map[string][]string{
		"empty pin":   {},
		"unsorted":    {"us", "eu"},
		"duplicate":   {"eu", "eu"},
		"empty name":  {""},
		"long name":   {long},
		"too many":    many,
		"sorted long": {"a", long},
	} {
		bad := c
		bad.pin = pin
		if _, err := decodeCommand(bad.encode()); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if p, err := NormalizePin([]string{"us", "", "eu", "us"}); err != nil || !slices.Equal(p, []string{"eu", "us"}) {
		t.Fatalf("NormalizePin: %v %v", p, err)
	}
	if _, err := NormalizePin(many); err == nil {
		t.Fatal("NormalizePin took more than MaxPin regions")
	}
	if _, err := NormalizePin([]string{long}); err == nil {
		t.Fatal("NormalizePin took a name over MaxRegionName")
	}
}

// TestFSMPinNeverWidens: the pin of the creating join is the room's; later
// joins, pinned otherwise or not at all, leave it; it survives a snapshot
// and a forwarded answer; the next meeting of the name has its own.
func TestFSMPinNeverWidens(t *testing.T) {
	key := NewRoomKey([]byte("k"), "residency")
	join := func(f *fsm, bridge string, pin ...string) applyResult {
		c := command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: bridge, conferenceID: NewConferenceID(), created: 1}
		if len(pin) > 0 {
			c.typ, c.pin = cmdJoinPin, pin
		}
		return applyCmd(f, c)
	}
	f := newFSM()
	if r := join(f, "eu-1", "eu"); !r.created || !slices.Equal(r.room.Pin, []string{"eu"}) {
		t.Fatalf("creating join: %+v", r)
	}
	if r := join(f, "us-1"); r.created || !slices.Equal(r.room.Pin, []string{"eu"}) {
		t.Fatalf("an unpinned join changed the pin: %+v", r)
	}
	if r := join(f, "eu-2", "eu", "us"); !slices.Equal(r.room.Pin, []string{"eu"}) {
		t.Fatalf("a wider pin widened the room's: %+v", r)
	}
	if r := join(f, "ap-1", "ap"); !slices.Equal(r.room.Pin, []string{"eu"}) {
		t.Fatalf("a disjoint pin changed the room's: %+v", r)
	}
	r, _ := f.lookup(key)
	if !r.Allows("eu") || r.Allows("us") || r.Allows("") {
		t.Fatalf("Allows with pin %v", r.Pin)
	}

	// Snapshot and restore.
	b := persist(t, f)
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if r, ok := g.lookup(key); !ok || !slices.Equal(r.Pin, []string{"eu"}) || r.Participants() != 4 {
		t.Fatalf("restored: %+v %v", r, ok)
	}
	if !bytes.Equal(persist(t, g), b) {
		t.Fatal("a restored snapshot encodes differently")
	}

	// A forwarded answer (encodeResult, and a Lookup's appendRoom).
	res, err := decodeResult(encodeResult(applyResult{room: r, created: true}))
	if err != nil || !slices.Equal(res.room.Pin, []string{"eu"}) || !res.created {
		t.Fatalf("forwarded result: %+v %v", res, err)
	}
	rd := reader{b: appendRoom(nil, &r)}
	if got := rd.room(); rd.err != nil || len(rd.b) != 0 || !slices.Equal(got.Pin, r.Pin) {
		t.Fatalf("forwarded room: %+v %v", got, rd.err)
	}

	// The meeting ends; the next one of the name is unpinned.
	for _, b := range []string{"eu-1", "us-1", "eu-2", "ap-1"} {
		applyCmd(f, command{typ: cmdLeave, reqID: newRequestID(), key: key, bridge: b})
	}
	if r := join(f, "us-1"); !r.created || len(r.room.Pin) != 0 {
		t.Fatalf("a later meeting of the name inherited the pin: %+v", r)
	}

	// A pinned room's state flag must not be accepted in a command.
	bad := (&command{typ: cmdSetState, key: key, conferenceID: "c"}).encode()
	bad[len(bad)-2] |= flagPinned
	if _, err := decodeCommand(bad); err == nil {
		t.Fatal("cmdSetState with the pinned flag decoded")
	}
}

// TestOldEncodingsDecode: a log entry and a snapshot written before pins
// existed (testdata, made by the code of commit 0b8898b) still decode,
// unpinned, and an unpinned room encodes as it did then.
func TestOldEncodingsDecode(t *testing.T) {
	key := NewRoomKey([]byte("fixture key"), "fixture room")
	join := fixture(t, "join-v1.hex")
	c, err := decodeCommand(join)
	if err != nil || c.typ != cmdJoin || c.key != key || c.bridge != "eu-1" || c.conferenceID != "conf-v1" || c.pin != nil {
		t.Fatalf("old join: %+v %v", c, err)
	}
	if !bytes.Equal(c.encode(), join) {
		t.Fatal("old join re-encodes differently")
	}
	set := fixture(t, "setstate-v1.hex")
	if c, err := decodeCommand(set); err != nil || c.typ != cmdSetState || !c.state.Locked || string(c.state.PasswordHash) != "hash" {
		t.Fatalf("old set state: %+v %v", c, err)
	}

	snap := fixture(t, "snapshot-v1.hex")
	f := newFSM()
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	r, ok := f.lookup(key)
	if !ok || r.ConferenceID != "conf-v1" || r.Bridges["eu-1"] != 1 || r.Bridges["us-1"] != 1 || !r.Locked ||
		r.Moderation != ModerationToken || string(r.PasswordHash) != "hash" || r.Pin != nil {
		t.Fatalf("old snapshot's room: %+v %v", r, ok)
	}
	if !bytes.Equal(persist(t, f), snap) {
		t.Fatal("an unpinned directory snapshots differently than before pins")
	}
	// The old join, applied again, is a retry the restored window knows.
	if res, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: join}).(applyResult); !res.created || res.room.Participants() != 2 {
		t.Fatalf("old join replayed: %+v", res)
	}
}

// TestClusterPinThroughFollower: a pinned join proposed through a voter
// that does not lead, then looked up through another, keeps its pin.
func TestClusterPinThroughFollower(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	tc.formed(names...)
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "pinned-cluster")
	var via, other string
	for _, n := range names {
		if tc.node(n).raft.State() != raft.Leader {
			if via == "" {
				via = n
			} else {
				other = n
			}
		}
	}
	if via == "" || other == "" {
		t.Skip("no two followers")
	}
	r, created, err := tc.node(via).JoinPinned(ctx, key, via, []string{"eu", "eu", "ch"})
	if err != nil || !created || !slices.Equal(r.Pin, []string{"ch", "eu"}) {
		t.Fatalf("pinned join: %+v %v %v", r, created, err)
	}
	if r, created, err := tc.node(other).Join(ctx, key, other); err != nil || created || !slices.Equal(r.Pin, []string{"ch", "eu"}) {
		t.Fatalf("later join: %+v %v %v", r, created, err)
	}
	r, ok, err := tc.node(other).Lookup(ctx, key)
	if err != nil || !ok || !slices.Equal(r.Pin, []string{"ch", "eu"}) || r.Participants() != 2 {
		t.Fatalf("lookup: %+v %v %v", r, ok, err)
	}
}
