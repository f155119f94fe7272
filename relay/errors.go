package relay

import "errors"

var (
	// ErrClosed is returned by calls on a Relay after Close.
	ErrClosed = errors.New("relay: closed")
	// ErrShortBuffer is returned by MarshalTo when the buffer is too small.
	ErrShortBuffer = errors.New("relay: buffer too short")
	// ErrMalformed means a datagram header or control message does not
	// parse: truncated, an unknown version or type, a bad varint or a field
	// out of range.
	ErrMalformed = errors.New("relay: malformed message")
	// ErrTooLarge means a control message or one of its fields exceeds its
	// bound (MaxControlBody, MaxConferenceID, MaxRoomMessage, MaxNACKs...).
	ErrTooLarge = errors.New("relay: message too large")
	// ErrPeerName means the peer's hello named another node than the one
	// dialled, or no valid node name at all.
	ErrPeerName = errors.New("relay: unexpected peer name")
	// ErrUnknownRoom is returned by SendRoomMessage for a conference that is
	// not attached.
	ErrUnknownRoom = errors.New("relay: room not attached")
)
