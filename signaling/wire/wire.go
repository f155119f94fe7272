// Package wire holds the message types of meshmeet's signaling protocol and
// its strict decoder. It links nothing of the server, so the bench client and
// tests speak the protocol without importing signaling.
//
// Protocol flow (docs/protocol.md has every field and limit):
//
//	client                                   server
//	  ── WebSocket GET /ws, subprotocol "meshmeet.v1" ──▶
//	  ── join {room, name?, resume?} ─────────────────▶
//	  ◀── welcome {participant, secret, iceServers, participants, tracks}
//	  ── offer {pc:"pub", sdp} ───────────────────────▶   client publishes
//	  ◀── answer {pc:"pub", sdp}
//	  ◀── offer {pc:"sub", sdp} ───────────────────────   server adds/removes tracks
//	  ── answer {pc:"sub", sdp} ──────────────────────▶
//	  ◀─▶ candidate {pc, candidate}                        trickle ICE, both ways
//	  ◀── participant-joined / participant-left / participant-updated
//	  ◀── track-published / track-unpublished / speaker
//	  ◀── forwarding {video} / {all}                       videos last-N forwards
//	  ◀─▶ chat {text} / chat {participant, name, text, ts}
//	  ── mute-participant / stop-camera / remove-participant {participant},
//	     end-meeting, set-lobby {lobby}, admit / deny {participant} ──▶
//	  ◀── moderation {action, by, participant?}            to everyone
//	  ◀── lobby {lobby, participants}                      to moderators
//	  ── speaker-stats ──▶ ◀── speaker-stats {stats}
//	  (lobby on: join ──▶ ◀── waiting, then welcome or error refused)
//	  ── ping ──▶ ◀── pong                                keepalive
//	  ── leave ──▶                                        then the server closes
//	  ◀── error {error:{code, message}}                    then, if fatal, close
//
// Each participant has two PeerConnections: "pub", offered by the client, on
// which it sends its tracks; "sub", offered by the server, on which it
// receives everyone else's. Offers on a PeerConnection come from one side
// only, so renegotiation never collides (no glare).
package wire

// Version is the protocol version this package speaks. A client sends it in
// join; the server refuses any other.
const Version = 1

// Subprotocol is the WebSocket subprotocol a client must offer.
const Subprotocol = "meshmeet.v1"

// Limits. The server enforces every one; a client that exceeds one gets an
// error and its session is closed.
const (
	// MaxFrameBytes bounds one WebSocket message. A Chromium offer with
	// three simulcast layers and every codec is about 12 KiB.
	MaxFrameBytes = 64 << 10
	// MaxSDPBytes bounds the sdp field.
	MaxSDPBytes = 48 << 10
	// MaxRoomNameRunes bounds a room name.
	MaxRoomNameRunes = 128
	// MaxDisplayNameRunes bounds a display name.
	MaxDisplayNameRunes = 64
	// MaxChatRunes bounds one chat message.
	MaxChatRunes = 2000
	// MaxCandidateBytes bounds one ICE candidate line.
	MaxCandidateBytes = 512
	// MaxIDBytes bounds participant, track and secret identifiers.
	MaxIDBytes = 64
	// MaxPasswordBytes bounds a room password.
	MaxPasswordBytes = 256
	// MaxTokenBytes bounds a JWT.
	MaxTokenBytes = 4096
	// MaxDepth bounds JSON nesting.
	MaxDepth = 4
	// MaxKeys bounds the number of object keys in one message.
	MaxKeys = 64
	// MaxE2EEKeyBytes bounds the blob of an e2ee-key message (a public
	// key or a wrapped sender key, base64url).
	MaxE2EEKeyBytes = 512
	// MaxRTTs bounds the regions a join reports round trips for,
	// MaxRegionBytes a region name in it, MaxRTTMillis one round trip.
	MaxRTTs        = 16
	MaxRegionBytes = 64
	MaxRTTMillis   = 60_000
	// MaxURLBytes bounds the url of a redirect.
	MaxURLBytes = 256
	// RatePerSecond and RateBurst bound the messages a client may send.
	// Trickle ICE sends a burst of candidates after each offer.
	RatePerSecond = 20
	RateBurst     = 60
)

// Type names a message.
type Type string

// Client to server.
const (
	TypeJoin  Type = "join"  // first message: enter a room
	TypeLeave Type = "leave" // leave the room; the server closes the socket
	TypePing  Type = "ping"  // keepalive; answered by pong
	TypePrefs Type = "prefs" // subscriber preference for one video track
	TypeState Type = "state" // own media state: audio/video muted
	// TypeSetPassword sets the room's password (password) or removes it
	// (no password). A moderator's message (docs/security.md).
	TypeSetPassword Type = "set-password"
	// TypeSetE2EE makes the room require end-to-end encryption
	// (e2eeRequired true) or not. A moderator's message (docs/e2ee.md).
	TypeSetE2EE Type = "set-e2ee"
)

// Moderation, client to server (docs/protocol.md, docs/security.md). Under
// soft moderation (the default) every participant may send them; with
// --auth jwt only moderators may, and anyone else gets a not-allowed error.
const (
	// TypeMuteParticipant asks participant to mute its microphone (it may
	// unmute itself).
	TypeMuteParticipant Type = "mute-participant"
	// TypeStopCamera asks participant to stop its camera.
	TypeStopCamera Type = "stop-camera"
	// TypeRemoveParticipant removes participant from the meeting for good.
	TypeRemoveParticipant Type = "remove-participant"
	// TypeEndMeeting removes everyone, waiting people included.
	TypeEndMeeting Type = "end-meeting"
	// TypeSetLobby turns the lobby on (lobby true) or off.
	TypeSetLobby Type = "set-lobby"
	// TypeAdmit lets a waiting participant in; TypeDeny turns it away.
	TypeAdmit Type = "admit"
	TypeDeny  Type = "deny"
)

// Moderation and lobby, server to client.
const (
	// TypeModeration tells everyone in the meeting what a moderator did:
	// action (one of the Action constants), by (who), participant (to
	// whom, absent for lobby-on, lobby-off and end).
	TypeModeration Type = "moderation"
	// TypeWaiting is the answer to a join while the lobby is on: wait for
	// a moderator. Nothing about the meeting follows until the welcome
	// (admitted) or a refused error (denied).
	TypeWaiting Type = "waiting"
	// TypeLobby tells those who may moderate whether the lobby is on and
	// who waits in it, on every bridge of the meeting (participants: id
	// and name, the whole list each time).
	TypeLobby Type = "lobby"
)

// Actions of a moderation message.
const (
	ActionMute       = "mute"
	ActionStopCamera = "stop-camera"
	ActionRemove     = "remove"
	ActionEnd        = "end"
	ActionLobbyOn    = "lobby-on"
	ActionLobbyOff   = "lobby-off"
	ActionAdmit      = "admit"
	ActionDeny       = "deny"
)

// TypeSpeakerStats, from a client, asks for the meeting's speaker stats;
// the server answers with the same type and stats.
const TypeSpeakerStats Type = "speaker-stats"

// MaxSpeakerStats bounds the entries of a speaker-stats answer.
const MaxSpeakerStats = 1000

// SpeakerStat is one participant's speaking time in the meeting so far:
// how long it was the dominant speaker, in milliseconds.
type SpeakerStat struct {
	Participant string `json:"participant"`
	MS          int64  `json:"ms"`
}

// Both directions.
const (
	TypeOffer     Type = "offer"
	TypeAnswer    Type = "answer"
	TypeCandidate Type = "candidate"
	TypeChat      Type = "chat"
	// TypeE2EEKey carries an opaque blob of the managed-key exchange
	// (docs/e2ee.md) to one participant: from a client, participant is
	// the recipient; from the server, the sender. Relayed across the
	// cascade; the server never reads the blob.
	TypeE2EEKey Type = "e2ee-key"
)

// Server to client.
const (
	TypeWelcome            Type = "welcome"
	TypePong               Type = "pong"
	TypeParticipantJoined  Type = "participant-joined"
	TypeParticipantLeft    Type = "participant-left"
	TypeParticipantUpdated Type = "participant-updated"
	TypeTrackPublished     Type = "track-published"
	TypeTrackUnpublished   Type = "track-unpublished"
	TypeSpeaker            Type = "speaker"
	TypeSecurity           Type = "security" // the room's password was set or removed, or its E2EE requirement changed
	TypeError              Type = "error"
	// TypeRedirect tells the client to continue on another node: close
	// this socket, open URL's /ws and send join again (same room, name and,
	// once welcomed, the resume secret), with no user action. Sent instead
	// of welcome when placement chose another bridge, and at any time
	// later when the participant is moved (draining). URL is the target
	// node's public base URL, always a cluster member's.
	TypeRedirect Type = "redirect"
	// TypeForwarding tells which of the client's video tracks the room's
	// last-N forwards (among the N most recent speakers', or pinned): all
	// true, every one; else exactly those in video (absent: none), the
	// server sending no packets of the others. A video track the client
	// learned of (welcome, track-published) after the latest forwarding
	// counts as forwarded until the next one, which the server sends after
	// every new video subscription while last-N limits. Sent when that
	// changes; after a welcome (resumed or not) everything is forwarded
	// until the next forwarding. Each message replaces the whole state.
	TypeForwarding Type = "forwarding"
)

// PC names one of a participant's two PeerConnections.
type PC string

const (
	PCPub PC = "pub" // client offers, client sends media
	PCSub PC = "sub" // server offers, client receives media
)

// Message is every signaling message. Type says which fields it carries;
// Validate checks that a client message carries exactly those.
type Message struct {
	Type Type `json:"type"`

	// join
	Version  int     `json:"version,omitempty"`
	Room     string  `json:"room,omitempty"`
	Name     string  `json:"name,omitempty"`     // display name; also in chat from server
	Password string  `json:"password,omitempty"` // the room's password; also set-password
	Token    string  `json:"token,omitempty"`    // a JWT (--auth jwt)
	Resume   *Resume `json:"resume,omitempty"`
	// RTTs are the client's measured round trips to each region's probe
	// URL (GET /regions lists them), at most MaxRTTs; optional.
	RTTs []RegionRTT `json:"rtts,omitempty"`

	// offer, answer, candidate
	PC        PC         `json:"pc,omitempty"`
	SDP       string     `json:"sdp,omitempty"`
	Candidate *Candidate `json:"candidate,omitempty"`

	// chat
	Text string `json:"text,omitempty"`
	// TS is the server's time in Unix milliseconds (chat, welcome, pong).
	TS int64 `json:"ts,omitempty"`

	// prefs
	TrackID   string `json:"trackId,omitempty"`
	MaxHeight int    `json:"maxHeight,omitempty"` // 0 means "not shown": pause
	// Pin: forward this track whatever the room's last-N says (absent:
	// false, the track follows last-N).
	Pin bool `json:"pin,omitempty"`

	// join: the client encrypts its media end to end (docs/e2ee.md).
	E2EE bool `json:"e2ee,omitempty"`
	// set-e2ee, and from the server in welcome and security: the room
	// requires end-to-end encryption.
	E2EERequired *bool `json:"e2eeRequired,omitempty"`
	// e2ee-key: the opaque blob, base64url, at most MaxE2EEKeyBytes.
	Blob string `json:"blob,omitempty"`

	// state and participant-updated
	Muted *Muted `json:"muted,omitempty"`

	// welcome
	Participant  string        `json:"participant,omitempty"` // also: subject of events, chat sender
	Secret       string        `json:"secret,omitempty"`
	ICEServers   []ICEServer   `json:"iceServers,omitempty"`
	Participants []Participant `json:"participants,omitempty"`
	Tracks       []Track       `json:"tracks,omitempty"`
	Resumed      bool          `json:"resumed,omitempty"`
	// Moderator (welcome): you may moderate this meeting (always under
	// soft moderation; with --auth jwt, with a moderator token).
	Moderator bool `json:"moderator,omitempty"`

	// security: whether the room has a password now (participant: who
	// changed it).
	PasswordSet *bool `json:"passwordSet,omitempty"`

	// track-published, track-unpublished
	Track *Track `json:"track,omitempty"`

	// moderation: what was done (Action constants) and by whom.
	Action string `json:"action,omitempty"`
	By     string `json:"by,omitempty"`
	// set-lobby and lobby: whether the lobby is on.
	Lobby *bool `json:"lobby,omitempty"`
	// speaker-stats from the server.
	Stats []SpeakerStat `json:"stats,omitempty"`

	// error
	Error *Error `json:"error,omitempty"`
	// redirect: the target node's public base URL (http or https, at most
	// MaxURLBytes).
	URL string `json:"url,omitempty"`
	// forwarding: IDs of the video tracks last-N forwards to this client,
	// sorted, when All is false; absent: none. At most one per video
	// track it receives, bounded by N's publishers and its pins.
	Video []string `json:"video,omitempty"`
	// forwarding: last-N forwards every video track (Video absent).
	All bool `json:"all,omitempty"`
}

// RegionRTT is one measured round trip in a join.
type RegionRTT struct {
	Region string `json:"region"`
	// MS is the round trip in milliseconds, 0 to MaxRTTMillis.
	MS int `json:"ms"`
}

// Resume asks to re-attach to a participant whose WebSocket dropped.
type Resume struct {
	Participant string `json:"participant"`
	Secret      string `json:"secret"`
}

// Candidate is one trickled ICE candidate, as RTCIceCandidateInit.
// An empty Candidate string means end of candidates.
type Candidate struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

// Muted is a participant's own media state.
type Muted struct {
	Audio bool `json:"audio"`
	Video bool `json:"video"`
}

// ICEServer is one RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Participant describes another participant of the room.
type Participant struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Muted Muted  `json:"muted"`
	// E2EE: the participant's client said at join that it encrypts its
	// media end to end; its tracks are marked so on every bridge.
	E2EE bool `json:"e2ee,omitempty"`
}

// Track kinds and sources.
const (
	KindAudio = "audio"
	KindVideo = "video"
)

// Track describes a published track. On the subscriber PeerConnection the
// server sends it with MediaStream ID = Participant and track ID = ID.
type Track struct {
	ID          string `json:"id"`
	Participant string `json:"participant"`
	Kind        string `json:"kind"`
	Simulcast   bool   `json:"simulcast,omitempty"`
	// E2EE: the publisher encrypts this track's media end to end.
	E2EE bool `json:"e2ee,omitempty"`
}

// Error codes. The code is stable; the message is for humans.
const (
	CodeBadMessage   = "bad-message"   // malformed, unknown or out-of-bounds input (fatal)
	CodeBadVersion   = "bad-version"   // unsupported protocol version (fatal)
	CodeRateLimited  = "rate-limited"  // too many messages (fatal)
	CodeNotJoined    = "not-joined"    // message before join (fatal)
	CodeResumeFailed = "resume-failed" // resume refused: unknown or expired (fatal)
	CodeUnavailable  = "unavailable"   // directory unavailable: try again later (fatal)
	CodeFull         = "full"          // node or room at capacity (fatal)
	CodeBusy         = "busy"          // too many sockets or joins from one source, or sockets not yet joined (fatal)
	CodeNegotiation  = "negotiation"   // SDP or candidate refused (not fatal)
	CodeInternal     = "internal"      // server fault (fatal)
	CodeShutdown     = "shutdown"      // the node is shutting down (fatal)
	CodeTooSlow      = "too-slow"      // the client read too slowly to keep up with negotiation and room events (fatal)
	CodeChatLimited  = "chat-limited"  // the room's chat budget is spent: the message was not sent (not fatal)
	// CodeRemoved: a moderator removed this participant, or ended the
	// meeting for all; its session cannot be resumed (fatal).
	CodeRemoved = "removed"
	// CodeModerationLimited: the meeting's moderation budget is spent;
	// the action was not taken (not fatal).
	CodeModerationLimited = "moderation-limited"
	// CodeE2EERequired: the room requires end-to-end encryption and the
	// join did not say the client encrypts (fatal).
	CodeE2EERequired = "e2ee-required"
	// CodeRefused is the one answer to every refused join: wrong or
	// missing password, token, lock, lobby, guessing too fast. It never
	// says which, so it cannot tell whether a room exists (fatal).
	CodeRefused = "refused"
	// CodeNotAllowed: a moderator's action from a participant who may not
	// moderate (not fatal).
	CodeNotAllowed = "not-allowed"
)

// Error is the body of an error message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
