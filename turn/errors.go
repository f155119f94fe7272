package turn

import "errors"

var (
	// ErrPeerDenied is returned by Policy.Check for a peer address that the
	// server must not relay to.
	ErrPeerDenied = errors.New("turn: peer address denied")
	// ErrTCPRelay is returned when a client asks for a TCP relay allocation
	// (RFC 6062), which meshmeet does not offer.
	ErrTCPRelay = errors.New("turn: TCP relay allocations (RFC 6062) are not offered")
	// ErrQuota is returned when an allocation would exceed the per-user or
	// total allocation quota.
	ErrQuota = errors.New("turn: allocation quota reached")
	// ErrSessionEnded is returned when an allocation is asked for with the
	// credentials of a session that ended (Server.EndSession).
	ErrSessionEnded = errors.New("turn: session ended")
	// ErrSessionID is returned when credentials are asked for a session ID
	// that cannot be carried in a TURN REST username.
	ErrSessionID = errors.New("turn: invalid session ID")
	// ErrNoSecret is returned by New when no TURN secret is configured.
	ErrNoSecret = errors.New("turn: no secret configured")
	// ErrClosed is returned by Run on a server that was closed.
	ErrClosed = errors.New("turn: closed")
)
