package signaling

import (
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// The lobby (docs/security.md). A moderator turns it on with set-lobby; the
// directory keeps it (mesh.RoomState.Locked), so it holds on every bridge
// of the meeting. While it is on, a join that does not create the room
// (and, under strong moderation, does not carry a moderator token) is
// counted in the directory like any participant but waits in the lobby of
// its node's side of the room: it is sent one waiting message and nothing
// else — no roster, no tracks, no media (it has no bridge participant), no
// chat, no speaker, no password, no participant ID or secret. Those who may
// moderate, on every bridge, see the waiting people (lobby message; the
// nodes exchange their waiting lists in cascade "lobby" messages) and admit
// or deny them. Admitted, the waiting person gets its welcome and enters
// as if it had just joined; denied, it gets the refusal every refused join
// gets (refuse.go), so a denial says nothing a wrong password would not.
// Turning the lobby off admits everyone waiting. A waiting person whose
// socket drops leaves (it has no secret to resume with).

// maxLobby bounds the people waiting in one room on one node; a join past
// it is refused as full.
const maxLobby = 100

// errLobbyDenied ends the session of a waiting person a moderator denied,
// or whose meeting ended: the generic refusal.
var errLobbyDenied = errRefused

// errLobbyUnavailable: the directory could not store the lobby change.
var errLobbyUnavailable = &wire.Error{Code: wire.CodeUnavailable, Message: "directory unavailable: the lobby was not changed"}

// enterLobbyLocked puts a new participant of a room whose lobby is on in
// the lobby, and reports whether it did. It returns errFull when the
// lobby is full. r.mu is held.
func (s *Server) enterLobbyLocked(r *room, p *participant, info mesh.Room, created bool) (bool, error) {
	r.lobbyOn = info.Locked
	if !info.Locked || created || (s.cfg.StrongModeration && p.moderator) {
		return false, nil
	}
	if len(r.lobby) >= maxLobby {
		return false, errFull
	}
	p.ready = make(chan struct{})
	p.gone = make(chan struct{})
	p.waiting = true
	p.lobbyE2EE = s.e2eeRequired(info)
	r.lobby = append(r.lobby, p)
	p.out <- &wire.Message{Type: wire.TypeWaiting} // the queue is empty
	r.attachLocked(info.Bridges)
	r.sendLobbyLocked()
	r.tellLobbyLocked()
	return true, nil
}

// waitingLocked reports whether id waits in the meeting's lobby, on this
// node or another. r.mu is held.
func (r *room) waitingLocked(id string) bool {
	if r.remoteLobby[id] != nil {
		return true
	}
	for _, w := range r.lobby {
		if w.id == id {
			return true
		}
	}
	return false
}

// removeWaitingLocked takes p out of the lobby and reports whether it was
// there. r.mu is held.
func (r *room) removeWaitingLocked(p *participant) bool {
	for i, w := range r.lobby {
		if w == p {
			r.lobby = append(r.lobby[:i], r.lobby[i+1:]...)
			r.sendLobbyLocked()
			r.tellLobbyLocked()
			return true
		}
	}
	return false
}

// sendLobbyLocked sends this node's waiting list to the meeting's other
// bridges. r.mu is held.
func (r *room) sendLobbyLocked() {
	ps := make([]wire.Participant, 0, len(r.lobby))
	for _, w := range r.lobby {
		ps = append(ps, wire.Participant{ID: w.id, Name: w.name})
	}
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeLobby, P: ps})
}

// lobbyMsgLocked is the lobby message for those who may moderate: whether
// the lobby is on and who waits, here and on the other bridges (at most
// maxLobby people). r.mu is held.
func (r *room) lobbyMsgLocked() *wire.Message {
	on := r.lobbyOn
	m := &wire.Message{Type: wire.TypeLobby, Lobby: &on}
	for _, w := range r.lobby {
		m.Participants = append(m.Participants, wire.Participant{ID: w.id, Name: w.name})
	}
	for _, id := range r.remoteLobbyOrder {
		if len(m.Participants) >= maxLobby {
			break
		}
		m.Participants = append(m.Participants, r.remoteLobby[id].info)
	}
	return m
}

// tellLobbyLocked sends the lobby message to this node's participants who
// may moderate. r.mu is held.
func (r *room) tellLobbyLocked() {
	m := r.lobbyMsgLocked()
	for _, o := range r.participants {
		if o.mayModerate() {
			o.send(m)
		}
	}
}

// showLobbyLocked sends a newly entered participant who may moderate the
// lobby's state, when there is anything to see. r.mu is held.
func (r *room) showLobbyLocked(p *participant) {
	if p.mayModerate() && (r.lobbyOn || len(r.lobby) > 0 || len(r.remoteLobby) > 0) {
		p.send(r.lobbyMsgLocked())
	}
}

// remoteLobbyLocked replaces node's waiting list. r.mu is held.
func (r *room) remoteLobbyLocked(node string, ps []wire.Participant) {
	r.dropLobbyOfLocked(node)
	if r.remoteLobby == nil {
		r.remoteLobby = map[string]*remoteParticipant{}
	}
	for _, p := range ps {
		if r.remoteLobby[p.ID] != nil || len(r.remoteLobby) >= maxRemoteParticipants {
			continue
		}
		r.remoteLobby[p.ID] = &remoteParticipant{node: node, info: wire.Participant{ID: p.ID, Name: p.Name}}
		r.remoteLobbyOrder = append(r.remoteLobbyOrder, p.ID)
	}
	r.tellLobbyLocked()
}

// dropLobbyOfLocked forgets node's waiting people. r.mu is held.
func (r *room) dropLobbyOfLocked(node string) bool {
	dropped := false
	kept := r.remoteLobbyOrder[:0]
	for _, id := range r.remoteLobbyOrder {
		if r.remoteLobby[id].node == node {
			delete(r.remoteLobby, id)
			dropped = true
			continue
		}
		kept = append(kept, id)
	}
	r.remoteLobbyOrder = kept
	return dropped
}

// admit lets a waiting participant in: it gets its welcome, the room's
// chat and speaker, the others see it join, and it gets its media. It
// does nothing if p no longer waits.
func (s *Server) admit(p *participant) {
	ice := s.cfg.ICEServers(p.session)
	r := p.room
	r.mu.Lock()
	if r.closed || !r.removeWaitingLocked(p) {
		r.mu.Unlock()
		return
	}
	welcome := s.welcomeLocked(r, p, ice, false)
	welcome.E2EERequired = ptr(p.lobbyE2EE)
	p.send(welcome)
	for _, h := range r.history {
		p.send(h.m)
	}
	if r.speaker != "" {
		p.send(&wire.Message{Type: wire.TypeSpeaker, Participant: r.speaker})
	}
	joined := &wire.Message{Type: wire.TypeParticipantJoined, Participants: []wire.Participant{p.info()}}
	for _, o := range r.participants {
		o.send(joined)
	}
	r.participants = append(r.participants, p)
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeUpsert, P: []wire.Participant{p.info()}})
	r.showLobbyLocked(p)
	r.mu.Unlock()

	media, err := s.joinMedia(r, p)
	if err != nil {
		p.log.Error("bridge join", "err", err)
		p.fail(errInternal)
		return
	}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.media = media
		p.waiting = false
	}
	p.mu.Unlock()
	if closed {
		media.Close()
		return
	}
	close(p.ready)
	p.log.Debug("participant admitted")
}

// awaitAdmission holds a waiting participant's messages, but leave and
// ping, until it is admitted; it returns errLeft if it leaves first.
func (p *participant) awaitAdmission(t wire.Type) error {
	if p.ready == nil || t == wire.TypeLeave || t == wire.TypePing {
		return nil
	}
	select {
	case <-p.ready:
		return nil
	case <-p.gone:
		return errLeft
	}
}

// waitingNow reports whether p waits in the lobby.
func (p *participant) waitingNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// setLobby handles set-lobby: a moderator turns the meeting's lobby on or
// off in the directory; every bridge of the meeting is told.
func (s *Server) setLobby(p *participant, on bool) error {
	if !p.mayModerate() {
		p.send(&wire.Message{Type: wire.TypeError, Error: errNotModerator})
		return nil
	}
	r := p.room
	if _, ok, err := s.setRoomState(p, "set lobby", errLobbyUnavailable, func(st *mesh.RoomState) {
		st.Locked, st.Fields = on, mesh.StateLocked
	}); !ok {
		return err
	}
	r.mu.Lock()
	allowed := r.allowModerationLocked()
	r.mu.Unlock()
	if !allowed {
		p.send(&wire.Message{Type: wire.TypeError, Error: errModerationLimited})
		return nil
	}
	action := wire.ActionLobbyOff
	if on {
		action = wire.ActionLobbyOn
	}
	p.log.Info("moderation", "action", action)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeMod, A: action, By: p.id})
	r.applyModerationLocked(action, p.id, "")
	return nil
}

// joinMedia makes p's participant in the room's bridge room. The bridge
// may offer at once: p's welcome must be queued already.
func (s *Server) joinMedia(r *room, p *participant) (*bridge.Participant, error) {
	return r.media.Join(p.id, bridge.ParticipantEvents{
		Candidate: func(pc bridge.PC, ci *webrtc.ICECandidateInit) {
			if ci == nil {
				return
			}
			p.send(&wire.Message{Type: wire.TypeCandidate, PC: wirePC(pc), Candidate: wireCandidate(ci)})
		},
		Offer: func(sdp string) {
			p.send(&wire.Message{Type: wire.TypeOffer, PC: wire.PCSub, SDP: sdp})
		},
		Failed: func(err error) {
			p.log.Debug("media failed", "reason", logReason(err))
			go p.fail(errMediaFailed)
		},
		Forwarding: p.setForwarding, // forwarding.go
	})
}
