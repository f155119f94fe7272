package wire

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// field bits name the Message fields a client may set.
type field uint32

const (
	fVersion field = 1 << iota
	fRoom
	fName
	fPassword
	fToken
	fResume
	fPC
	fSDP
	fCandidate
	fText
	fTrackID
	fMaxHeight
	fPin
	fMuted
	fParticipant
	fLobby
	fRTTs
	fE2EE
	fE2EERequired
	fBlob
	fServerOnly // any field only the server sends
)

// clientFields says, per client message type, which fields it must and may
// carry.
var clientFields = map[Type]struct{ must, may field }{
	TypeJoin:      {must: fVersion | fRoom, may: fName | fPassword | fToken | fResume | fRTTs | fE2EE},
	TypeLeave:     {},
	TypePing:      {},
	TypePrefs:     {must: fTrackID, may: fMaxHeight | fPin},
	TypeState:     {must: fMuted},
	TypeOffer:     {must: fPC | fSDP},
	TypeAnswer:    {must: fPC | fSDP},
	TypeCandidate: {must: fPC | fCandidate},
	TypeChat:      {must: fText},

	TypeMuteParticipant:   {must: fParticipant},
	TypeStopCamera:        {must: fParticipant},
	TypeRemoveParticipant: {must: fParticipant},
	TypeEndMeeting:        {},
	TypeSetLobby:          {must: fLobby},
	TypeAdmit:             {must: fParticipant},
	TypeDeny:              {must: fParticipant},
	TypeSpeakerStats:      {},

	// A moderator's: no password removes it.
	TypeSetPassword: {may: fPassword},
	TypeSetE2EE:     {must: fE2EERequired},
	TypeE2EEKey:     {must: fParticipant | fBlob},
}

func (m *Message) fields() field {
	var f field
	set := func(b bool, bit field) {
		if b {
			f |= bit
		}
	}
	set(m.Version != 0, fVersion)
	set(m.Room != "", fRoom)
	set(m.Name != "", fName)
	set(m.Password != "", fPassword)
	set(m.Token != "", fToken)
	set(m.Resume != nil, fResume)
	set(m.PC != "", fPC)
	set(m.SDP != "", fSDP)
	set(m.Candidate != nil, fCandidate)
	set(m.Text != "", fText)
	set(m.TrackID != "", fTrackID)
	set(m.MaxHeight != 0, fMaxHeight)
	set(m.Pin, fPin)
	set(m.Muted != nil, fMuted)
	set(m.RTTs != nil, fRTTs)
	set(m.E2EE, fE2EE)
	set(m.E2EERequired != nil, fE2EERequired)
	set(m.Blob != "", fBlob)
	set(m.Participant != "", fParticipant)
	set(m.Lobby != nil, fLobby)
	set(m.Action != "" || m.By != "" || m.Stats != nil || m.Moderator, fServerOnly)
	set(m.TS != 0 || m.Secret != "" ||
		m.ICEServers != nil || m.Participants != nil || m.Tracks != nil || m.Resumed ||
		m.Track != nil || m.Error != nil || m.PasswordSet != nil || m.URL != "" || m.Video != nil || m.All, fServerOnly)
	return f
}

// Validate checks a message from a client: a known type, exactly the fields
// that type allows, and every field within its bounds. The error wraps
// ErrBadMessage.
func (m *Message) Validate() error {
	spec, ok := clientFields[m.Type]
	if !ok {
		return bad("unknown message type")
	}
	f := m.fields()
	if f&spec.must != spec.must {
		return bad("%s: missing required field", m.Type)
	}
	if f&^(spec.must|spec.may) != 0 {
		return bad("%s: field not allowed in this message", m.Type)
	}
	switch m.Type {
	case TypeJoin:
		if err := ValidRoomName(m.Room); err != nil {
			return err
		}
		if m.Name != "" {
			if err := ValidDisplayName(m.Name); err != nil {
				return err
			}
		}
		if err := validPassword(m.Password); err != nil {
			return err
		}
		if len(m.Token) > MaxTokenBytes {
			return bad("token longer than %d bytes", MaxTokenBytes)
		}
		if hasControl(m.Token) {
			return bad("token contains control characters")
		}
		if r := m.Resume; r != nil {
			if !validID(r.Participant) || !validID(r.Secret) {
				return bad("resume: malformed participant or secret")
			}
		}
		if err := validRTTs(m.RTTs); err != nil {
			return err
		}
	case TypeSetPassword:
		if err := validPassword(m.Password); err != nil {
			return err
		}
	case TypeE2EEKey:
		if !validID(m.Participant) {
			return bad("e2ee-key: malformed participant")
		}
		if !ValidE2EEKeyBlob(m.Blob) {
			return bad("e2ee-key: blob must be 1 to %d base64url characters", MaxE2EEKeyBytes)
		}
	case TypeMuteParticipant, TypeStopCamera, TypeRemoveParticipant, TypeAdmit, TypeDeny:
		if !validID(m.Participant) {
			return bad("%s: malformed participant", m.Type)
		}
	case TypeOffer, TypeAnswer:
		if m.PC != PCPub && m.PC != PCSub {
			return bad("pc must be %q or %q", PCPub, PCSub)
		}
		if len(m.SDP) > MaxSDPBytes {
			return bad("sdp longer than %d bytes", MaxSDPBytes)
		}
	case TypeCandidate:
		if m.PC != PCPub && m.PC != PCSub {
			return bad("pc must be %q or %q", PCPub, PCSub)
		}
		c := m.Candidate
		if len(c.Candidate) > MaxCandidateBytes {
			return bad("candidate longer than %d bytes", MaxCandidateBytes)
		}
		if c.SDPMid != nil && len(*c.SDPMid) > MaxIDBytes {
			return bad("sdpMid longer than %d bytes", MaxIDBytes)
		}
		if hasControl(c.Candidate) {
			return bad("candidate contains control characters")
		}
	case TypeChat:
		if n := utf8.RuneCountInString(m.Text); n > MaxChatRunes {
			return bad("chat message exceeds %d characters", MaxChatRunes)
		}
		if strings.TrimSpace(m.Text) == "" {
			return bad("empty chat message")
		}
	case TypePrefs:
		if !validID(m.TrackID) {
			return bad("prefs: malformed trackId")
		}
		if m.MaxHeight < 0 || m.MaxHeight > 4320 {
			return bad("prefs: maxHeight out of range 0..4320")
		}
	}
	return nil
}

// ValidRoomName checks a room name as typed by a person: 1 to
// MaxRoomNameRunes printable characters, no slash, no leading or trailing
// space.
func ValidRoomName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxRoomNameRunes {
		return bad("room name must be 1 to %d characters", MaxRoomNameRunes)
	}
	if strings.TrimSpace(name) != name {
		return bad("room name has leading or trailing space")
	}
	for _, r := range name {
		if r == '/' || r == '?' || r == '#' || r == '\\' || !unicode.IsPrint(r) {
			return bad("room name contains a character that is not allowed")
		}
	}
	return nil
}

// ValidDisplayName checks a display name: at most MaxDisplayNameRunes
// printable characters.
func ValidDisplayName(name string) error {
	if n := utf8.RuneCountInString(name); n > MaxDisplayNameRunes {
		return bad("display name longer than %d characters", MaxDisplayNameRunes)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return bad("display name contains a control character")
		}
	}
	return nil
}

// validID accepts identifiers the server issues: 1 to MaxIDBytes of
// [A-Za-z0-9_-].
func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDBytes {
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

// validPassword checks a room password: at most MaxPasswordBytes, no
// control character. The error never quotes it.
func validPassword(pw string) error {
	if len(pw) > MaxPasswordBytes {
		return bad("password longer than %d bytes", MaxPasswordBytes)
	}
	if hasControl(pw) {
		return bad("password contains control characters")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// validRTTs checks a join's round trips: at most MaxRTTs, each region a
// name of 1 to MaxRegionBytes printable ASCII bytes, listed once, each
// round trip 0 to MaxRTTMillis.
func validRTTs(rtts []RegionRTT) error {
	if len(rtts) > MaxRTTs {
		return bad("rtts: more than %d regions", MaxRTTs)
	}
	for i, r := range rtts {
		if r.Region == "" || len(r.Region) > MaxRegionBytes {
			return bad("rtts: region must be 1 to %d bytes", MaxRegionBytes)
		}
		for j := 0; j < len(r.Region); j++ {
			if c := r.Region[j]; c < 0x21 || c > 0x7e {
				return bad("rtts: region contains a character that is not allowed")
			}
		}
		if r.MS < 0 || r.MS > MaxRTTMillis {
			return bad("rtts: ms out of range 0..%d", MaxRTTMillis)
		}
		for _, o := range rtts[:i] {
			if o.Region == r.Region {
				return bad("rtts: region listed twice")
			}
		}
	}
	return nil
}

// ValidE2EEKeyBlob checks the blob of an e2ee-key message: 1 to
// MaxE2EEKeyBytes characters of base64url (no padding).
func ValidE2EEKeyBlob(b string) bool {
	if len(b) == 0 || len(b) > MaxE2EEKeyBytes {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
