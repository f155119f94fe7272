package bridge

import "errors"

// Sentinel errors. Test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed bridge, room or
	// participant.
	ErrClosed = errors.New("bridge: closed")
	// ErrNoUDPConn is returned by New when Config.UDPConn is nil.
	ErrNoUDPConn = errors.New("bridge: UDPConn is required")
	// ErrInvalidConfig is returned by New for a Config field out of range;
	// the error names the field.
	ErrInvalidConfig = errors.New("bridge: invalid config")
	// ErrDuplicateParticipant is returned by Room.Join when the ID is taken.
	ErrDuplicateParticipant = errors.New("bridge: participant already in room")
	// ErrNoPendingOffer is returned by HandleAnswer when no subscriber offer
	// is outstanding.
	ErrNoPendingOffer = errors.New("bridge: no offer outstanding")
	// ErrICEFailed is reported through ParticipantEvents.Failed when ICE on
	// either PeerConnection fails.
	ErrICEFailed = errors.New("bridge: ICE failed")
	// ErrConnectionClosed is reported through ParticipantEvents.Failed when
	// the remote side closed a PeerConnection (DTLS close_notify).
	ErrConnectionClosed = errors.New("bridge: connection closed by peer")
	// ErrTooManyCandidates is returned by AddCandidate when the
	// PeerConnection already has the most remote candidates it takes (64).
	ErrTooManyCandidates = errors.New("bridge: too many remote candidates")
	// ErrBadCandidate is returned by AddCandidate for a candidate that does
	// not parse.
	ErrBadCandidate = errors.New("bridge: malformed remote candidate")
	// ErrBadOffer is returned by HandleOffer for an offer the bridge
	// refuses without touching the PeerConnection (it does not parse, a
	// media section lacks a unique mid or a fingerprint, pion refused it
	// and stayed stable): the client may offer again.
	ErrBadOffer = errors.New("bridge: offer refused")
	// ErrNegotiationFailed is returned by HandleOffer, and reported
	// through ParticipantEvents.Failed, when an offer left the publisher
	// PeerConnection unable to negotiate again (pion cannot roll back a
	// remote offer): the participant's media is over.
	ErrNegotiationFailed = errors.New("bridge: negotiation failed")
	// ErrBadAnswer is returned by HandleAnswer for an answer pion refused.
	ErrBadAnswer = errors.New("bridge: answer refused")
	// ErrTooManyTracks is returned by HandleOffer for an offer that sends
	// more tracks than Config.MaxTracksPerParticipant.
	ErrTooManyTracks = errors.New("bridge: too many tracks")
	// ErrUnknownPC is returned for a PC value other than PCPub and PCSub.
	ErrUnknownPC = errors.New("bridge: unknown PeerConnection")
	// ErrDuplicateTrack is returned by Room.Publish when the track ID is
	// taken in the room.
	ErrDuplicateTrack = errors.New("bridge: track already in room")
	// ErrTrackNotFound is returned by Room.Subscribe and Room.TrackParams
	// for a track that is not (or no longer) published in the room.
	ErrTrackNotFound = errors.New("bridge: no such track")
	// ErrInvalidTrack is returned by Room.Publish and Room.Subscribe for
	// parameters out of bounds (IDs, kind, codec, layers, nil source or
	// sink).
	ErrInvalidTrack = errors.New("bridge: invalid track parameters")
)

// refusedError wraps what pion said about a participant's SDP or candidate.
// Its text names only the sentinel and the step: pion's messages quote the
// client's input (addresses, SDP lines), which must not reach a log or go
// back to the client. errors.Is and errors.As still see both.
type refusedError struct {
	sentinel error
	stage    string
	err      error // nil when the bridge itself refused
}

func refused(sentinel error, stage string, err error) error {
	return &refusedError{sentinel: sentinel, stage: stage, err: err}
}

func (e *refusedError) Error() string { return e.sentinel.Error() + ": " + e.stage }

func (e *refusedError) Unwrap() []error {
	if e.err == nil {
		return []error{e.sentinel}
	}
	return []error{e.sentinel, e.err}
}
