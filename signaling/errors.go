package signaling

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Errors a session ends with. errorMessage maps each to what the client is
// told; nothing else about the server's state leaks into an error.
var (
	errBadVersion    = &wire.Error{Code: wire.CodeBadVersion, Message: "unsupported protocol version"}
	errRateLimited   = &wire.Error{Code: wire.CodeRateLimited, Message: "too many messages"}
	errNotJoined     = &wire.Error{Code: wire.CodeNotJoined, Message: "the first message must be join"}
	errResumeFailed  = &wire.Error{Code: wire.CodeResumeFailed, Message: "this session cannot be resumed; join again"}
	errResumeExpired = &wire.Error{Code: wire.CodeResumeFailed, Message: "the session expired"}
	errUnavailable   = &wire.Error{Code: wire.CodeUnavailable, Message: "directory unavailable: try again shortly"}
	errFull          = &wire.Error{Code: wire.CodeFull, Message: "this server is at capacity"}
	// The busy errors of the per-source and not-yet-joined limits.
	errBusyConns        = &wire.Error{Code: wire.CodeBusy, Message: "too many connections from this address: try again shortly"}
	errBusyUnjoined     = &wire.Error{Code: wire.CodeBusy, Message: "server busy: try again shortly"}
	errBusyJoins        = &wire.Error{Code: wire.CodeBusy, Message: "too many joins from this address: try again shortly"}
	errBusyParticipants = &wire.Error{Code: wire.CodeBusy, Message: "too many participants from this address"}
	errInternal         = &wire.Error{Code: wire.CodeInternal, Message: "internal error"}
	errShutdown         = &wire.Error{Code: wire.CodeShutdown, Message: "the server is shutting down"}
	errSlowClient       = &wire.Error{Code: wire.CodeTooSlow, Message: "client too slow to read its messages"}
	errChatLimited      = &wire.Error{Code: wire.CodeChatLimited, Message: "too much chat in this room: message not sent"}
	errMediaFailed      = &wire.Error{Code: wire.CodeNegotiation, Message: "media connection failed"}

	// errLeft ends a session after a leave; the client is told nothing.
	errLeft = errors.New("left")
)

// badMessage is a fatal protocol error.
func badMessage(msg string) *wire.Error {
	return &wire.Error{Code: wire.CodeBadMessage, Message: msg}
}

// negotiation is a non-fatal SDP or candidate error.
func negotiation(msg string) *wire.Error {
	return &wire.Error{Code: wire.CodeNegotiation, Message: msg, Fatal: false}
}

// errorMessage maps any error to the copy a client is sent. Errors of the
// wire decoder carry their text (it names a field, never a value the client
// did not send); anything else becomes "internal".
func errorMessage(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		c := *we
		return &c
	}
	if errors.Is(err, wire.ErrBadMessage) {
		return &wire.Error{Code: wire.CodeBadMessage, Message: err.Error()}
	}
	return &wire.Error{Code: wire.CodeInternal, Message: "internal error"}
}

// loggable are the errors whose text may go to a log: the bridge's errors
// name the step that failed, never the client's SDP or candidate.
var loggable = []error{
	bridge.ErrClosed, bridge.ErrNoPendingOffer, bridge.ErrICEFailed, bridge.ErrConnectionClosed,
	bridge.ErrTooManyCandidates, bridge.ErrBadCandidate, bridge.ErrUnknownPC, bridge.ErrBadOffer,
	bridge.ErrBadAnswer, bridge.ErrNegotiationFailed, bridge.ErrTooManyTracks,
	context.DeadlineExceeded, context.Canceled,
}

// logReason names an error that a client's input caused, for a log line.
// pion's SDP and ICE errors quote the offending input (ICE credentials
// among it), so an error that is none of loggable is named by its type
// only.
func logReason(err error) string {
	for _, e := range loggable {
		if errors.Is(err, e) {
			return err.Error()
		}
	}
	return fmt.Sprintf("other (%T)", err)
}

// causeCode names why a participant left, for debug logs.
func causeCode(err error) string {
	if err == nil {
		return "leave"
	}
	return errorMessage(err).Code
}
