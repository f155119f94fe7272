package mesh

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// fsm is the room directory's raft state machine: live rooms by RoomKey.
// Apply is deterministic: times and conference IDs come in the command.
type fsm struct {
	mu      sync.RWMutex
	rooms   map[RoomKey]*Room // guarded by mu
	bridges map[string]int    // bridge → rooms it holds; guarded by mu
	// seen holds the request IDs of the last maxSeen Joins and Leaves, with
	// whether the Join created its room, in the order applied (seenOrder),
	// so a re-proposed command is applied once. It holds no room key.
	seen      map[requestID]bool // guarded by mu
	seenOrder []requestID        // ring of maxSeen; guarded by mu
	seenNext  int                // guarded by mu
}

// maxSeen bounds the de-duplication window: at thousands of calls per
// second it covers more than any retry (ApplyTimeout).
const maxSeen = 1 << 15

// markSeenLocked records id, evicting the oldest beyond maxSeen.
func (f *fsm) markSeenLocked(id requestID, created bool) {
	if len(f.seenOrder) < maxSeen {
		f.seenOrder = append(f.seenOrder, id)
	} else {
		delete(f.seen, f.seenOrder[f.seenNext])
		f.seenOrder[f.seenNext] = id
		f.seenNext = (f.seenNext + 1) % maxSeen
	}
	f.seen[id] = created
}

var _ raft.FSM = (*fsm)(nil)

func newFSM() *fsm {
	return &fsm{rooms: map[RoomKey]*Room{}, bridges: map[string]int{}, seen: map[requestID]bool{}}
}

// applyResult is what Apply returns to the proposer.
type applyResult struct {
	room    Room
	created bool
	err     error
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := decodeCommand(l.Data)
	if err == errUnknownType {
		if c.typ&cmdIgnorable != 0 {
			return nil
		}
		panic(fmt.Sprintf("mesh: unknown raft command type %d at index %d: upgrade this node", c.typ, l.Index))
	}
	if err != nil {
		return applyResult{err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.typ == cmdJoin || c.typ == cmdJoinPin || c.typ == cmdLeave {
		if created, dup := f.seen[c.reqID]; dup {
			if c.typ == cmdLeave {
				return applyResult{}
			}
			r, ok := f.rooms[c.key]
			if !ok {
				return applyResult{err: ErrUnavailable} // applied, and the room ended since
			}
			return applyResult{room: copyRoom(r), created: created}
		}
	}
	switch c.typ {
	case cmdJoin, cmdJoinPin:
		r, ok := f.rooms[c.key]
		if !ok {
			// The pin in force at creation stays the room's for its
			// life: a later join never widens (or changes) it.
			r = &Room{ConferenceID: c.conferenceID, Created: time.Unix(0, c.created).UTC(), Bridges: map[string]int{}, Pin: c.pin}
			f.rooms[c.key] = r
		}
		if r.Bridges[c.bridge] == 0 {
			f.bridges[c.bridge]++
		}
		r.Bridges[c.bridge]++
		f.markSeenLocked(c.reqID, !ok)
		return applyResult{room: copyRoom(r), created: !ok}
	case cmdLeave:
		r, ok := f.rooms[c.key]
		if !ok || r.Bridges[c.bridge] == 0 {
			return applyResult{err: ErrRoomNotFound}
		}
		r.Bridges[c.bridge]--
		if r.Bridges[c.bridge] == 0 {
			f.dropBridgeLocked(c.key, r, c.bridge)
		}
		f.markSeenLocked(c.reqID, false)
		return applyResult{}
	case cmdBridgeDead:
		for k, r := range f.rooms {
			if r.Bridges[c.bridge] > 0 {
				f.dropBridgeLocked(k, r, c.bridge)
			}
		}
		return applyResult{}
	case cmdDropGhosts:
		for _, g := range c.ghosts {
			r, ok := f.rooms[g.key]
			if ok && r.ConferenceID == g.conferenceID && r.Bridges[c.bridge] == int(g.count) {
				f.dropBridgeLocked(g.key, r, c.bridge)
			}
		}
		return applyResult{}
	case cmdSetState, cmdSetFields:
		r, ok := f.rooms[c.key]
		if !ok || r.ConferenceID != c.conferenceID {
			return applyResult{err: ErrRoomNotFound}
		}
		set := c.state.Fields
		if set == 0 {
			set = allStateFields
		}
		if set&StatePassword != 0 {
			r.PasswordHash = c.state.PasswordHash
		}
		if set&StateLocked != 0 {
			r.Locked = c.state.Locked
		}
		if set&StateModeration != 0 {
			r.Moderation = c.state.Moderation
		}
		if set&StateE2EERequired != 0 {
			r.E2EERequired = c.state.E2EERequired
		}
		return applyResult{room: copyRoom(r)}
	}
	panic("mesh: unreachable")
}

// dropBridgeLocked removes bridge from room k and deletes the room, with all
// its state, when no bridge holds it any more.
func (f *fsm) dropBridgeLocked(k RoomKey, r *Room, bridge string) {
	delete(r.Bridges, bridge)
	if f.bridges[bridge]--; f.bridges[bridge] <= 0 {
		delete(f.bridges, bridge)
	}
	if len(r.Bridges) == 0 {
		delete(f.rooms, k)
	}
}

func (f *fsm) lookup(k RoomKey) (Room, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.rooms[k]
	if !ok {
		return Room{}, false
	}
	return copyRoom(r), true
}

func (f *fsm) count() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.rooms)
}

// bridgeNames returns the bridges that hold at least one room.
func (f *fsm) bridgeNames() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedKeys(f.bridges)
}

// roomsOf returns the rooms that list bridge, as ghosts to be (each with
// the conference ID and the bridge's count), in key order.
func (f *fsm) roomsOf(bridge string) []ghost {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.bridges[bridge] == 0 {
		return nil
	}
	var out []ghost
	for k, r := range f.rooms {
		if c := r.Bridges[bridge]; c > 0 {
			out = append(out, ghost{key: k, conferenceID: r.ConferenceID, count: uint32(c)})
		}
	}
	slices.SortFunc(out, func(a, b ghost) int { return bytes.Compare(a.key[:], b.key[:]) })
	return out
}

// holds reports whether any room refers to k (tests).
func (f *fsm) holds(k RoomKey) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.rooms[k]
	return ok
}

// Snapshot implements raft.FSM: it copies the rooms under the lock and
// encodes them later in Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := &fsmSnapshot{rooms: make([]snapRoom, 0, len(f.rooms))}
	for k, r := range f.rooms {
		s.rooms = append(s.rooms, snapRoom{k, copyRoom(r)})
	}
	// The de-duplication window, oldest first.
	n := len(f.seenOrder)
	s.seen = make([]seenEntry, 0, n)
	for i := range n {
		id := f.seenOrder[(f.seenNext+i)%n]
		s.seen = append(s.seen, seenEntry{id, f.seen[id]})
	}
	return s, nil
}

const snapshotVersion = 1

// maxSnapshotRooms bounds Restore.
const maxSnapshotRooms = 1 << 22

// Restore implements raft.FSM: it decodes into fresh state and swaps it in.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<30))
	if err != nil {
		return err
	}
	rooms, seen, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	fresh := newFSM()
	for _, e := range seen {
		fresh.markSeenLocked(e.id, e.created)
	}
	bridges := map[string]int{}
	for _, r := range rooms {
		for n := range r.Bridges {
			bridges[n]++
		}
	}
	f.mu.Lock()
	f.rooms, f.bridges = rooms, bridges
	f.seen, f.seenOrder, f.seenNext = fresh.seen, fresh.seenOrder, fresh.seenNext
	f.mu.Unlock()
	return nil
}

func decodeSnapshot(b []byte) (map[RoomKey]*Room, []seenEntry, error) {
	r := reader{b: b}
	if v := r.u8(); v != snapshotVersion {
		return nil, nil, fmt.Errorf("snapshot version %d: %w", v, errMalformed)
	}
	n := r.u32()
	if n > maxSnapshotRooms {
		return nil, nil, errMalformed
	}
	rooms := make(map[RoomKey]*Room, min(n, 1<<16))
	for range n {
		var k RoomKey
		r.key(&k)
		rm := r.room()
		if r.err != nil {
			return nil, nil, r.err
		}
		if _, dup := rooms[k]; dup || len(rm.Bridges) == 0 {
			return nil, nil, errMalformed
		}
		rooms[k] = rm
	}
	ns := r.u32()
	if ns > maxSeen {
		return nil, nil, errMalformed
	}
	seen := make([]seenEntry, 0, min(ns, 1024))
	ids := map[requestID]bool{}
	for range ns {
		var e seenEntry
		copy(e.id[:], r.take(len(e.id)))
		flag := r.u8()
		if r.err != nil || flag > 1 || ids[e.id] {
			return nil, nil, errMalformed
		}
		ids[e.id] = true
		e.created = flag == 1
		seen = append(seen, e)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, nil, errMalformed
	}
	return rooms, seen, nil
}

type seenEntry struct {
	id      requestID
	created bool
}

type snapRoom struct {
	key  RoomKey
	room Room
}

type fsmSnapshot struct {
	rooms []snapRoom
	seen  []seenEntry
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	slices.SortFunc(s.rooms, func(a, b snapRoom) int { return bytes.Compare(a.key[:], b.key[:]) })
	b := []byte{snapshotVersion}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.rooms)))
	for i := range s.rooms {
		b = append(b, s.rooms[i].key[:]...)
		b = appendRoom(b, &s.rooms[i].room)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.seen)))
	for _, e := range s.seen {
		b = append(b, e.id[:]...)
		if e.created {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

func sortedKeys[V any](m map[string]V) []string {
	return slices.SortedFunc(maps.Keys(m), cmp.Compare[string])
}
