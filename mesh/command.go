package mesh

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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
	// cmdJoinPin is cmdJoin for a join under a region pin: cmdJoin's
	// fields | pin (count(1) | count × region(str8), sorted, distinct, at
	// least one). The room it creates keeps the pin (Room.Pin); a join to
	// a room that exists changes nothing of its pin. A type of its own so
	// that a node too old to know it stops rather than create the room
	// unpinned; an unpinned join is still a cmdJoin, which every node
	// reads.
	cmdJoinPin cmdType = 7

	cmdIgnorable cmdType = 0x80
)

// Bounds of every field decoded from the network or the log.
const (
	maxBridgeName   = 128
	maxConferenceID = 64
	maxPasswordHash = 256
	maxBridges      = 1024
	maxGhosts       = 1024 // entries of one cmdDropGhosts
	// MaxPin bounds the regions of a room's pin (signaling's token claim
	// and --region-pin have the same bound).
	MaxPin = 16
	// MaxRegionName bounds one region name of a pin.
	MaxRegionName = 64
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
	ghosts       []ghost  // cmdDropGhosts
	pin          []string // cmdJoinPin: sorted, distinct, not empty
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
	case cmdJoin, cmdJoinPin:
		b = append(b, c.reqID[:]...)
		b = append(b, c.key[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.created))
		b = appendStr8(b, c.conferenceID)
		b = appendStr8(b, c.bridge)
		if c.typ == cmdJoinPin {
			b = appendPin(b, c.pin)
		}
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
	case cmdJoin, cmdJoinPin:
		copy(c.reqID[:], r.take(len(c.reqID)))
		r.key(&c.key)
		c.created = int64(r.u64())
		c.conferenceID = r.str8(maxConferenceID)
		c.bridge = r.str8(maxBridgeName)
		if c.conferenceID == "" || c.bridge == "" {
			r.err = errMalformed
		}
		if c.typ == cmdJoinPin {
			c.pin = r.pin()
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

// State flags. flagPinned appears only in a room's encoding (appendRoom):
// the room's pin follows its state. A room without a pin encodes as it did
// before pins existed, so older snapshots and answers read the same.
const (
	flagLocked       byte = 1
	flagE2EERequired byte = 2
	flagPinned       byte = 4
	stateFlags            = flagLocked | flagE2EERequired
)

func appendState(b []byte, s RoomState) []byte { return appendStateFlags(b, s, 0) }

func appendStateFlags(b []byte, s RoomState, flags byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.PasswordHash)))
	b = append(b, s.PasswordHash...)
	if s.Locked {
		flags |= flagLocked
	}
	if s.E2EERequired {
		flags |= flagE2EERequired
	}
	return append(b, flags, s.Moderation)
}

// appendPin encodes a pin: count(1) | count × region(str8). pin is
// normalized (NormalizePin) and not empty.
func appendPin(b []byte, pin []string) []byte {
	b = append(b, byte(len(pin)))
	for _, r := range pin {
		b = appendStr8(b, r)
	}
	return b
}

// NormalizePin returns pin sorted, without duplicates or empty names, or
// an error when it has more than MaxPin regions or a name longer than
// MaxRegionName. Nil for no pin.
func NormalizePin(pin []string) ([]string, error) {
	var out []string
	for _, r := range pin {
		if len(r) > MaxRegionName {
			return nil, errors.New("mesh: region name over 64 bytes in a pin")
		}
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) > MaxPin {
		return nil, fmt.Errorf("mesh: pin of more than %d regions", MaxPin)
	}
	slices.Sort(out)
	return out, nil
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
	st := RoomState{PasswordHash: r.PasswordHash, Locked: r.Locked, Moderation: r.Moderation, E2EERequired: r.E2EERequired}
	if len(r.Pin) == 0 {
		return appendState(b, st)
	}
	return appendPin(appendStateFlags(b, st, flagPinned), r.Pin)
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
	s, _ := r.stateFlags(stateFlags)
	return s
}

// stateFlags reads a RoomState whose flags may only have the bits in
// allowed set, and returns the flags too.
func (r *reader) stateFlags(allowed byte) (RoomState, byte) {
	var s RoomState
	n := int(r.u16())
	if n > maxPasswordHash {
		r.err = errMalformed
		return s, 0
	}
	if n > 0 {
		s.PasswordHash = append([]byte(nil), r.take(n)...)
	}
	flags := r.u8()
	s.Moderation = r.u8()
	if flags&^allowed != 0 || s.Moderation > ModerationToken {
		r.err = errMalformed
	}
	s.Locked = flags&flagLocked != 0
	s.E2EERequired = flags&flagE2EERequired != 0
	return s, flags
}

// pin reads a pin as appendPin writes it: 1 to MaxPin regions, each 1 to
// MaxRegionName bytes, in strictly increasing order (so one pin has one
// encoding).
func (r *reader) pin() []string {
	n := int(r.u8())
	if n == 0 || n > MaxPin {
		r.err = errMalformed
		return nil
	}
	pin := make([]string, 0, n)
	for range n {
		s := r.str8(MaxRegionName)
		if r.err != nil {
			return nil
		}
		if s == "" || (len(pin) > 0 && s <= pin[len(pin)-1]) {
			r.err = errMalformed
			return nil
		}
		pin = append(pin, s)
	}
	return pin
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
	st, flags := r.stateFlags(stateFlags | flagPinned)
	rm.PasswordHash, rm.Locked, rm.Moderation, rm.E2EERequired = st.PasswordHash, st.Locked, st.Moderation, st.E2EERequired
	if flags&flagPinned != 0 {
		rm.Pin = r.pin()
	}
	if rm.ConferenceID == "" {
		r.err = errMalformed
	}
	return rm
}
