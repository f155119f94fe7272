package signaling

import (
	"context"

	"golang.org/x/time/rate"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Moderation (docs/security.md, docs/protocol.md).
//
// Soft moderation, the default: every participant may mute another's
// microphone (the muted client mutes itself; it may unmute), ask another
// to stop its camera, remove another from the meeting, turn the lobby on
// or off, admit or deny waiting people (lobby.go) and end the meeting for
// all. With Config.StrongModeration (--auth jwt) only participants whose
// join carried a moderator token may; anyone else gets a not-allowed
// error and nothing happens.
//
// Every action is shown to everyone in the meeting, on every bridge, in a
// moderation event {action, by, participant}: the node of the actor tells
// its participants and sends the action to the meeting's other bridges
// (cascade "mod" message); each of them tells its own participants and
// carries out what concerns the participants it holds:
//
//   - remove: the target's session ends (error removed), which closes its
//     PeerConnections, ends its TURN allocations (Config.SessionEnded) and
//     unpublishes its tracks, here and, through the relay, on every
//     bridge that imported them; its resume secret is revoked for the
//     room on every node that learns of the removal;
//   - end: the same for every participant and waiting person;
//   - mute, stop-camera: the target's client acts on the event it
//     receives (the server does not force it: soft, as in Jitsi Meet);
//   - admit, deny, lobby-on, lobby-off: lobby.go.

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

// errNotModerator answers a moderation message from a participant who may
// not moderate. Not fatal.
var errNotModerator = &wire.Error{Code: wire.CodeNotAllowed, Message: "only moderators may do this in this meeting"}

// errRemoved ends the session of a removed participant, and every session
// of a meeting ended for all.
var errRemoved = &wire.Error{Code: wire.CodeRemoved, Message: "a moderator removed you from the meeting"}

// errModerationLimited answers a moderation action past the room's
// budget. Not fatal.
var errModerationLimited = &wire.Error{Code: wire.CodeModerationLimited, Message: "too many moderation actions in this meeting: try again in a moment"}

// A room takes at most modRate moderation actions a second, in bursts of
// modBurst, from all its participants on this node together: every action
// is shown to everyone, so under soft moderation one participant could
// otherwise flood the meeting with notices at its own message rate.
const (
	modRate  = 5
	modBurst = 20
)

// allowModerationLocked spends one action of the room's budget, or
// reports that it is spent. r.mu is held.
func (r *room) allowModerationLocked() bool {
	if r.modBudget == nil {
		r.modBudget = rate.NewLimiter(modRate, modBurst)
	}
	return r.modBudget.Allow()
}

// moderationAction maps a client's moderation message to its action.
var moderationAction = map[wire.Type]string{
	wire.TypeMuteParticipant:   wire.ActionMute,
	wire.TypeStopCamera:        wire.ActionStopCamera,
	wire.TypeRemoveParticipant: wire.ActionRemove,
	wire.TypeEndMeeting:        wire.ActionEnd,
	wire.TypeAdmit:             wire.ActionAdmit,
	wire.TypeDeny:              wire.ActionDeny,
}

// moderate handles a moderation message of p: action on target (""
// for end). An unknown target (it left meanwhile) is ignored.
func (s *Server) moderate(p *participant, action, target string) error {
	if !p.mayModerate() {
		p.send(&wire.Message{Type: wire.TypeError, Error: errNotModerator})
		return nil
	}
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	switch action {
	case wire.ActionAdmit, wire.ActionDeny:
		if !r.waitingLocked(target) {
			return nil
		}
	case wire.ActionEnd:
	default:
		if !r.inMeetingLocked(target) {
			return nil
		}
	}
	if !r.allowModerationLocked() {
		p.send(&wire.Message{Type: wire.TypeError, Error: errModerationLimited})
		return nil
	}
	p.log.Info("moderation", "action", action, "target", target)
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeMod, A: action, By: p.id, ID: target})
	r.applyModerationLocked(action, p.id, target)
	return nil
}

// inMeetingLocked reports whether id is a participant of the meeting, on
// this node or another. r.mu is held.
func (r *room) inMeetingLocked(id string) bool {
	if r.casc.remote[id] != nil {
		return true
	}
	for _, o := range r.participants {
		if o.id == id {
			return true
		}
	}
	return false
}

// applyModerationLocked shows a moderation action to this node's
// participants and carries out what concerns those it holds. Called for
// the actor's node's own actions and for those other bridges report.
// r.mu is held; sessions are ended on other goroutines (leave takes
// r.mu).
func (r *room) applyModerationLocked(action, by, target string) {
	ev := &wire.Message{Type: wire.TypeModeration, Action: action, By: by, Participant: target}
	switch action {
	case wire.ActionAdmit, wire.ActionDeny:
		// Only those who may moderate see the lobby's comings and goings.
		for _, o := range r.participants {
			if o.mayModerate() {
				o.send(ev)
			}
		}
	default:
		for _, o := range r.participants {
			if !removes(action, target, o) {
				o.send(ev)
			}
		}
	}
	s := r.srv
	switch action {
	case wire.ActionRemove:
		s.RevokeResume(r.key, target)
		for _, o := range r.participants {
			if o.id == target {
				go o.removed(ev)
			}
		}
	case wire.ActionEnd:
		for _, o := range r.participants {
			s.RevokeResume(r.key, o.id)
			go o.removed(ev)
		}
		for _, w := range r.lobby {
			go w.fail(errLobbyDenied)
		}
	case wire.ActionAdmit:
		for _, w := range r.lobby {
			if w.id == target {
				go s.admit(w)
			}
		}
	case wire.ActionDeny:
		for _, w := range r.lobby {
			if w.id == target {
				go w.fail(errLobbyDenied)
			}
		}
	case wire.ActionLobbyOn, wire.ActionLobbyOff:
		r.lobbyOn = action == wire.ActionLobbyOn
		if !r.lobbyOn {
			// Lobby off: whoever waits comes in.
			for _, w := range r.lobby {
				go s.admit(w)
			}
		}
		r.tellLobbyLocked()
	}
}

// removes reports whether the action removes o from the meeting.
func removes(action, target string, o *participant) bool {
	return action == wire.ActionEnd || (action == wire.ActionRemove && o.id == target)
}

// removed ends p's session after telling it, ahead of anything still
// queued for it, who removed it (ev).
func (p *participant) removed(ev *wire.Message) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		writeNow(ctx, c.ws, ev)
		cancel()
	}
	p.fail(errRemoved)
}

// remoteModerationLocked applies a moderation action another bridge
// reports. The actor must be one of that bridge's participants as it
// reported them; anything else is refused and counted. r.mu is held.
func (r *room) remoteModerationLocked(node string, m *cascadeMsg) {
	if rp := r.casc.remote[m.By]; rp == nil || rp.node != node {
		r.srv.cascadeBad.Add(1)
		return
	}
	switch m.A {
	case secPasswordSet, secPasswordRemoved, secE2EEOn, secE2EEOff:
		ev := securityEvent(m.A, m.By)
		for _, o := range r.participants {
			o.send(ev)
		}
		return
	}
	r.applyModerationLocked(m.A, m.By, m.ID)
}

// sendSecurity tells the room's participants on this node and, over the
// cascade, on its other bridges that p changed its security (sec, one of
// the sec* changes).
func (r *room) sendSecurity(sec string, p *participant) {
	ev := securityEvent(sec, p.id)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.participants {
		o.send(ev)
	}
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeMod, A: sec, By: p.id})
}
