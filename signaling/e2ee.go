package signaling

import (
	"context"
	"errors"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// End-to-end encryption, the server's side (docs/e2ee.md). The clients
// encrypt their frames; the server only learns, from join, whether a
// client says it encrypts, marks that client's tracks E2EE (towards the
// other participants and, through bridge.TrackInfo.E2EE, across the
// relay), and refuses a client that does not encrypt from a room that
// requires it: every room with Config.E2EERequired (--e2ee-required), or
// a room a moderator marked in the directory (mesh.RoomState.E2EERequired,
// message set-e2ee). The bridge and the relay forward E2EE payloads as
// they forward any other: byte for byte, reading only the clear prefix.

// errE2EERequired refuses a join that does not encrypt from a room that
// requires end-to-end encryption.
var errE2EERequired = &wire.Error{Code: wire.CodeE2EERequired,
	Message: "this room requires end-to-end encryption: enter the meeting's passphrase and join again, in a browser that can encrypt media"}

// errE2EEUnavailable: the directory could not store the change.
var errE2EEUnavailable = &wire.Error{Code: wire.CodeUnavailable, Message: "directory unavailable: the E2EE requirement was not changed"}

// e2eeStateSetter is the part of the directory that changes a room's
// shared state (mesh.Node implements it).
type e2eeStateSetter interface {
	SetState(ctx context.Context, key mesh.RoomKey, conferenceID string, st mesh.RoomState) (mesh.Room, error)
}

// e2eeRequired reports whether a room, as the directory returned it,
// requires end-to-end encryption.
func (s *Server) e2eeRequired(info mesh.Room) bool {
	return s.cfg.E2EERequired || info.E2EERequired
}

// checkE2EE refuses a join m that does not say its client encrypts from a
// room that requires it.
func (s *Server) checkE2EE(info mesh.Room, m *wire.Message) error {
	if s.e2eeRequired(info) && !m.E2EE {
		return errE2EERequired
	}
	return nil
}

// encryptsLocked reports whether the participant with this ID, on this
// node, said at join that it encrypts. r.mu is held.
func (r *room) encryptsLocked(id string) bool {
	for _, o := range r.participants {
		if o.id == id {
			return o.e2ee
		}
	}
	return false
}

// markE2EE sets t.E2EE for a local participant's track when its client
// encrypts (the bridge cannot know; a track imported over the relay
// carries the flag already). Called from the bridge's event goroutines:
// it takes r.mu only briefly.
func (r *room) markE2EE(t bridge.TrackInfo) bridge.TrackInfo {
	if t.E2EE || t.Remote {
		return t
	}
	r.mu.Lock()
	t.E2EE = r.encryptsLocked(t.Participant)
	r.mu.Unlock()
	return t
}

// wireTrackLocked is wireTrack with the E2EE flag of a local
// participant's track. r.mu is held.
func (r *room) wireTrackLocked(t bridge.TrackInfo) wire.Track {
	w := wireTrack(t)
	w.E2EE = t.E2EE || (!t.Remote && r.encryptsLocked(t.Participant))
	return w
}

// setE2EE handles set-e2ee: a moderator makes the room require end-to-end
// encryption, or not, in the directory, for every bridge of the meeting.
// Turning it on needs every participant on this node to encrypt already
// (the requirement is checked at join; it does not remove anyone). The
// room's participants on this node are told.
func (s *Server) setE2EE(p *participant, required bool) error {
	if !p.mayModerate() {
		p.send(&wire.Message{Type: wire.TypeError, Error: &wire.Error{Code: wire.CodeNotAllowed, Message: "only moderators may change the E2EE requirement"}})
		return nil
	}
	r := p.room
	if required {
		r.mu.Lock()
		all := true
		for _, o := range r.participants {
			all = all && o.e2ee
		}
		r.mu.Unlock()
		if !all {
			p.send(&wire.Message{Type: wire.TypeError, Error: &wire.Error{Code: wire.CodeNotAllowed,
				Message: "not every participant encrypts: E2EE cannot be required while they are here"}})
			return nil
		}
	}
	if !required && s.cfg.E2EERequired {
		p.send(&wire.Message{Type: wire.TypeError, Error: &wire.Error{Code: wire.CodeNotAllowed,
			Message: "this server requires end-to-end encryption in every room"}})
		return nil
	}
	dir, ok := s.cfg.Directory.(e2eeStateSetter)
	if !ok {
		p.log.Error("set e2ee: the directory cannot change room state")
		return errInternal
	}
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	info, ok, err := s.cfg.Directory.Lookup(ctx, r.key)
	if err == nil && (!ok || info.ConferenceID != r.conference) {
		err = mesh.ErrRoomNotFound
	}
	if err == nil {
		st := mesh.RoomState{PasswordHash: info.PasswordHash, Locked: info.Locked, Moderation: info.Moderation, E2EERequired: required}
		info, err = dir.SetState(ctx, r.key, r.conference, st)
	}
	if err != nil {
		p.log.Warn("set e2ee", "err", err)
		if errors.Is(err, mesh.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			p.send(&wire.Message{Type: wire.TypeError, Error: errE2EEUnavailable})
			return nil
		}
		return errInternal
	}
	now := s.e2eeRequired(info)
	p.log.Info("room e2ee requirement changed", "required", now)
	ev := &wire.Message{Type: wire.TypeSecurity, Participant: p.id, E2EERequired: &now}
	r.mu.Lock()
	for _, o := range r.participants {
		o.send(ev)
	}
	r.mu.Unlock()
	return nil
}
