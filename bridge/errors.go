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
