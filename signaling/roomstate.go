package signaling

import (
	"context"
	"errors"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// stateSetter is the part of the directory that changes a room's shared
// state (mesh.Node implements it).
type stateSetter interface {
	SetState(ctx context.Context, key mesh.RoomKey, conferenceID string, st mesh.RoomState) (mesh.Room, error)
}

// setRoomState changes, for moderator p, its room's shared state in the
// directory: change sets the fields it names in st.Fields (the directory
// keeps the others as they are, whatever another node changed meanwhile).
// It returns the room as the directory then holds it and true; false when
// the change was not made: with a nil error when p was told so (unavailable,
// the directory could not be reached in time), or the error that ends p's
// session.
func (s *Server) setRoomState(p *participant, what string, unavailable *wire.Error, change func(*mesh.RoomState)) (mesh.Room, bool, error) {
	dir, ok := s.cfg.Directory.(stateSetter)
	if !ok {
		p.log.Error(what + ": the directory cannot change room state")
		return mesh.Room{}, false, errInternal
	}
	r := p.room
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	info, found, err := s.cfg.Directory.Lookup(ctx, r.key)
	if err == nil && (!found || info.ConferenceID != r.conference) {
		err = mesh.ErrRoomNotFound
	}
	if err == nil {
		st := mesh.RoomState{PasswordHash: info.PasswordHash, Locked: info.Locked, Moderation: info.Moderation, E2EERequired: info.E2EERequired}
		change(&st)
		info, err = dir.SetState(ctx, r.key, r.conference, st)
	}
	if err != nil {
		p.log.Warn(what, "err", err)
		if errors.Is(err, mesh.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			p.send(&wire.Message{Type: wire.TypeError, Error: unavailable})
			return mesh.Room{}, false, nil
		}
		return mesh.Room{}, false, errInternal
	}
	return info, true, nil
}
