package signaling

import (
	"time"

	"github.com/meshmeet/meshmeet/relay"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// The cascade: a meeting whose participants entered through several nodes.
// Each node keeps its own participants (sessions, media) and learns the
// others' from the meeting's other bridges in relay room messages
// (cascadewire.go), carried over the relay's mutually authenticated QUIC
// links and only to the nodes that hold the meeting:
//
//   - a node creating its side of a room attaches it to the relay with the
//     room's other bridges from the directory, and reports the bridge
//     room's own tracks (the relay imports the others' tracks into it, so
//     remote tracks reach local participants as local ones do, with the
//     remote participant's ID);
//   - a node that sees a peer attach the meeting (a newcomer, or a peer
//     back after a link break) adds it to the room's peers and sends its
//     full state: its local participants and the room's chat history;
//   - every change on a node goes to the others as a delta: a participant
//     joined or changed (upsert), left, or chatted;
//   - a peer that detaches the meeting, or whose link stays down for
//     Config.PeerGrace, loses its participants from the local roster.
//
// Active speaker needs no message: each bridge computes it from all the
// audio it forwards, imported tracks included (their RTP keeps the audio
// level extension).
//
// All cascade state changes but the sending ones run on Run's goroutine
// (the relay callbacks enqueue), except joins and leaves, which hold r.mu.

// cascadeRoom is the cascade state of a room. Guarded by room.mu.
type cascadeRoom struct {
	// peers are the other nodes holding the meeting that this node attached
	// it to: the directory's bridges at each local join, plus nodes that
	// attached it since.
	peers map[string]bool
	// remote are the participants on other nodes, by participant ID.
	remote map[string]*remoteParticipant
	// remoteOrder keeps remote in arrival order for welcomes.
	remoteOrder []string
	// nodeGen is the generation of the last full state from each node.
	nodeGen map[string]uint64
	// seen holds the IDs of recent chat messages (kept or not), so a chat
	// heard twice (deltas and history from several nodes) is shown once.
	seen     map[string]bool
	seenRing []string
	// gen numbers this node's full states.
	gen uint64
}

// remoteParticipant is a participant on another node.
type remoteParticipant struct {
	node string
	info wire.Participant
	gen  uint64 // full-state generation it was last seen in
}

// maxSeenChats bounds the chat IDs a room remembers for deduplication.
const maxSeenChats = 512

func newCascadeRoom() *cascadeRoom {
	return &cascadeRoom{
		peers:   map[string]bool{},
		remote:  map[string]*remoteParticipant{},
		nodeGen: map[string]uint64{},
		seen:    map[string]bool{},
	}
}

// markSeen records a chat ID; it reports false if it was already seen.
func (c *cascadeRoom) markSeen(id string) bool {
	if c.seen[id] {
		return false
	}
	c.seen[id] = true
	c.seenRing = append(c.seenRing, id)
	if len(c.seenRing) > maxSeenChats {
		delete(c.seen, c.seenRing[0])
		c.seenRing = c.seenRing[1:]
	}
	return true
}

// cascading reports whether rooms span bridges.
func (s *Server) cascading() bool { return s.cfg.Relay != nil }

// attachLocked attaches r to the relay with its peer set plus nodes, the
// other bridges the directory lists. r.mu is held; the relay calls made
// do not call back into signaling.
func (r *room) attachLocked(nodes map[string]int) {
	s := r.srv
	if !s.cascading() || r.closed {
		return
	}
	changed := r.casc.peers == nil
	for n := range nodes {
		if n != s.cfg.NodeName && !r.casc.peers[n] {
			r.casc.peers[n] = true
			changed = true
		}
	}
	if !changed && r.attached {
		return
	}
	peers := make([]relay.Peer, 0, len(r.casc.peers))
	for n := range r.casc.peers {
		peers = append(peers, relay.Peer{Node: n, Addr: s.cfg.RelayAddr(n)})
	}
	if err := s.cfg.Relay.AttachRoom(r.conference, r.media, peers); err != nil {
		r.srv.log.Warn("relay attach", "room", r.logID, "err", err)
		return
	}
	r.attached = true
}

// sendLocked sends one cascade message to the meeting's other bridges.
// r.mu is held, so messages leave in the order of the changes they report.
func (r *room) sendLocked(m *cascadeMsg) {
	s := r.srv
	if !s.cascading() || !r.attached || r.closed {
		return
	}
	data, err := encodeCascade(m)
	if err != nil {
		s.log.Warn("cascade message not sent", "room", r.logID, "err", err)
		return
	}
	if err := s.cfg.Relay.SendRoomMessage(r.conference, data); err != nil {
		s.log.Debug("cascade message not sent", "room", r.logID, "err", err)
	}
}

// sendStateLocked sends this node's full state: its participants (in
// chunks of one generation, the last marked) and the room's chat history.
// r.mu is held.
func (r *room) sendStateLocked() {
	if !r.srv.cascading() || !r.attached || r.closed {
		return
	}
	r.casc.gen++
	gen := r.casc.gen
	ps := make([]wire.Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p.info())
	}
	for {
		n := min(len(ps), maxCascadeParticipants)
		r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeRoster, Gen: gen, Last: n == len(ps), P: ps[:n]})
		ps = ps[n:]
		if len(ps) == 0 {
			break
		}
	}
	var chunk []cascadeChat
	size := 0
	for _, h := range r.history {
		c := cascadeChat{ID: h.id, Participant: h.m.Participant, Name: h.m.Name, Text: h.m.Text, TS: h.m.TS}
		cs := chatCost(h.m) + len(c.ID) + 6*len(c.Text) // worst-case JSON escaping
		if len(chunk) > 0 && (size+cs > relay.MaxRoomMessage/2 || len(chunk) >= maxCascadeChats) {
			r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeChatT, C: chunk})
			chunk, size = nil, 0
		}
		chunk = append(chunk, c)
		size += cs
	}
	if len(chunk) > 0 {
		r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeChatT, C: chunk})
	}
	if len(r.lobby) > 0 {
		r.sendLobbyLocked()
	}
	for _, p := range r.participants {
		r.sendE2EELocked(p)
	}
}

// detachLocked ends the room's cascade when its last local participant
// left. r.mu is held.
func (r *room) detachLocked() {
	if r.srv.cascading() && r.attached {
		r.srv.cfg.Relay.DetachRoom(r.conference)
		r.attached = false
	}
}

// RoomMessage implements relay.Config.OnRoomMessage: a cascade message from
// node about the meeting conferenceID. It copies data and returns.
func (s *Server) RoomMessage(conferenceID, node string, data []byte) {
	m, err := decodeCascade(data)
	if err != nil {
		s.cascadeBad.Add(1)
		s.log.Debug("cascade message refused", "peer", node, "err", err)
		return
	}
	s.events.push(func() {
		if r := s.conference(conferenceID); r != nil {
			r.apply(node, m)
		}
	})
}

// RoomAttached implements relay.Config.OnRoomAttach: node attached a
// meeting held here, so it gets this node's state.
func (s *Server) RoomAttached(conferenceID, node string) {
	s.events.push(func() {
		r := s.conference(conferenceID)
		if r == nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attachLocked(map[string]int{node: 1})
		r.sendStateLocked()
	})
}

// RoomDetached implements relay.Config.OnRoomDetach: node holds no
// participant of the meeting any more.
func (s *Server) RoomDetached(conferenceID, node string) {
	s.events.push(func() {
		if r := s.conference(conferenceID); r != nil {
			r.dropNode(node)
		}
	})
}

// LinkUp implements relay.Config.OnLinkUp: state sent while the link was
// down was lost, so every shared room's state goes again.
func (s *Server) LinkUp(node string) {
	s.events.push(func() {
		s.mu.Lock()
		if t := s.linkDown[node]; t != nil {
			t.Stop()
			delete(s.linkDown, node)
		}
		s.mu.Unlock()
		for _, r := range s.conferenceRooms() {
			r.mu.Lock()
			if r.casc.peers[node] {
				r.sendStateLocked()
			}
			r.mu.Unlock()
		}
	})
}

// LinkDown implements relay.Config.OnLinkDown: unless the link comes back
// within PeerGrace, the node is taken for dead and its participants leave
// every local roster.
func (s *Server) LinkDown(node string) {
	s.events.push(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.linkDown[node] != nil || s.stopping() {
			return
		}
		var t *time.Timer
		t = time.AfterFunc(s.cfg.PeerGrace, func() {
			s.events.push(func() {
				s.mu.Lock()
				current := s.linkDown[node] == t
				if current {
					delete(s.linkDown, node)
				}
				s.mu.Unlock()
				if !current {
					return
				}
				s.log.Info("cascade peer gone", "peer", node)
				for _, r := range s.conferenceRooms() {
					r.dropNode(node)
				}
			})
		})
		s.linkDown[node] = t
	})
}

// conference returns the live room of a conference ID, or nil.
func (s *Server) conference(id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conferences[id]
}

// conferenceRooms returns the live rooms.
func (s *Server) conferenceRooms() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := make([]*room, 0, len(s.conferences))
	for _, r := range s.conferences {
		rs = append(rs, r)
	}
	return rs
}

// apply applies one decoded cascade message from node.
func (r *room) apply(node string, m *cascadeMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	switch m.T {
	case cascadeRoster:
		r.casc.nodeGen[node] = m.Gen
		for _, p := range m.P {
			r.upsertLocked(node, p, m.Gen)
		}
		if m.Last {
			for _, id := range append([]string(nil), r.casc.remoteOrder...) {
				if rp := r.casc.remote[id]; rp.node == node && rp.gen != m.Gen {
					r.removeRemoteLocked(id)
				}
			}
		}
	case cascadeUpsert:
		for _, p := range m.P {
			r.upsertLocked(node, p, r.casc.nodeGen[node])
		}
	case cascadeLeft:
		if rp := r.casc.remote[m.ID]; rp != nil && rp.node == node {
			r.removeRemoteLocked(m.ID)
		}
	case cascadeChatT:
		for _, c := range m.C {
			r.remoteChatLocked(c)
		}
	case cascadeMod:
		r.remoteModerationLocked(node, m)
	case cascadeLobby:
		r.remoteLobbyLocked(node, m.P)
	case cascadeKey:
		r.remoteE2EEKeyLocked(node, m)
	case cascadeE2EE:
		r.remoteE2EELocked(node, m.ID)
	}
}

// upsertLocked adds or updates a remote participant and tells the local
// ones. A participant ID that is local is ignored; one that another node
// held now belongs to node: the participant moved there with its resume
// secret (a drain or a failover, resume.go), and the old node's leave or
// death must not remove it.
func (r *room) upsertLocked(node string, p wire.Participant, gen uint64) {
	rp := r.casc.remote[p.ID]
	if rp == nil {
		for _, o := range r.participants {
			if o.id == p.ID {
				return
			}
		}
		if len(r.casc.remote) >= maxRemoteParticipants {
			r.srv.cascadeBad.Add(1)
			return
		}
		r.casc.remote[p.ID] = &remoteParticipant{node: node, info: p, gen: gen}
		r.casc.remoteOrder = append(r.casc.remoteOrder, p.ID)
		m := &wire.Message{Type: wire.TypeParticipantJoined, Participants: []wire.Participant{p}}
		for _, o := range r.participants {
			o.send(m)
		}
		return
	}
	rp.node = node
	rp.gen = gen
	p.E2EE = p.E2EE || rp.info.E2EE // carried by e2ee messages only
	if rp.info == p {
		return
	}
	rp.info = p
	m := &wire.Message{Type: wire.TypeParticipantUpdated, Participants: []wire.Participant{p}}
	for _, o := range r.participants {
		o.send(m)
	}
}

// removeRemoteLocked removes a remote participant and tells the local ones.
func (r *room) removeRemoteLocked(id string) {
	delete(r.casc.remote, id)
	for i, o := range r.casc.remoteOrder {
		if o == id {
			r.casc.remoteOrder = append(r.casc.remoteOrder[:i], r.casc.remoteOrder[i+1:]...)
			break
		}
	}
	m := &wire.Message{Type: wire.TypeParticipantLeft, Participant: id}
	for _, o := range r.participants {
		o.send(m)
	}
}

// dropNode removes every participant of node from the room's roster.
func (r *room) dropNode(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.casc.nodeGen, node)
	for _, id := range append([]string(nil), r.casc.remoteOrder...) {
		if r.casc.remote[id].node == node {
			r.removeRemoteLocked(id)
		}
	}
	if r.dropLobbyOfLocked(node) {
		r.tellLobbyLocked()
	}
}

// remoteChatLocked shows a chat message from another node's participant,
// once, and keeps it for late joiners.
func (r *room) remoteChatLocked(c cascadeChat) {
	if !r.casc.markSeen(c.ID) {
		return
	}
	m := &wire.Message{Type: wire.TypeChat, Participant: c.Participant, Name: c.Name, Text: c.Text, TS: c.TS}
	r.keepLocked(c.ID, m, chatCost(m))
	s := r.srv
	for _, o := range r.participants {
		if len(o.out) >= chatQueue {
			s.chatDropped.Add(1)
			continue
		}
		o.send(m)
	}
}

// remoteParticipantsLocked lists the remote participants for a welcome.
func (r *room) remoteParticipantsLocked() []wire.Participant {
	out := make([]wire.Participant, 0, len(r.casc.remoteOrder))
	for _, id := range r.casc.remoteOrder {
		out = append(out, r.casc.remote[id].info)
	}
	return out
}
