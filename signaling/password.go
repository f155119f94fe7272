package signaling

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Room passwords. The directory keeps only an argon2id hash in PHC string
// form ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>", salt and hash
// unpadded base64), made with a fresh random salt each time a password is
// set; it dies with the room's directory entry. docs/security.md gives the
// parameters and why.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on a stored hash's parameters: the directory is trusted, but a
// hash is never allowed to cost more than this to check.
const (
	maxArgonTime    = 10
	maxArgonMemory  = 256 * 1024
	maxArgonThreads = 16
)

// hashSlots bounds the argon2 derivations running at once on this node;
// a join that needs one waits for a slot (each holds argonMemory).
var hashSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// argonKey derives argon2id(password, salt) under a hash slot.
func argonKey(ctx context.Context, password string, salt []byte, t, m uint32, p uint8, n uint32) ([]byte, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), salt, t, m, p, n), nil
}

// hashPassword returns the PHC string of password under a new salt.
func hashPassword(ctx context.Context, password string) ([]byte, error) {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key, err := argonKey(ctx, password, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	if err != nil {
		return nil, err
	}
	b64 := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errBadHash: a stored hash this node cannot read.
var errBadHash = errors.New("signaling: malformed password hash")

// verifyPassword checks password against a PHC string of hashPassword, in
// constant time over the derived keys. It costs one argon2 derivation
// whatever the answer (a malformed hash costs the dummy's).
func verifyPassword(ctx context.Context, phc []byte, password string) (bool, error) {
	salt, want, t, m, p, err := parseHash(string(phc))
	if err != nil {
		dummyHash(ctx)
		return false, err
	}
	got, err := argonKey(ctx, password, salt, t, m, p, uint32(len(want)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummySalt is the salt of dummyHash; its parameters are those of every
// hash this node makes, so a dummy costs what a real check costs.
var dummySalt = make([]byte, argonSaltLen)

// dummyHash spends one argon2 derivation, so that a refusal that checked
// no password takes as long as one that did.
func dummyHash(ctx context.Context) {
	argonKey(ctx, "", dummySalt, argonTime, argonMemory, argonThreads, argonKeyLen)
}

func parseHash(s string) (salt, key []byte, t, m uint32, p uint8, err error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, nil, 0, 0, 0, errBadHash
	}
	var tt, mm, pp uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, perr := strconv.ParseUint(v, 10, 32)
		if !ok || perr != nil {
			return nil, nil, 0, 0, 0, errBadHash
		}
		switch k {
		case "m":
			mm = n
		case "t":
			tt = n
		case "p":
			pp = n
		default:
			return nil, nil, 0, 0, 0, errBadHash
		}
	}
	if tt < 1 || tt > maxArgonTime || mm < 8 || mm > maxArgonMemory || pp < 1 || pp > maxArgonThreads {
		return nil, nil, 0, 0, 0, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(salt) > 64 || len(key) < 16 || len(key) > 64 {
		return nil, nil, 0, 0, 0, errBadHash
	}
	return salt, key, uint32(tt), uint32(mm), uint8(pp), nil
}

// Password guessing limits. Failed password checks are counted per source
// (an IPv4 address or IPv6 /64, limits.go) and per room; past the free
// failures each further attempt waits out a backoff that doubles with
// every failure, up to the cap. A join inside a backoff is refused without
// checking the password (the answer is the same generic refusal) and
// counts as a failure of its source (failSource). The counts are forgotten
// guessForget after the last failure.
const (
	guessFreeSource = 5
	guessCapSource  = 5 * time.Minute
	guessFreeRoom   = 20
	guessCapRoom    = time.Minute
	guessBase       = time.Second
	guessForget     = 15 * time.Minute
	// guessMaxEntries bounds each table. When one is full of live entries
	// the node refuses password attempts from new sources or to new rooms
	// until entries expire: it fails closed.
	guessMaxEntries = 100_000
)

type guessCount struct {
	fails int
	last  time.Time // of the last failure
}

// until is when the next attempt is allowed.
func (g *guessCount) until(free int, cap time.Duration) time.Time {
	if g.fails < free {
		return time.Time{}
	}
	d := guessBase << min(g.fails-free, 20)
	if d > cap || d <= 0 {
		d = cap
	}
	return g.last.Add(d)
}

// guesses is the node's password guessing state. Memory only; keyed by
// source prefix and room key (an HMAC of the name), never the name.
type guesses struct {
	now func() time.Time

	mu       sync.Mutex
	bySource map[netip.Prefix]*guessCount
	byRoom   map[mesh.RoomKey]*guessCount
	limited  uint64 // attempts refused inside a backoff or on a full table
}

func newGuesses() *guesses {
	return &guesses{now: time.Now, bySource: map[netip.Prefix]*guessCount{}, byRoom: map[mesh.RoomKey]*guessCount{}}
}

// allow reports whether src may try a password on room now.
func (g *guesses) allow(src netip.Prefix, room mesh.RoomKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s, r := g.bySource[src], g.byRoom[room]
	if (s == nil && len(g.bySource) >= guessMaxEntries && !g.sweepLocked(now)) ||
		(r == nil && len(g.byRoom) >= guessMaxEntries && !g.sweepLocked(now)) {
		g.limited++
		return false
	}
	if s != nil && now.Before(s.until(guessFreeSource, guessCapSource)) ||
		r != nil && now.Before(r.until(guessFreeRoom, guessCapRoom)) {
		g.limited++
		return false
	}
	return true
}

// fail counts a wrong password from src on room.
func (g *guesses) fail(src netip.Prefix, room mesh.RoomKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for _, c := range []*guessCount{entry(g.bySource, src), entry(g.byRoom, room)} {
		if c != nil {
			c.fails++
			c.last = now
		}
	}
}

// entry returns m's entry for k, made if absent and there is room.
func entry[K comparable](m map[K]*guessCount, k K) *guessCount {
	c := m[k]
	if c == nil && len(m) < guessMaxEntries {
		c = &guessCount{}
		m[k] = c
	}
	return c
}

// failSource counts an attempt from src refused inside a backoff as a
// failure of src only: a source that keeps hammering waits ever longer,
// while a room's wait still ends at its cap (hammering a room must not
// keep it closed to everyone).
func (g *guesses) failSource(src netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := entry(g.bySource, src); c != nil {
		c.fails++
		c.last = g.now()
	}
}

// sweep forgets counts whose last failure is older than guessForget.
func (g *guesses) sweep() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(g.now())
}

// sweepLocked sweeps and reports whether both tables have room.
func (g *guesses) sweepLocked(now time.Time) bool {
	for k, c := range g.bySource {
		if now.Sub(c.last) > guessForget {
			delete(g.bySource, k)
		}
	}
	for k, c := range g.byRoom {
		if now.Sub(c.last) > guessForget {
			delete(g.byRoom, k)
		}
	}
	return len(g.bySource) < guessMaxEntries && len(g.byRoom) < guessMaxEntries
}

// setPassword handles set-password: a moderator sets (or, with an empty
// password, removes) the room's password in the directory, for every
// bridge of the meeting. The room's participants on this node are told
// that it changed, never the password.
func (s *Server) setPassword(p *participant, password string) error {
	if !p.mayModerate() {
		p.send(&wire.Message{Type: wire.TypeError, Error: &wire.Error{Code: wire.CodeNotAllowed, Message: "only moderators may set the password"}})
		return nil
	}
	var phc []byte
	if password != "" {
		var err error
		if phc, err = hashPassword(context.Background(), password); err != nil {
			return errInternal
		}
	}
	r := p.room
	if _, ok, err := s.setRoomState(p, "set password", errPasswordUnavailable, func(st *mesh.RoomState) {
		st.PasswordHash, st.Fields = phc, mesh.StatePassword
	}); !ok {
		return err
	}
	set := phc != nil
	p.log.Info("room password changed", "set", set)
	sec := secPasswordRemoved
	if set {
		sec = secPasswordSet
	}
	r.sendSecurity(sec, p)
	return nil
}

// errPasswordUnavailable: the directory could not store the change.
var errPasswordUnavailable = &wire.Error{Code: wire.CodeUnavailable, Message: "directory unavailable: the password was not changed"}
