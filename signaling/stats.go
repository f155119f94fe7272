package signaling

import "github.com/meshmeet/meshmeet/mesh"

// Stats are the signaling role's gauges, as plain numbers with no room or
// participant labels.
type Stats struct {
	// Participants on this node, including those detached and waiting for
	// a resume.
	Participants int
	// Rooms with at least one participant on this node.
	Rooms int
	// BusyRefused counts sockets and joins refused with "busy" by the
	// per-source and not-yet-joined limits (a counter).
	BusyRefused uint64
	// ChatRefused counts chat messages refused by a room's chat budget,
	// ChatDropped chat messages not queued for a participant that read too
	// slowly (one per recipient), both counters.
	ChatRefused, ChatDropped uint64
	// SourceThrottled counts messages whose reading waited because their
	// source's sockets together exceeded Config.SourceMessageRate (a
	// counter).
	SourceThrottled uint64
	// ChatHistoryBytes is what the rooms' kept chat counts against
	// Config.ChatHistoryBytes.
	ChatHistoryBytes int64
	// AdmittedWithoutLeader counts participants moving here from another
	// node that were admitted on this node's copy of the directory because
	// the directory had no leader (resume.go; a counter).
	AdmittedWithoutLeader uint64
}

// Stats returns the current gauges.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Participants: len(s.participants), Rooms: len(s.rooms), BusyRefused: s.sources.refused.Load(), SourceThrottled: s.sources.throttled.Load(),
		ChatRefused: s.chatRefused.Load(), ChatDropped: s.chatDropped.Load(), ChatHistoryBytes: s.chatBytes.Load(),
		AdmittedWithoutLeader: s.moves.leaderless.Load()}
}

// LiveRooms returns the directory keys of the rooms with at least one
// participant on this node, joins in progress included, so that a caller
// comparing them with the directory never takes a room being joined for a
// ghost. Safe for concurrent use; the slice is the caller's.
func (s *Server) LiveRooms() []mesh.RoomKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]mesh.RoomKey, 0, len(s.roomSlots))
	for k := range s.roomSlots {
		keys = append(keys, k)
	}
	return keys
}
