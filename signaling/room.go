package signaling

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

const (
	// chatHistory bounds the chat messages a room keeps for late joiners;
	// they die with the room.
	chatHistory = 50
	// chatHistoryRoomBytes bounds the bytes of one room's kept chat (as
	// chatCost counts them); Config.ChatHistoryBytes bounds the node's.
	chatHistoryRoomBytes = 64 << 10
	// A room relays at most roomChatRate chat messages a second (bursts of
	// roomChatBurst) and roomChatBytes bytes of text a second (bursts of
	// roomChatBytesBurst): every message goes to every participant, so the
	// room, not the sender, is what the budget protects. Past it a message
	// is refused with a non-fatal chat-limited error to its sender.
	roomChatRate       = 10
	roomChatBurst      = 30
	roomChatBytes      = 16 << 10
	roomChatBytesBurst = 64 << 10
	// chatQueue is the depth of a participant's send queue past which chat
	// to it is dropped (and counted) rather than queued, so that a slow
	// reader loses chat instead of its session, and the rest of the queue
	// stays free for negotiation and room events.
	chatQueue = sendQueue / 2
	// directoryTimeout bounds one directory call on join or leave.
	directoryTimeout = 10 * time.Second
)

// room is one meeting as this node's participants see it.
type room struct {
	srv        *Server      // static
	key        mesh.RoomKey // static
	logID      string       // static
	conference string       // static
	media      *bridge.Room // static

	// mu guards the following fields.
	mu           sync.Mutex
	participants []*participant // in join order
	history      []chatEntry
	historyBytes int           // chatCost of history; counted in srv.chatBytes
	chatMsgs     *rate.Limiter // the room's chat budget, in messages
	chatBytes    *rate.Limiter // and in bytes
	speaker      string        // the dominant speaker's participant ID
	closed       bool
	casc         *cascadeRoom // the meeting on other bridges (cascade.go)
	attached     bool         // attached to the relay

	// The lobby (lobby.go): whether it is on, as this node last learned
	// it; who waits in it on this node; and who waits on the meeting's
	// other bridges, by ID, in arrival order.
	lobbyOn          bool
	lobby            []*participant
	remoteLobby      map[string]*remoteParticipant
	remoteLobbyOrder []string
	talk             speakerStats  // speakerstats.go
	modBudget        *rate.Limiter // moderation.go; made at the first action
}

// chatEntry is a kept chat message and its ID, unique in the meeting
// across bridges.
type chatEntry struct {
	id string
	m  *wire.Message
}

// participant is one person in a room on this node.
type participant struct {
	id      string       // static; shown to the room
	secret  string       // static; the resume secret, shown to p only
	session string       // static; ICEServers/SessionEnded ID, shown to no client
	src     netip.Prefix // static; the source that joined it (limits.go)
	name    string       // static
	room    *room        // static
	log     *slog.Logger // static
	out     chan *wire.Message

	// media is set once in join, before any message is handled; guarded
	// by mu for leave, which may race with join.
	media *bridge.Participant

	mu     sync.Mutex
	conn   *conn       // current socket; nil while detached; guarded by mu
	timer  *time.Timer // resume window; guarded by mu
	muted  wire.Muted  // guarded by room.mu
	closed bool        // guarded by mu

	// moderator is true when the join carried a moderator token (set
	// before the participant is shown to anyone; static after). Only read
	// under Config.StrongModeration (moderation.go).
	moderator bool
	// ready and gone are made for a participant that waits in the lobby
	// (lobby.go): ready is closed once it is admitted and has its media,
	// gone when it leaves. Static; nil for everyone else.
	ready, gone chan struct{}
	// waiting is true while it waits in the lobby; guarded by mu.
	waiting bool
	// lobbyE2EE is whether the room required end-to-end encryption when
	// it entered the lobby, for its welcome. Static.
	lobbyE2EE bool
	// regionPin are the only regions the participant may be held in
	// (none: any): its node's --region-pin, its token's regions claim
	// and its meeting's stored pin (mesh.Room.Pin) together, as its join
	// was admitted under. A drain moves it only into them (drain.go).
	// Static.
	regionPin []string
	// pending is the directory join of a mover admitted without a
	// directory leader, going on in the background (resume.go); nil for
	// every other participant. Static.
	pending *pendingJoin
	// e2ee: the client said at join that it encrypts its media end to
	// end (e2ee.go). Static.
	e2ee bool
	// fwd: the videos last-N pauses for it (forwarding.go).
	fwd forwarding
}

// send queues a message for the participant's socket. It never blocks: a
// participant that falls sendQueue messages behind is removed.
func (p *participant) send(m *wire.Message) {
	select {
	case p.out <- m:
	default:
		go p.fail(errSlowClient)
	}
}

// fail ends the participant's session with a fatal error message.
func (p *participant) fail(err error) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		werr := errorMessage(err)
		werr.Fatal = true
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		writeNow(ctx, c.ws, &wire.Message{Type: wire.TypeError, Error: werr})
		cancel()
		c.close(4000, werr.Code)
	}
	p.room.srv.leave(p, err)
}

func (p *participant) info() wire.Participant {
	return wire.Participant{ID: p.id, Name: p.name, Muted: p.muted, E2EE: p.e2ee}
}

// join handles the first message of a session: a new participant, or the
// resume of one whose socket dropped.
func (s *Server) join(ctx context.Context, c *conn, m *wire.Message) (*participant, error) {
	if m.Version != wire.Version {
		return nil, errBadVersion
	}
	if err := s.sources.join(c.src); err != nil {
		return nil, err
	}
	key := mesh.NewRoomKey(s.cfg.RoomKey, m.Room)
	if m.Resume != nil {
		return s.resume(c, key, m.Resume)
	}
	if err := s.authorize(ctx, c, key, m); err != nil { // token, password (auth.go)
		return nil, err
	}
	pin := intersectPins(s.cfg.RegionPin, c.grant.regionPin) // place.go
	if !pinAllows(pin, s.cfg.Region) {
		s.plc.refused.Add(1)
		return nil, errPinnedFull
	}
	// Caps are checked and taken in one step, before the directory call:
	// concurrent joins cannot all pass a check and then all insert.
	if err := s.sources.addParticipant(c.src); err != nil {
		return nil, err
	}
	if err := s.reserve(key); err != nil {
		s.sources.removeParticipant(c.src)
		return nil, err
	}
	reserved := true // until p owns the slots
	defer func() {
		if reserved {
			s.release(key)
			s.sources.removeParticipant(c.src)
		}
	}()

	info, created, pending, err := s.joinDirectoryFor(ctx, c, key, pin, m.E2EE) // resume.go
	if err != nil {
		if errors.Is(err, mesh.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return nil, errUnavailable
		}
		s.log.Error("directory join", "err", err)
		return nil, errInternal
	}
	if !info.Allows(s.cfg.Region) {
		// The room is pinned to regions this node is not in (its
		// creator's pin), whichever node placed the join: take back the
		// count.
		s.plc.refused.Add(1)
		if err := s.undoJoin(key, pending, errPinnedFull); err != nil {
			s.log.Warn("directory leave", "err", err)
		}
		return nil, errPinnedFull
	}
	if info.Participants() > s.cfg.MaxRoomParticipants {
		// The room is full over all its bridges: take back the count.
		if err := s.undoJoin(key, pending, errFull); err != nil {
			s.log.Warn("directory leave", "err", err)
		}
		return nil, errFull
	}
	if err := s.checkE2EE(info, m); err != nil {
		if err := s.undoJoin(key, pending, err); err != nil {
			s.log.Warn("directory leave", "err", err)
		}
		return nil, err
	}

	id, secret := s.newIdentity(c, key) // resume.go
	p := &participant{
		id:      id,
		secret:  secret,
		session: randomID(18),
		src:     c.src,
		name:    m.Name,
		e2ee:    m.E2EE,
		out:     make(chan *wire.Message, sendQueue),
		conn:    c,

		moderator: c.grant.moderator,
		regionPin: intersectPins(pin, info.Pin), // place.go
		pending:   pending,
	}
	// From here on the session exists for ICEServers: every path out of
	// join goes through leave, which calls SessionEnded.
	ice := s.cfg.ICEServers(p.session)
	s.mu.Lock()
	if s.stopping() {
		// Shutdown has already failed the participants it saw; this one
		// would be missed.
		s.mu.Unlock()
		s.cfg.SessionEnded(p.session)
		s.undoJoin(key, pending, errShutdown)
		return nil, errShutdown
	}
	reserved = false // p's slot from here on; leave releases it
	r := s.rooms[key]
	if r == nil || r.conference != info.ConferenceID {
		r = s.newRoomLocked(key, info.ConferenceID)
	}
	p.room = r
	p.log = s.log.With("room", r.logID, "participant", p.id)
	s.participants[p.id] = p

	r.mu.Lock()
	if waits, err := s.enterLobbyLocked(r, p, info, created); waits || err != nil {
		r.mu.Unlock()
		s.mu.Unlock()
		if err != nil {
			s.leave(p, err)
			return nil, err
		}
		go s.writeLoop(p, c)
		pending.admit(p) // resume.go
		p.log.Debug("participant waits in the lobby")
		return p, nil
	}
	welcome := s.welcomeLocked(r, p, ice, false)
	welcome.E2EERequired = ptr(s.e2eeRequired(info))
	p.out <- welcome // the queue is empty: this cannot block
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
	r.attachLocked(info.Bridges)
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeUpsert, P: []wire.Participant{p.info()}})
	r.sendE2EELocked(p)
	r.showLobbyLocked(p)
	r.mu.Unlock()
	s.mu.Unlock()

	// The bridge may offer as soon as the participant exists: the welcome
	// is already queued ahead of it.
	media, err := s.joinMedia(r, p)
	if err != nil {
		p.log.Error("bridge join", "err", err)
		s.leave(p, err)
		return nil, errInternal
	}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.media = media
	}
	p.mu.Unlock()
	if closed { // left (node shutdown) while joining the bridge
		media.Close()
		return nil, errShutdown
	}

	go s.writeLoop(p, c)
	pending.admit(p) // resume.go
	p.log.Debug("participant joined", "created", created)
	return p, nil
}

// resume re-attaches a participant whose socket dropped to a new socket.
func (s *Server) resume(c *conn, key mesh.RoomKey, res *wire.Resume) (*participant, error) {
	s.mu.Lock()
	p := s.participants[res.Participant]
	s.mu.Unlock()
	if p == nil || subtle.ConstantTimeCompare([]byte(p.secret), []byte(res.Secret)) != 1 ||
		subtle.ConstantTimeCompare(p.room.key[:], key[:]) != 1 {
		return nil, errResumeFailed
	}
	// Mint before the closed check: a leave that races with this resume
	// sets closed before it calls SessionEnded, so credentials are never
	// handed out for a session already reported ended.
	ice := s.cfg.ICEServers(p.session)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errResumeFailed
	}
	old := p.conn
	p.conn = c
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	if old != nil {
		old.close(4001, "resumed elsewhere")
	}

	r := p.room
	r.mu.Lock()
	welcome := s.welcomeLocked(r, p, ice, true)
	r.mu.Unlock()
	// The welcome goes first, then whatever queued while detached.
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err := writeNow(ctx, c.ws, welcome)
	cancel()
	if err != nil {
		s.detach(p, c)
		return nil, errResumeFailed
	}
	r.mu.Lock()
	if r.speaker != "" {
		p.send(&wire.Message{Type: wire.TypeSpeaker, Participant: r.speaker})
	}
	r.mu.Unlock()
	go s.writeLoop(p, c)
	p.resendForwarding() // forwarding.go
	p.log.Debug("participant resumed")
	return p, nil
}

// welcomeLocked builds p's welcome: the room's other participants and
// tracks as they are now. r.mu is held.
func (s *Server) welcomeLocked(r *room, p *participant, ice []wire.ICEServer, resumed bool) *wire.Message {
	w := &wire.Message{
		Type:        wire.TypeWelcome,
		Version:     wire.Version,
		Participant: p.id,
		Secret:      p.secret,
		ICEServers:  ice,
		Resumed:     resumed,
		Moderator:   p.mayModerate(),
		TS:          time.Now().UnixMilli(),
	}
	for _, t := range r.media.Tracks() {
		if t.Participant != p.id {
			w.Tracks = append(w.Tracks, r.wireTrackLocked(t))
		}
	}
	for _, o := range r.participants {
		if o != p {
			w.Participants = append(w.Participants, o.info())
		}
	}
	w.Participants = append(w.Participants, r.remoteParticipantsLocked()...)
	return w
}

// detach notes that c, p's socket, is gone without a leave. p stays in the
// room, its media flowing, for the resume window.
func (s *Server) detach(p *participant, c *conn) {
	c.close(1001, "")
	if p.waitingNow() {
		// Waiting people have no secret to resume with.
		s.leave(p, errResumeExpired)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != c || p.closed {
		return // already resumed on another socket, or gone
	}
	p.conn = nil
	p.timer = time.AfterFunc(s.cfg.ResumeWindow, func() {
		p.mu.Lock()
		expired := p.conn == nil
		p.mu.Unlock()
		if expired {
			s.leave(p, errResumeExpired)
		}
	})
	p.log.Debug("participant detached")
}

// leave removes p from its room and the node. The last leave deletes the
// room, its chat and its media state. Idempotent.
func (s *Server) leave(p *participant, cause error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.gone != nil {
		close(p.gone)
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	c := p.conn
	p.conn = nil
	media := p.media
	p.mu.Unlock()
	if c != nil {
		c.close(1000, "")
	}

	r := p.room
	s.mu.Lock()
	delete(s.participants, p.id)
	s.releaseLocked(r.key)
	r.mu.Lock()
	for i, o := range r.participants {
		if o == p {
			r.participants = append(r.participants[:i], r.participants[i+1:]...)
			break
		}
	}
	waited := r.removeWaitingLocked(p)
	last := len(r.participants) == 0 && len(r.lobby) == 0
	if !waited {
		r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeLeft, ID: p.id})
	}
	if last {
		r.detachLocked()
		r.closed = true
		r.history = nil
		s.chatBytes.Add(-int64(r.historyBytes))
		r.historyBytes = 0
		if s.rooms[r.key] == r {
			delete(s.rooms, r.key)
		}
		if s.conferences[r.conference] == r {
			delete(s.conferences, r.conference)
		}
	}
	if !waited {
		left := &wire.Message{Type: wire.TypeParticipantLeft, Participant: p.id}
		for _, o := range r.participants {
			o.send(left)
		}
	}
	r.mu.Unlock()
	s.mu.Unlock()
	s.sources.removeParticipant(p.src)

	if media != nil {
		media.Close()
	}
	if last {
		r.media.Close()
	}
	s.cfg.SessionEnded(p.session)
	if err := s.undoJoin(r.key, p.pending, cause); err != nil { // resume.go
		p.log.Warn("directory leave", "err", err)
	}
	p.log.Debug("participant left", "cause", causeCode(cause), "room_closed", last)
}

// leaveDirectory counts one participant fewer on this node in the room's
// directory entry. At shutdown it tries briefly and reports no error: the
// directory drops the node's rooms when the node is declared dead.
func (s *Server) leaveDirectory(key mesh.RoomKey, cause error) error {
	timeout := directoryTimeout
	if cause == errShutdown {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.cfg.Directory.Leave(ctx, key, s.cfg.NodeName); err != nil && cause != errShutdown {
		return err
	}
	return nil
}

// reserve takes a node slot and a slot in the room, or returns errFull.
func (s *Server) reserve(key mesh.RoomKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping() {
		return errShutdown
	}
	if s.slots >= s.cfg.MaxParticipants || s.roomSlots[key] >= s.cfg.MaxRoomParticipants {
		return errFull
	}
	s.slots++
	s.roomSlots[key]++
	return nil
}

// release gives back a slot reserve took.
func (s *Server) release(key mesh.RoomKey) {
	s.mu.Lock()
	s.releaseLocked(key)
	s.mu.Unlock()
}

// releaseLocked is release with s.mu held.
func (s *Server) releaseLocked(key mesh.RoomKey) {
	s.slots--
	if n := s.roomSlots[key] - 1; n > 0 {
		s.roomSlots[key] = n
	} else {
		delete(s.roomSlots, key)
	}
}

// newRoomLocked creates the node's side of a room. s.mu is held.
func (s *Server) newRoomLocked(key mesh.RoomKey, conference string) *room {
	r := &room{
		srv: s, key: key, logID: key.LogID(s.salt), conference: conference,
		chatMsgs:  rate.NewLimiter(roomChatRate, roomChatBurst),
		chatBytes: rate.NewLimiter(roomChatBytes, roomChatBytesBurst),
		casc:      newCascadeRoom(),
	}
	rel := s.cfg.Relay
	r.media = s.cfg.Bridge.NewRoom(r.logID, bridge.RoomEvents{
		TrackPublished: func(t bridge.TrackInfo) {
			t = r.markE2EE(t)
			if rel != nil {
				rel.TrackPublished(conference, t) // does not block; ignores remote tracks
			}
			s.events.push(func() {
				wt := wireTrack(t)
				r.broadcast(&wire.Message{Type: wire.TypeTrackPublished, Track: &wt}, t.Participant)
				if wt.Kind == wire.KindVideo {
					r.afterVideoPublished(t.Participant) // forwarding.go
				}
			})
		},
		TrackUnpublished: func(t bridge.TrackInfo) {
			if rel != nil {
				rel.TrackUnpublished(conference, t)
			}
			s.events.push(func() {
				r.broadcast(&wire.Message{Type: wire.TypeTrackUnpublished, Track: ptr(wireTrack(t))}, t.Participant)
			})
		},
		DominantSpeaker: func(id string) {
			s.events.push(func() { r.setSpeaker(id) })
		},
	})
	s.rooms[key] = r
	s.conferences[conference] = r
	return r
}

// broadcast sends m to every participant but the one with ID except.
func (r *room) broadcast(m *wire.Message, except string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.participants {
		if o.id != except {
			o.send(m)
		}
	}
}

// setSpeaker records the dominant speaker, for late joiners, and tells
// everyone.
func (r *room) setSpeaker(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noteSpeakerLocked(id, time.Now())
	r.speaker = id
	m := &wire.Message{Type: wire.TypeSpeaker, Participant: id}
	for _, o := range r.participants {
		o.send(m)
	}
}

// chat relays a chat message, re-serialized from server fields, to everyone
// in the room including its sender, and keeps it for late joiners. Past the
// room's budget it returns errChatLimited and relays nothing.
func (r *room) chat(p *participant, text string) error {
	m := &wire.Message{Type: wire.TypeChat, Participant: p.id, Name: p.name, Text: text, TS: time.Now().UnixMilli()}
	id := randomID(9)
	cost := chatCost(m)
	s := r.srv
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	now := time.Now()
	if r.chatMsgs.TokensAt(now) < 1 || r.chatBytes.TokensAt(now) < float64(len(text)) {
		s.chatRefused.Add(1)
		return errChatLimited
	}
	r.chatMsgs.AllowN(now, 1)
	r.chatBytes.AllowN(now, len(text))
	r.keepLocked(id, m, cost)
	r.casc.markSeen(id)
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeChatT, C: []cascadeChat{{ID: id, Participant: p.id, Name: p.name, Text: text, TS: m.TS}}})
	for _, o := range r.participants {
		if len(o.out) >= chatQueue {
			s.chatDropped.Add(1)
			continue
		}
		o.send(m)
	}
	return nil
}

// keepLocked adds m to the room's history, dropping the oldest messages to
// stay within chatHistory messages, chatHistoryRoomBytes and the node's
// Config.ChatHistoryBytes. When the node's budget is spent by other rooms,
// m is relayed but not kept. r.mu is held.
func (r *room) keepLocked(id string, m *wire.Message, cost int) {
	s := r.srv
	if cost > chatHistoryRoomBytes {
		return
	}
	for len(r.history) > 0 && (len(r.history) >= chatHistory || r.historyBytes+cost > chatHistoryRoomBytes ||
		s.chatBytes.Load()+int64(cost) > int64(s.cfg.ChatHistoryBytes)) {
		c := chatCost(r.history[0].m)
		r.history[0] = chatEntry{}
		r.history = r.history[1:]
		r.historyBytes -= c
		s.chatBytes.Add(-int64(c))
	}
	if s.chatBytes.Add(int64(cost)) > int64(s.cfg.ChatHistoryBytes) {
		s.chatBytes.Add(-int64(cost))
		return
	}
	r.history = append(r.history, chatEntry{id: id, m: m})
	r.historyBytes += cost
}

// chatCost is what a kept chat message counts against the history budgets:
// its strings plus an estimate of the rest of the message.
func chatCost(m *wire.Message) int {
	return len(m.Text) + len(m.Name) + len(m.Participant) + 96
}

// setMuted records p's own media state and tells the others.
func (r *room) setMuted(p *participant, m wire.Muted) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.muted = m
	r.sendLocked(&cascadeMsg{V: cascadeVersion, T: cascadeUpsert, P: []wire.Participant{p.info()}})
	u := &wire.Message{Type: wire.TypeParticipantUpdated, Participants: []wire.Participant{p.info()}}
	for _, o := range r.participants {
		if o != p {
			o.send(u)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func wireTrack(t bridge.TrackInfo) wire.Track {
	kind := wire.KindVideo
	if t.Kind == webrtc.RTPCodecTypeAudio {
		kind = wire.KindAudio
	}
	return wire.Track{ID: t.ID, Participant: t.Participant, Kind: kind, Simulcast: t.Simulcast, E2EE: t.E2EE}
}

func wirePC(pc bridge.PC) wire.PC {
	if pc == bridge.PCSub {
		return wire.PCSub
	}
	return wire.PCPub
}

func pcOf(pc wire.PC) bridge.PC {
	if pc == wire.PCSub {
		return bridge.PCSub
	}
	return bridge.PCPub
}

func wireCandidate(c *webrtc.ICECandidateInit) *wire.Candidate {
	return &wire.Candidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
}

func candidateInit(c *wire.Candidate) webrtc.ICECandidateInit {
	return webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
}
