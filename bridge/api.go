package bridge

// This file is the contract signaling codes against; track.go is the one
// the relay codes against. The methods live where their work is: New, Run
// and Close in bridge.go, the Room methods in room.go and track.go, the
// Participant methods in participant.go; the rest of the implementation in
// uptrack.go, downtrack.go and packetcache.go.

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/pion/webrtc/v4"
)

// Config configures a Bridge. UDPConn is required; every other field may be
// left zero (New applies the defaults, then Validate). New takes ownership
// of UDPConn, UDPConns and TCPListener.
type Config struct {
	// UDPConn is the one UDP socket for all participants' media (ICE UDP
	// mux). Required.
	UDPConn net.PacketConn
	// UDPConns are more sockets bound to UDPConn's address and port with
	// SO_REUSEPORT, so the kernel spreads participants over them by a hash
	// of their address and each is read by its own goroutine (udpmux.go).
	// Empty: pion's ICE UDP mux reads UDPConn alone. At most
	// MaxUDPConns-1.
	UDPConns []net.PacketConn
	// TCPListener accepts ICE-TCP on the same port number. Nil: no ICE-TCP.
	TCPListener net.Listener
	// PublicIPs are advertised in ICE candidates instead of the socket's
	// address (1:1 NAT): with them set, no other address goes out in any
	// candidate, and IP families without a public address are not used.
	// Empty: the socket's address (every interface's if it is unspecified).
	PublicIPs []string
	// IncludeLoopback advertises loopback candidates; needed when the node
	// listens on 127.0.0.1 (dev mode, tests).
	IncludeLoopback bool
	// AllowRemoteCandidate decides which addresses a participant's host,
	// server-reflexive and peer-reflexive candidates (trickled or in SDP) may
	// name; the others are dropped and counted. cmd passes the TURN deny
	// list (turn.Policy.CheckRange), so a client cannot point the node where
	// TURN may not relay. The loopback addresses the bridge itself listens
	// on or advertises (dev mode) are always allowed, and so are relayed
	// candidates on the publisher PeerConnection, where the bridge is
	// ICE-lite and sends nothing to any candidate. Nil: no other address is
	// allowed; the bridge then learns each client's address from its
	// connectivity checks (peer-reflexive candidates). Called concurrently;
	// must not block.
	AllowRemoteCandidate func(netip.Addr) bool
	// MaxTracksPerParticipant caps the audio and video tracks one
	// participant publishes; an offer sending more is refused with
	// ErrTooManyTracks. 0 means DefaultMaxTracksPerParticipant.
	MaxTracksPerParticipant int
	// LastN is the number of most recent speakers whose video each
	// participant receives when a room has more video publishers than
	// that (plus the tracks it pinned; lastn.go). 0 means DefaultLastN;
	// negative forwards all video. Room.SetLastN overrides it per room.
	LastN int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultMaxTracksPerParticipant is Config.MaxTracksPerParticipant's
// default: a camera with its microphone, a screen share with its audio,
// and room to spare.
const DefaultMaxTracksPerParticipant = 8

// MaxUDPConns is the most media sockets a bridge reads: UDPConn and
// UDPConns together.
const MaxUDPConns = 64

// PC names one of a participant's two PeerConnections.
type PC int

const (
	PCPub PC = iota // offered by the client; carries its tracks to the bridge
	PCSub           // offered by the bridge; carries other participants' tracks
)

// TrackInfo describes a published track.
type TrackInfo struct {
	ID          string // unique in the room
	Participant string
	Kind        webrtc.RTPCodecType
	Simulcast   bool
	// Remote: the track was published with Room.Publish (the relay
	// imported it from another bridge), not by a participant of this
	// bridge. The relay exports only tracks that are not remote.
	Remote bool
	// E2EE: the payload is end-to-end encrypted by the clients. The
	// bridge forwards it alike; the relay carries the flag to far bridges.
	E2EE bool
}

// RoomEvents are called from bridge goroutines. They must not block: enqueue
// and return.
type RoomEvents struct {
	// TrackPublished and TrackUnpublished report tracks coming and going.
	TrackPublished   func(TrackInfo)
	TrackUnpublished func(TrackInfo)
	// DominantSpeaker reports the participant that became the dominant
	// speaker, from RFC 6464 audio levels.
	DominantSpeaker func(participant string)
}

// ParticipantEvents are called from bridge goroutines. They must not block.
type ParticipantEvents struct {
	// Candidate is a local ICE candidate to trickle to the client. A nil
	// candidate means gathering is complete.
	Candidate func(pc PC, c *webrtc.ICECandidateInit)
	// Offer is a new offer for the subscriber PeerConnection, sent when
	// tracks come or go. The next Offer comes only after HandleAnswer.
	Offer func(sdp string)
	// Failed reports that the participant's media failed (ICE failed or
	// DTLS closed) and will not recover.
	Failed func(err error)
	// Forwarding reports which of the video tracks this participant
	// subscribes to last-N forwards: all true when last-N forwards every
	// video (off, or no more video publishers than N); else trackIDs holds
	// exactly those forwarded (among the N most recent speakers', or
	// pinned), by TrackInfo.ID, sorted, possibly empty: the others are
	// paused. Called by the room loop, at most once a tick, when that
	// changed since the last call (at first: all) and, while last-N
	// limits, after every new video subscription; with no lock held; the
	// slice is the callee's (lastn.go).
	Forwarding func(all bool, trackIDs []string)
}
