package signaling

import (
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

// encryptsLocked reports whether the participant with this ID said at
// join that it encrypts: one on this node, or one of another bridge of the
// meeting, whose roster entries carry the flag (wire.Participant.E2EE).
// r.mu is held.
func (r *room) encryptsLocked(id string) bool {
	for _, o := range r.participants {
		if o.id == id {
			return o.e2ee
		}
	}
	if rp := r.casc.remote[id]; rp != nil {
		return rp.info.E2EE
	}
	return false
}

// markE2EE sets t.E2EE when its publisher's client encrypts. The bridge
// cannot know (the flag would reach it only through
// bridge.PublishParams.E2EE of a track the relay imports, and the relay
// exports a local track with the bridge's own, unmarked, parameters), so
// signaling marks tracks from the participants' join flag, on every
// bridge. Called from the bridge's event goroutines: it takes r.mu only
// briefly.
func (r *room) markE2EE(t bridge.TrackInfo) bridge.TrackInfo {
	if t.E2EE {
		return t
	}
	r.mu.Lock()
	t.E2EE = r.encryptsLocked(t.Participant)
	r.mu.Unlock()
	return t
}

// wireTrackLocked is wireTrack with the E2EE flag of the track's
// publisher. r.mu is held.
func (r *room) wireTrackLocked(t bridge.TrackInfo) wire.Track {
	w := wireTrack(t)
	w.E2EE = t.E2EE || r.encryptsLocked(t.Participant)
	return w
}

// setE2EE handles set-e2ee: a moderator makes the room require end-to-end
// encryption, or not, in the directory, for every bridge of the meeting.
// Turning it on needs every participant on this node to encrypt already
// (the requirement is checked at join; it does not remove anyone), and
// only while every participant of the meeting, on every bridge, encrypts.
// The meeting's participants on every bridge are told.
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
		for _, rp := range r.casc.remote { // the meeting's other bridges
			all = all && rp.info.E2EE
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
	info, ok, err := s.setRoomState(p, "set e2ee", errE2EEUnavailable, func(st *mesh.RoomState) {
		st.E2EERequired, st.Fields = required, mesh.StateE2EERequired
	})
	if !ok {
		return err
	}
	now := s.e2eeRequired(info)
	p.log.Info("room e2ee requirement changed", "required", now)
	sec := secE2EEOff
	if now {
		sec = secE2EEOn
	}
	r.sendSecurity(sec, p)
	return nil
}

// relayE2EEKey handles e2ee-key: an opaque blob of the managed-key
// exchange from p to participant to, on this node or, over the cascade,
// on another bridge of the meeting. The server never reads the blob. A
// recipient that is not in the meeting (it left) is not an error: the
// blob is dropped.
func (s *Server) relayE2EEKey(p *participant, to, blob string) {
	r := p.room
	m := &wire.Message{Type: wire.TypeE2EEKey, Participant: p.id, Blob: blob}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.participants {
		if o.id == to && o != p {
			o.send(m)
			return
		}
	}
	if r.casc.remote[to] != nil {
		r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeKey, By: p.id, ID: to, K: blob})
	}
}

// remoteE2EEKeyLocked delivers a key blob another bridge relayed, when its
// recipient is here and its sender is that bridge's participant. r.mu is
// held.
func (r *room) remoteE2EEKeyLocked(node string, m *cascadeMsg) {
	if rp := r.casc.remote[m.By]; rp == nil || rp.node != node {
		return
	}
	for _, o := range r.participants {
		if o.id == m.ID {
			o.send(&wire.Message{Type: wire.TypeE2EEKey, Participant: m.By, Blob: m.K})
			return
		}
	}
}

// sendE2EELocked tells the meeting's other bridges that p encrypts, when
// it does (cascade message e2ee). r.mu is held.
func (r *room) sendE2EELocked(p *participant) {
	if p.e2ee {
		r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeE2EE, ID: p.id})
	}
}

// remoteE2EELocked notes that a participant of node encrypts and tells
// the local participants. r.mu is held.
func (r *room) remoteE2EELocked(node, id string) {
	rp := r.casc.remote[id]
	if rp == nil || rp.node != node || rp.info.E2EE {
		return
	}
	rp.info.E2EE = true
	m := &wire.Message{Type: wire.TypeParticipantUpdated, Participants: []wire.Participant{rp.info}}
	for _, o := range r.participants {
		o.send(m)
	}
}

// withoutE2EE returns m with its participants' E2EE flags cleared (a copy
// when any was set): the flag crosses the cascade in e2ee messages only.
func withoutE2EE(m *cascadeMsg) *cascadeMsg {
	set := false
	for _, p := range m.P {
		set = set || p.E2EE
	}
	if !set {
		return m
	}
	c := *m
	c.P = make([]wire.Participant, len(m.P))
	for i, p := range m.P {
		p.E2EE = false
		c.P[i] = p
	}
	return &c
}
