package signaling

import (
	"context"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// errRefused is the one answer to every refused join: a wrong or missing
// password, a missing, bad or expired token, a room that needs a token to
// be created, a locked room, a lobby refusal, guessing too fast. The
// client cannot tell these apart, and so cannot tell whether the room
// exists (DESIGN.md section 6, invariant 2; docs/security.md).
var errRefused = &wire.Error{Code: wire.CodeRefused, Message: "could not join: wrong password, locked room or not allowed"}

// refuse ends a join attempt with errRefused. reason is logged, at info,
// as the only detail: a fixed phrase, never a room or display name, a
// password or a token. Before answering it spends one password derivation,
// so that a refusal that checked no password takes as long as one that
// did (every refusal path calls refuse or refuseChecked exactly once).
// Callers return its result as the session's fatal error.
func (s *Server) refuse(ctx context.Context, reason string) error {
	dummyHash(ctx)
	return s.refuseChecked(reason)
}

// refuseChecked is refuse for an attempt that has already spent its
// password derivation.
func (s *Server) refuseChecked(reason string) error {
	s.refusals.Add(1)
	s.log.Info("join refused", "reason", reason)
	return errRefused
}
