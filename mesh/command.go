package mesh

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Raft commands: one type byte, then the payload. New types are appended
// only. A type with the ignorable bit set may be skipped by an older node;
// any other unknown type panics in Apply, so a node that cannot understand
// the log stops instead of diverging.
type cmdType byte

const (
	cmdJoin       cmdType = 1 // request ID | key | created | conference ID | bridge
	cmdLeave      cmdType = 2 // request ID | key | bridge
	cmdBridgeDead cmdType = 3 // bridge
	cmdSetState   cmdType = 4 // key | conference ID | state
	// cmdDropGhosts removes a bridge from rooms it does not hold (the
	// leader's reconciliation with the bridges' reports): bridge | count(2)
	// | count × (key | conference ID | participants(4)). An entry applies
	// only if the room still has that conference ID and that bridge still
	// that many participants, so a join that landed since is never undone.
	cmdDropGhosts cmdType = 5
	// cmdSetFields is cmdSetState for some fields only: key | conference
	// ID | state | fields(1), RoomState.Fields, never 0. A type of its own
	// (not a trailing byte on cmdSetState) so that a node too old to know
	// it stops rather than applying every field or none.
	cmdSetFields cmdType = 6

	cmdIgnorable cmdType = 0x80
)

// Bounds of every field decoded from the network or the log.
const (
	maxBridgeName   = 128
	maxConferenceID = 64
	maxPasswordHash = 256
	maxBridges      = 1024
	maxGhosts       = 1024 // entries of one cmdDropGhosts
)

var errMalformed = errors.New("malformed command")

// requestID identifies one Join or Leave call (random).
type requestID [16]byte

func newRequestID() requestID {
	var id requestID
	rand.Read(id[:])
	return id
}

// command is a decoded raft command.
type command struct {
	typ cmdType
	// reqID makes Join and Leave idempotent: a proposer that does not know
	// whether its command was applied (the leader was lost in flight)
	// proposes it again, and the FSM applies it once.
	reqID        requestID
	key          RoomKey
	bridge       string
	conferenceID string
	created      int64 // unix nanoseconds, stamped by the proposer
	state        RoomState
	ghosts       []ghost // cmdDropGhosts
}

// ghost is an entry of the directory that its bridge does not hold: the
// bridge is listed in room key (conference ID) with count participants.
type ghost struct {
	key          RoomKey
	conferenceID string
	count        uint32
}

// RoomState is the shared state of a room that moderators change.
type RoomState struct {
	PasswordHash []byte
	Locked       bool
	Moderation   uint8
	E2EERequired bool
	// Fields, in a change (SetState), names the fields it sets; the others
	// keep their value in the directory, so that two moderators changing
	// two fields at once (a password on one node, the lobby on another)
	// both take effect. 0: every field. Not stored.
	Fields StateField
}

// StateField names a field of RoomState, for RoomState.Fields.
type StateField uint8

// The fields of RoomState.
const (
	StatePassword StateField = 1 << iota
	StateLocked
	StateModeration
	StateE2EERequired

	allStateFields = StatePassword | StateLocked | StateModeration | StateE2EERequired
)

func (c *command) encode() []byte {
	b := []byte{byte(c.typ)}
	switch c.typ {
	case cmdJoin:
		b = append(b, c.reqID[:]...)
		b = append(b, c.key[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.created))
		b = appendStr8(b, c.conferenceID)
		b = appendStr8(b, c.bridge)
	case cmdLeave:
		b = append(b, c.reqID[:]...)
		b = append(b, c.key[:]...)
		b = appendStr8(b, c.bridge)
	case cmdBridgeDead:
		b = appendStr8(b, c.bridge)
	case cmdSetState, cmdSetFields:
		b = append(b, c.key[:]...)
		b = appendStr8(b, c.conferenceID)
		b = appendState(b, c.state)
		if c.typ == cmdSetFields {
			b = append(b, byte(c.state.Fields))
		}
	case cmdDropGhosts:
		b = appendStr8(b, c.bridge)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.ghosts)))
		for _, g := range c.ghosts {
			b = append(b, g.key[:]...)
			b = appendStr8(b, g.conferenceID)
			b = binary.BigEndian.AppendUint32(b, g.count)
		}
	default:
		panic(fmt.Sprintf("mesh: encode of unknown command type %d", c.typ))
	}
	return b
}

// decodeCommand parses and validates a command. It returns errUnknownType for
// a type it does not know.
func decodeCommand(b []byte) (command, error) {
	var c command
	if len(b) == 0 {
		return c, errMalformed
	}
	c.typ = cmdType(b[0])
	r := reader{b: b[1:]}
	switch c.typ {
	case cmdJoin:
		copy(c.reqID[:], r.take(len(c.reqID)))
		r.key(&c.key)
		c.created = int64(r.u64())
		c.conferenceID = r.str8(maxConferenceID)
		c.bridge = r.str8(maxBridgeName)
		if c.conferenceID == "" || c.bridge == "" {
			r.err = errMalformed
		}
	case cmdLeave:
		copy(c.reqID[:], r.take(len(c.reqID)))
		r.key(&c.key)
		c.bridge = r.str8(maxBridgeName)
		if c.bridge == "" {
			r.err = errMalformed
		}
	case cmdBridgeDead:
		c.bridge = r.str8(maxBridgeName)
		if c.bridge == "" {
			r.err = errMalformed
		}
	case cmdSetState:
		r.key(&c.key)
		c.conferenceID = r.str8(maxConferenceID)
		c.state = r.state()
	case cmdSetFields:
		r.key(&c.key)
		c.conferenceID = r.str8(maxConferenceID)
		c.state = r.state()
		c.state.Fields = StateField(r.u8())
		if c.state.Fields == 0 || c.state.Fields&^allStateFields != 0 {
			r.err = errMalformed
		}
	case cmdDropGhosts:
		c.bridge = r.str8(maxBridgeName)
		n := int(r.u16())
		if c.bridge == "" || n == 0 || n > maxGhosts {
			r.err = errMalformed
			break
		}
		c.ghosts = make([]ghost, 0, n)
		for range n {
			var g ghost
			r.key(&g.key)
			g.conferenceID = r.str8(maxConferenceID)
			g.count = r.u32()
			if r.err != nil {
				break
			}
			if g.conferenceID == "" || g.count == 0 || g.count > 1<<24 {
				r.err = errMalformed
				break
			}
			c.ghosts = append(c.ghosts, g)
		}
	default:
		return c, errUnknownType
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errMalformed
	}
	return c, r.err
}

var errUnknownType = errors.New("unknown command type")

func appendStr8(b []byte, s string) []byte {
	if len(s) > 255 {
		panic("mesh: string field over 255 bytes")
	}
	return append(append(b, byte(len(s))), s...)
}

func appendState(b []byte, s RoomState) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.PasswordHash)))
	b = append(b, s.PasswordHash...)
	var flags byte
	if s.Locked {
		flags |= 1
	}
	if s.E2EERequired {
		flags |= 2
	}
	return append(b, flags, s.Moderation)
}

// appendRoom encodes a room (snapshots, forwarded answers). Bridges are
// sorted so the encoding is deterministic.
func appendRoom(b []byte, r *Room) []byte {
	b = appendStr8(b, r.ConferenceID)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Created.UnixNano()))
	names := sortedKeys(r.Bridges)
	b = binary.BigEndian.AppendUint16(b, uint16(len(names)))
	for _, n := range names {
		b = appendStr8(b, n)
		b = binary.BigEndian.AppendUint32(b, uint32(r.Bridges[n]))
	}
	return appendState(b, RoomState{PasswordHash: r.PasswordHash, Locked: r.Locked, Moderation: r.Moderation, E2EERequired: r.E2EERequired})
}

// reader decodes bounded fields; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errMalformed
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) key(k *RoomKey) { copy(k[:], r.take(len(k))) }

func (r *reader) str8(limit int) string {
	n := int(r.u8())
	if n > limit {
		r.err = errMalformed
		return ""
	}
	return string(r.take(n))
}

func (r *reader) state() RoomState {
	var s RoomState
	n := int(r.u16())
	if n > maxPasswordHash {
		r.err = errMalformed
		return s
	}
	if n > 0 {
		s.PasswordHash = append([]byte(nil), r.take(n)...)
	}
	flags := r.u8()
	s.Moderation = r.u8()
	if flags&^3 != 0 || s.Moderation > ModerationToken {
		r.err = errMalformed
	}
	s.Locked = flags&1 != 0
	s.E2EERequired = flags&2 != 0
	return s
}

func (r *reader) room() *Room {
	rm := &Room{Bridges: map[string]int{}}
	rm.ConferenceID = r.str8(maxConferenceID)
	rm.Created = time.Unix(0, int64(r.u64())).UTC()
	n := int(r.u16())
	if n > maxBridges {
		r.err = errMalformed
		return rm
	}
	for range n {
		name := r.str8(maxBridgeName)
		c := r.u32()
		if r.err != nil {
			return rm
		}
		if name == "" || c == 0 || c > 1<<24 {
			r.err = errMalformed
			return rm
		}
		if _, dup := rm.Bridges[name]; dup {
			r.err = errMalformed
			return rm
		}
		rm.Bridges[name] = int(c)
	}
	st := r.state()
	rm.PasswordHash, rm.Locked, rm.Moderation, rm.E2EERequired = st.PasswordHash, st.Locked, st.Moderation, st.E2EERequired
	if rm.ConferenceID == "" {
		r.err = errMalformed
	}
	return rm
}
