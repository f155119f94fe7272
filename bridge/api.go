package bridge

// This file is the contract signaling codes against. The bodies here are
// placeholders to be replaced by the SFU implementation; the signatures stay.

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/pion/webrtc/v4"
)

// Config configures a Bridge. The zero value is a bridge on 127.0.0.1:7882.
type Config struct {
	// UDPConn is the one UDP socket for all participants' media (ICE UDP
	// mux). Required.
	UDPConn net.PacketConn
	// TCPListener accepts ICE-TCP on the same port number. Nil: no ICE-TCP.
	TCPListener net.Listener
	// PublicIPs are advertised in ICE candidates instead of the socket's
	// address (1:1 NAT). Empty: the socket's address.
	PublicIPs []string
	// IncludeLoopback advertises loopback candidates; needed when the node
	// listens on 127.0.0.1 (dev mode, tests).
	IncludeLoopback bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

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
}

// ErrClosed is returned by operations on a closed bridge, room or participant.
var ErrClosed = errors.New("bridge: closed")

// Bridge is the SFU of one node.
type Bridge struct {
	cfg Config
}

// New validates cfg. It starts nothing.
func New(cfg Config) (*Bridge, error) {
	if cfg.UDPConn == nil {
		return nil, errors.New("bridge: UDPConn is required")
	}
	return &Bridge{cfg: cfg}, nil
}

// Run serves media until ctx is done, then closes every room.
func (b *Bridge) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// NewRoom returns a room that routes media among its participants.
func (b *Bridge) NewRoom(id string, ev RoomEvents) *Room { return &Room{} }

// Room routes media among the participants of one conference on this bridge.
type Room struct{}

// Join adds a participant. Its PeerConnections are created here.
func (r *Room) Join(id string, ev ParticipantEvents) (*Participant, error) {
	return nil, errors.New("bridge: not implemented")
}

// Tracks returns the tracks currently published in the room.
func (r *Room) Tracks() []TrackInfo { return nil }

// Close closes every participant.
func (r *Room) Close() {}

// Participant is one participant's media on this bridge.
type Participant struct{}

// HandleOffer applies the client's offer for the publisher PeerConnection
// and returns the answer.
func (p *Participant) HandleOffer(sdp string) (string, error) { return "", ErrClosed }

// HandleAnswer applies the client's answer to the last Offer.
func (p *Participant) HandleAnswer(sdp string) error { return ErrClosed }

// AddCandidate adds a remote ICE candidate to one PeerConnection.
func (p *Participant) AddCandidate(pc PC, c webrtc.ICECandidateInit) error { return ErrClosed }

// SetMaxHeight caps the video layer this participant receives of track;
// 0 pauses it (the tile is not shown).
func (p *Participant) SetMaxHeight(trackID string, maxHeight int) {}

// Close removes the participant from its room: its tracks are unpublished
// and its PeerConnections closed. Idempotent.
func (p *Participant) Close() {}
