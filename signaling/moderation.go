package signaling

// mayModerate reports whether s may moderate others: mute them, stop their
// camera, remove them, admit or deny waiting people, turn the lobby on or
// off and end the meeting for all. Soft moderation (the default): everyone
// may. Config.StrongModeration (--auth jwt): only holders of a moderator
// token.
func (s *session) mayModerate() bool {
	if !s.room.srv.cfg.StrongModeration {
		return true
	}
	return s.moderator
}

// session is a participant's signaling session (the name the moderation
// contract uses).
type session = participant
