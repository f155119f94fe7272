package mesh

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"maps"
	"slices"
	"sync"
	"time"
)

// LocalDirectory is a Directory in memory, without raft, for the tests of
// packages that take a Directory. No node runs it: a node alone runs a
// one-voter Node.
type LocalDirectory struct {
	now func() time.Time

	mu    sync.Mutex
	rooms map[RoomKey]*Room // guarded by mu
}

var _ Directory = (*LocalDirectory)(nil)

// NewLocalDirectory returns an empty in-memory directory.
func NewLocalDirectory() *LocalDirectory {
	return &LocalDirectory{now: time.Now, rooms: map[RoomKey]*Room{}}
}

// NewConferenceID returns a random conference ID (128 bits, URL-safe).
func NewConferenceID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Join implements Directory.
func (d *LocalDirectory) Join(ctx context.Context, key RoomKey, bridge string) (Room, bool, error) {
	return d.JoinPinned(ctx, key, bridge, nil)
}

// JoinPinned implements Directory.
func (d *LocalDirectory) JoinPinned(_ context.Context, key RoomKey, bridge string, pin []string) (Room, bool, error) {
	pin, err := NormalizePin(pin)
	if err != nil {
		return Room{}, false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rooms[key]
	if !ok {
		r = &Room{ConferenceID: NewConferenceID(), Created: d.now(), Bridges: map[string]int{}, Pin: pin}
		d.rooms[key] = r
	}
	r.Bridges[bridge]++
	return copyRoom(r), !ok, nil
}

// Leave implements Directory.
func (d *LocalDirectory) Leave(_ context.Context, key RoomKey, bridge string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rooms[key]
	if !ok {
		return ErrRoomNotFound
	}
	if r.Bridges[bridge] <= 1 {
		delete(r.Bridges, bridge)
	} else {
		r.Bridges[bridge]--
	}
	if len(r.Bridges) == 0 {
		delete(d.rooms, key)
	}
	return nil
}

// Lookup implements Directory.
func (d *LocalDirectory) Lookup(_ context.Context, key RoomKey) (Room, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.rooms[key]
	if !ok {
		return Room{}, false, nil
	}
	return copyRoom(r), true, nil
}

// Rooms implements Directory.
func (d *LocalDirectory) Rooms(context.Context) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.rooms), nil
}

func copyRoom(r *Room) Room {
	c := *r
	c.Bridges = maps.Clone(r.Bridges)
	c.PasswordHash = append([]byte(nil), r.PasswordHash...)
	c.Pin = slices.Clone(r.Pin)
	return c
}
