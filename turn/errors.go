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
	// ErrNoSecret is returned by New when no TURN secret is configured.
	ErrNoSecret = errors.New("turn: no secret configured")
	// ErrClosed is returned by Run on a server that was closed.
	ErrClosed = errors.New("turn: closed")
)
