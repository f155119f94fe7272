package signaling

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
)

func TestPasswordHashVerify(t *testing.T) {
	ctx := context.Background()
	h1, err := hashPassword(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashPassword(ctx, "correct horse")
	if bytes.Equal(h1, h2) {
		t.Fatal("two hashes of one password are equal: the salt is not fresh")
	}
	if want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", argonMemory, argonTime, argonThreads); !strings.HasPrefix(string(h1), want) {
		t.Fatalf("hash %q does not start with %q", h1, want)
	}
	if bytes.Contains(h1, []byte("correct horse")) {
		t.Fatal("the hash contains the password")
	}
	if len(h1) > 256 {
		t.Fatalf("hash is %d bytes, more than the directory keeps", len(h1))
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct hors", false}, {"", false}, {"Correct horse", false}} {
		ok, err := verifyPassword(ctx, h1, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("verify %q: %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
	// Malformed or out-of-bounds stored hashes are refused, not run.
	salt := "AAAAAAAAAAAAAAAAAAAAAA"
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=99,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=9999999,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$" + key,
	} {
		if ok, err := verifyPassword(ctx, []byte(bad), ""); ok || err == nil {
			t.Errorf("malformed hash %q accepted: %v %v", bad, ok, err)
		}
	}
}

func TestGuessBackoff(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newGuesses()
	g.now = func() time.Time { return now }
	src := netip.MustParsePrefix("192.0.2.1/32")
	room := mesh.RoomKey{1}

	// A source has guessFreeSource failures free, then waits 1 s, 2 s, 4 s...
	for i := range guessFreeSource {
		if !g.allow(src, room) {
			t.Fatalf("attempt %d refused inside the free failures", i)
		}
		g.fail(src, room)
	}
	if g.allow(src, room) {
		t.Fatal("attempt allowed right after the free failures")
	}
	now = now.Add(guessBase)
	if !g.allow(src, room) {
		t.Fatal("attempt refused after the first backoff")
	}
	g.fail(src, room)
	now = now.Add(guessBase)
	if g.allow(src, room) {
		t.Fatal("the backoff did not double")
	}
	now = now.Add(guessBase)
	if !g.allow(src, room) {
		t.Fatal("attempt refused after the doubled backoff")
	}
	// An attempt inside the backoff counts against the source, not the room.
	g.failSource(src)
	if g.allow(src, room) || g.bySource[src].fails != 7 || g.byRoom[room].fails != 6 {
		t.Fatalf("failSource: source %d fails, room %d", g.bySource[src].fails, g.byRoom[room].fails)
	}
	now = now.Add(4 * guessBase)
	// Another source may still try this room (the room has its own, larger
	// budget), and this source is capped, not locked out forever.
	if !g.allow(netip.MustParsePrefix("198.51.100.0/32"), room) {
		t.Fatal("another source refused on the room")
	}
	for range 40 {
		g.fail(src, room)
	}
	now = now.Add(guessCapSource)
	if !g.allow(src, mesh.RoomKey{2}) {
		t.Fatal("the source backoff is not capped")
	}

	// A room has guessFreeRoom failures free, counted over all sources.
	g2 := newGuesses()
	g2.now = func() time.Time { return now }
	for i := range guessFreeRoom {
		s := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
		if !g2.allow(s, room) {
			t.Fatalf("room attempt %d refused inside the free failures", i)
		}
		g2.fail(s, room)
	}
	fresh := netip.MustParsePrefix("203.0.113.7/32")
	if g2.allow(fresh, room) {
		t.Fatal("a fresh source may guess on a room past its free failures")
	}
	if !g2.allow(fresh, mesh.RoomKey{3}) {
		t.Fatal("a room's backoff hit another room")
	}
	now = now.Add(guessCapRoom)
	if !g2.allow(fresh, room) {
		t.Fatal("the room backoff is not capped")
	}

	// Counts are forgotten guessForget after the last failure.
	now = now.Add(guessForget + time.Second)
	g2.sweep()
	g.sweep()
	if len(g2.byRoom) != 0 || len(g2.bySource) != 0 || len(g.bySource) != 0 {
		t.Fatalf("counts kept after %v: %d rooms, %d sources", guessForget, len(g2.byRoom), len(g2.bySource))
	}
}

// TestGuessTableBounded: a full table fails closed for new keys instead of
// growing.
func TestGuessTableBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newGuesses()
	g.now = func() time.Time { return now }
	room := mesh.RoomKey{9}
	for i := range guessMaxEntries {
		g.bySource[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)] = &guessCount{fails: 1, last: now}
	}
	newcomer := netip.MustParsePrefix("203.0.113.9/32")
	if g.allow(newcomer, room) {
		t.Fatal("a new source allowed on a full table")
	}
	g.fail(newcomer, room)
	if len(g.bySource) > guessMaxEntries {
		t.Fatalf("table grew to %d", len(g.bySource))
	}
	now = now.Add(guessForget + time.Second)
	if !g.allow(newcomer, room) {
		t.Fatal("a new source refused once the table's entries expired")
	}
}
