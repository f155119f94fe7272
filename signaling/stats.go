package signaling

// Stats are the signaling role's gauges, as plain numbers with no room or
// participant labels.
type Stats struct {
	// Participants on this node, including those detached and waiting for
	// a resume.
	Participants int
	// Rooms with at least one participant on this node.
	Rooms int
}

// Stats returns the current gauges.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Participants: len(s.participants), Rooms: len(s.rooms)}
}
