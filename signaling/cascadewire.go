package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/meshmeet/meshmeet/relay"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Cascade messages: what signaling on one bridge of a meeting tells the
// meeting's other bridges, as the data of a relay room message (at most
// relay.MaxRoomMessage bytes, over the relay's mutually authenticated QUIC
// links). One JSON object, decoded strictly (no unknown field, no trailing
// data, valid UTF-8, every count and string bounded). A message never
// carries the room's name: the relay names the meeting by its conference
// ID.
//
//	{"v":1,"t":"roster","g":7,"l":true,"p":[{"id":..,"name":..,"muted":{..}}]}
//	    the sender's local participants, full, in chunks of one generation
//	    g; on the last chunk (l) the receiver drops the sender's
//	    participants not listed in generation g
//	{"v":1,"t":"upsert","p":[..]}   participants joined or changed (mute)
//	{"v":1,"t":"left","id":".."}    a participant left
//	{"v":1,"t":"chat","c":[{"id":..,"participant":..,"name":..,"text":..,"ts":..}]}
//	    chat messages, new or the sender's history for a late joiner;
//	    each ID is shown once per room
//	{"v":1,"t":"mod","a":"remove","by":"..","id":".."}
//	    a moderation action of one of the sender's participants (by):
//	    mute, stop-camera, remove, admit or deny participant id; end,
//	    lobby-on or lobby-off without id (moderation.go, lobby.go)
//	{"v":1,"t":"lobby","p":[{"id":..,"name":..,"muted":{..}}]}
//	    the sender's waiting people, the whole list (empty: none)
//	{"v":1,"t":"e2ee","id":".."}
//	    the sender's participant id encrypts its media (e2ee.go); sent
//	    after its upsert and after the roster. Participants in roster,
//	    upsert and lobby never carry wire.Participant.E2EE, so that nodes
//	    from before it still decode them
//	{"v":1,"t":"key","by":"..","id":"..","k":".."}
//	    an e2ee-key blob (opaque, wire.ValidE2EEKeyBlob) from the
//	    sender's participant by to participant id; the node that holds id
//	    delivers it (e2ee.go)
//
// Protocol flow: node C creates its side of a room and attaches it with
// the directory's other bridges A and B; the relay sends RoomAttach; A and
// B call back RoomAttached and send C a roster and their chat history; C
// sends its roster when its link comes up (LinkUp). From then on each
// node sends upsert, left and chat deltas, and mod and lobby messages. A
// version other than cascadeVersion is refused and counted: a node on the
// next version must send this one to nodes that speak only it. Types are
// only ever added within a version; a node that does not know a type
// refuses and counts that message alone (a node from before mod and lobby
// neither shows nor carries out the other bridges' moderation: its own
// participants are removed only by actions taken on it).
const (
	cascadeVersion = 1

	cascadeRoster = "roster"
	cascadeUpsert = "upsert"
	cascadeLeft   = "left"
	cascadeChatT  = "chat"
	cascadeMod    = "mod"
	cascadeLobby  = "lobby"
	cascadeKey    = "key"
	cascadeE2EE   = "e2ee"

	// maxCascadeParticipants bounds the participants of one message (a
	// roster goes in chunks): 100 of the largest fit in a room message.
	maxCascadeParticipants = 100
	// maxCascadeChats bounds the chat messages of one message.
	maxCascadeChats = 50
	// maxRemoteParticipants bounds the participants a room takes from the
	// other bridges.
	maxRemoteParticipants = 10000
)

// cascadeMsg is one cascade message.
type cascadeMsg struct {
	V    int                `json:"v"`
	T    string             `json:"t"`
	Gen  uint64             `json:"g,omitempty"`
	Last bool               `json:"l,omitempty"`
	P    []wire.Participant `json:"p,omitempty"`
	ID   string             `json:"id,omitempty"`
	C    []cascadeChat      `json:"c,omitempty"`
	A    string             `json:"a,omitempty"`  // mod: the action (wire.Action*)
	By   string             `json:"by,omitempty"` // mod: the participant who acted; key: the sender
	K    string             `json:"k,omitempty"`  // key: the e2ee-key blob
}

// cascadeModActions are the actions of a mod message, and whether each
// names a participant.
var cascadeModActions = map[string]bool{
	wire.ActionMute: true, wire.ActionStopCamera: true, wire.ActionRemove: true,
	wire.ActionAdmit: true, wire.ActionDeny: true,
	wire.ActionEnd: false, wire.ActionLobbyOn: false, wire.ActionLobbyOff: false,
	secPasswordSet: false, secPasswordRemoved: false, secE2EEOn: false, secE2EEOff: false,
}

// Security changes a mod message carries to the meeting's other bridges,
// whose participants get the security event the actor's bridge sent its
// own (never a moderation event): the directory holds the state itself.
const (
	secPasswordSet     = "sec-password-set"
	secPasswordRemoved = "sec-password-removed"
	secE2EEOn          = "sec-e2ee-on"
	secE2EEOff         = "sec-e2ee-off"
)

// securityEvent is the security event of a security change sec by
// participant by.
func securityEvent(sec, by string) *wire.Message {
	ev := &wire.Message{Type: wire.TypeSecurity, Participant: by}
	on := sec == secPasswordSet || sec == secE2EEOn
	switch sec {
	case secPasswordSet, secPasswordRemoved:
		ev.PasswordSet = &on
	default:
		ev.E2EERequired = &on
	}
	return ev
}

// cascadeChat is one chat message as the room keeps it.
type cascadeChat struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Name        string `json:"name"`
	Text        string `json:"text"`
	TS          int64  `json:"ts"`
}

// errBadCascade is wrapped by every error decodeCascade returns; the
// text never quotes the input.
var errBadCascade = errors.New("bad cascade message")

func badCascade(what string) error { return fmt.Errorf("%w: %s", errBadCascade, what) }

func encodeCascade(m *cascadeMsg) ([]byte, error) {
	data, err := json.Marshal(withoutE2EE(m))
	if err != nil {
		return nil, err
	}
	if len(data) > relay.MaxRoomMessage {
		return nil, badCascade("too large")
	}
	return data, nil
}

// decodeCascade parses and validates one cascade message.
func decodeCascade(data []byte) (*cascadeMsg, error) {
	if len(data) > relay.MaxRoomMessage {
		return nil, badCascade("too large")
	}
	if !utf8.Valid(data) {
		return nil, badCascade("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m cascadeMsg
	if err := dec.Decode(&m); err != nil {
		return nil, badCascade("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badCascade("trailing data")
	}
	if m.V != cascadeVersion {
		return nil, badCascade("unknown version")
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	// An empty list is no list: what decodes encodes to itself.
	if len(m.P) == 0 {
		m.P = nil
	}
	if len(m.C) == 0 {
		m.C = nil
	}
	return &m, nil
}

// validate checks which fields the type takes and bounds each.
func (m *cascadeMsg) validate() error {
	if m.T != cascadeMod && m.A != "" || m.T != cascadeMod && m.T != cascadeKey && m.By != "" || m.T != cascadeKey && m.K != "" {
		return badCascade("field not allowed")
	}
	switch m.T {
	case cascadeE2EE:
		if m.Gen != 0 || m.Last || len(m.P) != 0 || len(m.C) != 0 || !validCascadeID(m.ID) {
			return badCascade("bad e2ee")
		}
	case cascadeKey:
		if m.Gen != 0 || m.Last || len(m.P) != 0 || len(m.C) != 0 || !validCascadeID(m.By) || !validCascadeID(m.ID) ||
			!wire.ValidE2EEKeyBlob(m.K) {
			return badCascade("bad key")
		}
	case cascadeMod:
		named, ok := cascadeModActions[m.A]
		if !ok || m.Gen != 0 || m.Last || len(m.P) != 0 || len(m.C) != 0 || !validCascadeID(m.By) ||
			named != (m.ID != "") || (named && !validCascadeID(m.ID)) {
			return badCascade("bad mod")
		}
	case cascadeLobby:
		if m.Gen != 0 || m.Last || m.ID != "" || len(m.C) != 0 || len(m.P) > maxLobby {
			return badCascade("bad lobby")
		}
		for _, p := range m.P {
			if !validCascadeID(p.ID) || wire.ValidDisplayName(p.Name) != nil {
				return badCascade("bad lobby")
			}
		}
	case cascadeRoster, cascadeUpsert:
		if m.ID != "" || len(m.C) != 0 {
			return badCascade("field not allowed")
		}
		if m.T == cascadeUpsert && (m.Gen != 0 || m.Last || len(m.P) == 0) {
			return badCascade("field not allowed")
		}
		if len(m.P) > maxCascadeParticipants {
			return badCascade("too many participants")
		}
		for _, p := range m.P {
			if !validCascadeID(p.ID) || wire.ValidDisplayName(p.Name) != nil {
				return badCascade("bad participant")
			}
		}
	case cascadeLeft:
		if m.Gen != 0 || m.Last || len(m.P) != 0 || len(m.C) != 0 || !validCascadeID(m.ID) {
			return badCascade("bad left")
		}
	case cascadeChatT:
		if m.Gen != 0 || m.Last || len(m.P) != 0 || m.ID != "" || len(m.C) == 0 || len(m.C) > maxCascadeChats {
			return badCascade("bad chat")
		}
		for _, c := range m.C {
			if !validCascadeID(c.ID) || !validCascadeID(c.Participant) || wire.ValidDisplayName(c.Name) != nil ||
				c.Text == "" || utf8.RuneCountInString(c.Text) > wire.MaxChatRunes {
				return badCascade("bad chat")
			}
		}
	default:
		return badCascade("unknown type")
	}
	return nil
}

// validCascadeID accepts the IDs signaling issues: 1 to wire.MaxIDBytes of
// [A-Za-z0-9_-].
func validCascadeID(s string) bool {
	if len(s) == 0 || len(s) > wire.MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
