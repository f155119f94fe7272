package mesh

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// RoomKey identifies a room in the directory: HMAC-SHA256(room key, room
// name). The directory never sees a room name.
type RoomKey [32]byte

// NewRoomKey derives the directory key of a room name.
func NewRoomKey(hmacKey []byte, name string) RoomKey {
	h := hmac.New(sha256.New, hmacKey)
	h.Write([]byte(name))
	var k RoomKey
	h.Sum(k[:0])
	return k
}

// LogID is the name logs give a room: a short hash of the key under a
// per-process salt, so log lines of one node can be correlated but not
// matched against a guessed name or across restarts.
func (k RoomKey) LogID(salt []byte) string {
	h := hmac.New(sha256.New, salt)
	h.Write(k[:])
	var sum [32]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:6])
}

// Moderator policies.
const (
	ModerationSoft  uint8 = 0 // everyone may mute and kick
	ModerationToken uint8 = 1 // only holders of a moderator token
)

// Room is the directory's entry of one live room. It is a copy: changing it
// changes nothing.
type Room struct {
	// ConferenceID is random, made when the room was created. A later room
	// of the same name gets another.
	ConferenceID string
	// Created is stamped by the node that proposed the creation.
	Created time.Time
	// Bridges maps a node name to the number of participants it holds.
	Bridges map[string]int
	// PasswordHash is an argon2id hash, nil when the room has no password.
	PasswordHash []byte
	Locked       bool
	Moderation   uint8
	E2EERequired bool
	// Pin lists the only regions whose bridges may hold the room's
	// participants (data residency), sorted; empty: any region. It is
	// the pin of the join that created the room and never changes.
	Pin []string
}

// Allows reports whether a bridge of region may hold a participant of the
// room: the room is not pinned, or region is in its pin.
func (r *Room) Allows(region string) bool {
	return len(r.Pin) == 0 || slices.Contains(r.Pin, region)
}

// Participants is the total over all bridges.
func (r *Room) Participants() int {
	n := 0
	for _, c := range r.Bridges {
		n += c
	}
	return n
}

// Directory answers which bridges hold a room and keeps each room's shared
// state. Implementations are safe for concurrent use. Every call is
// linearizable: an answer never comes from a deposed leader.
//
// Node implements it for every node, a dev-mode node alone included (a
// one-voter cluster). LocalDirectory implements it in memory for the tests
// of packages that take a Directory (signaling, cmd), where no cluster runs.
type Directory interface {
	// Join creates the room if absent (create-if-absent is atomic across the
	// cluster: two first joins end in one room) and counts one more
	// participant on bridge. It returns the room after the change and
	// whether this call created it. It returns ErrUnavailable when the
	// directory cannot reach a quorum.
	Join(ctx context.Context, key RoomKey, bridge string) (Room, bool, error)
	// JoinPinned is Join for a join placed under a region pin (the
	// regions it may use; see NormalizePin for its bounds): when this
	// call creates the room, the room keeps pin as Room.Pin for its life;
	// when the room exists, its pin stays as it is, whatever pin says.
	// The directory does not know regions: the caller checks, with the
	// room returned, that its bridge's region is allowed (Room.Allows),
	// and leaves again when it is not. An empty pin is Join.
	JoinPinned(ctx context.Context, key RoomKey, bridge string, pin []string) (Room, bool, error)
	// Leave counts one participant fewer on bridge. When no bridge holds a
	// participant any more the room is deleted with all its state.
	Leave(ctx context.Context, key RoomKey, bridge string) error
	// Lookup returns the room, or false when it does not exist.
	Lookup(ctx context.Context, key RoomKey) (Room, bool, error)
	// Rooms returns the number of live rooms (never their keys or names).
	Rooms(ctx context.Context) (int, error)
}

// LocalReader is implemented by a directory that keeps a local copy of
// the rooms (a raft voter's FSM). LookupLocal reads that copy without
// asking the leader: it works while the cluster has no leader, and its
// answer may be stale (commands committed but not yet applied here are
// missing). Callers use it only where a stale entry is acceptable and the
// linearizable Lookup or Join follows.
type LocalReader interface {
	// LookupLocal returns this node's copy of the room, or false when
	// this node keeps no copy or the copy has no such room.
	LookupLocal(key RoomKey) (Room, bool)
}

// LookupLocal implements LocalReader: the voter's own FSM, read without
// a leader. A node that is not a voter keeps no copy and says false.
func (n *Node) LookupLocal(key RoomKey) (Room, bool) {
	if n.raft == nil {
		return Room{}, false
	}
	return n.fsm.lookup(key)
}
