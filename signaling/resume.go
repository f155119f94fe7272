package signaling

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Resume across nodes.
//
// A participant's resume secret is not a random token known to one node:
// it is HMAC-SHA256(resume key, room key ‖ participant ID), the resume key
// derived from Config.RoomKey (itself derived from the cluster secret), so
// every node of the cluster can check it and no client can make one. A
// client that lost its node (the node died, or drained and redirected it)
// joins another node with resume {participant, secret}: that node, which
// does not hold the participant, checks the secret against the room it
// joins and, when it holds, admits the client as a new session of the same
// participant (same participant ID, the display name of its join), with new
// media (welcome.resumed is false: the client sets up new PeerConnections
// and publishes again). A resume on the node that holds the participant is
// the single-node resume of room.go: the media go on.
//
// The secret binds the participant ID to the room name, not to one
// meeting's conference ID: when the dead node held a whole meeting, the
// directory dropped it, and the first participant back creates the meeting
// again; its people keep their identities in the new one.
//
// Refusal: a removed participant must not come back with its secret.
// RevokeResume records the participant's ID in the room; the moderation
// code calls it on removal (and on each node that learns of the removal)
// and resumes of that ID are refused on this node from then on.

// resumeLabel separates the resume key from the other keys derived from
// Config.RoomKey.
const resumeLabel = "meshmeet resume secret v1"

// resumeSecret returns the resume secret of participant id in the room
// key: base64url of HMAC-SHA256(resume key, key ‖ id), 43 characters.
func (s *Server) resumeSecret(key mesh.RoomKey, id string) string {
	k := hmac.New(sha256.New, s.cfg.RoomKey)
	k.Write([]byte(resumeLabel))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(key[:])
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validResume reports whether res carries the secret of its participant in
// the room key and the participant was not removed from the room.
func (s *Server) validResume(key mesh.RoomKey, res *wire.Resume) bool {
	want := s.resumeSecret(key, res.Participant)
	if subtle.ConstantTimeCompare([]byte(want), []byte(res.Secret)) != 1 {
		return false
	}
	return !s.moves.revoked(key, res.Participant)
}

// newIdentity returns the ID and resume secret of a participant that join
// creates: the moved participant's own when the join is a checked resume
// from another node (joinSession), else a fresh random ID.
func (s *Server) newIdentity(c *conn, key mesh.RoomKey) (id, secret string) {
	id = c.movedID
	if id == "" {
		id = randomID(12)
	}
	return id, s.resumeSecret(key, id)
}

// joinSession handles a session's join message: a new participant, a
// resume of a participant held here (room.go), or a participant arriving
// from another node with its resume secret. A draining node sends new
// and arriving participants elsewhere, within their meeting's regions
// (drain.go).
func (s *Server) joinSession(ctx context.Context, c *conn, m *wire.Message) (*participant, error) {
	local := m.Resume != nil && s.holds(m.Resume.Participant)
	if s.Draining() && !local {
		return nil, s.redirectJoin(ctx, c, m)
	}
	if m.Resume == nil || local || m.Version != wire.Version {
		return s.join(ctx, c, m)
	}
	key := mesh.NewRoomKey(s.cfg.RoomKey, m.Room)
	if !s.validResume(key, m.Resume) {
		return nil, errResumeFailed
	}
	id := m.Resume.Participant
	if !s.moves.claim(id) {
		// The same participant is arriving here on another socket now.
		return nil, errResumeFailed
	}
	defer s.moves.unclaim(id)
	if s.holds(id) {
		// It arrived on another socket meanwhile: resume that one.
		return s.join(ctx, c, m)
	}
	c.movedID = id
	fresh := *m
	fresh.Resume = nil
	p, err := s.join(ctx, c, &fresh)
	if err == nil {
		s.moves.arrived.Add(1)
		p.room.forgetRemote(id)
		p.log.Debug("participant arrived from another node")
	}
	return p, err
}

// forgetRemote drops id from the room's remote participants without
// telling anyone: the participant is local now (it moved here from another
// node), and its old node's leave, arriving later, must not remove it.
func (r *room) forgetRemote(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.casc.remote[id] == nil {
		return
	}
	delete(r.casc.remote, id)
	for i, o := range r.casc.remoteOrder {
		if o == id {
			r.casc.remoteOrder = append(r.casc.remoteOrder[:i], r.casc.remoteOrder[i+1:]...)
			break
		}
	}
}

// holds reports whether participant id is on this node (joined or
// detached).
func (s *Server) holds(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.participants[id] != nil
}

// RevokeResume refuses, on this node, every resume of participant id in
// the room named by key from now on: the participant was removed. The
// moderation code calls it on every node that learns of the removal. The
// record lasts revokeTTL (a resume secret is only of use within a
// meeting) and at most maxRevoked records are kept.
func (s *Server) RevokeResume(key mesh.RoomKey, id string) {
	s.moves.revoke(key, id, time.Now())
}

const (
	revokeTTL  = 6 * time.Hour
	maxRevoked = 4096
)

// revokedID is one refused participant in one room.
type revokedID struct {
	key mesh.RoomKey
	id  string
}

// moves is the state of participants moving between nodes: resumes from
// other nodes in progress, refused IDs, and the participants a draining
// node redirected (drain.go).
type moves struct {
	draining   atomic.Bool   // the node is draining
	arrived    atomic.Uint64 // participants that arrived from another node
	redirected atomic.Uint64 // participants this node redirected
	leaderless atomic.Uint64 // movers admitted on the local directory copy

	mu      sync.Mutex
	claimed map[string]bool                   // IDs arriving from another node now
	refused map[revokedID]time.Time           // revoked resumes, with the time
	sent    map[*participant]time.Time        // redirected while draining, with the time
	target  func(pin []string) (string, bool) // the drain's Target; nil before Drain
}

func (mv *moves) claim(id string) bool {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	if mv.claimed[id] {
		return false
	}
	if mv.claimed == nil {
		mv.claimed = map[string]bool{}
	}
	mv.claimed[id] = true
	return true
}

func (mv *moves) unclaim(id string) {
	mv.mu.Lock()
	delete(mv.claimed, id)
	mv.mu.Unlock()
}

func (mv *moves) revoke(key mesh.RoomKey, id string, now time.Time) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	if mv.refused == nil {
		mv.refused = map[revokedID]time.Time{}
	}
	for k, t := range mv.refused {
		if now.Sub(t) > revokeTTL {
			delete(mv.refused, k)
		}
	}
	if len(mv.refused) >= maxRevoked {
		// Drop the oldest: the bound holds whatever the removal rate.
		var oldest revokedID
		var at time.Time
		for k, t := range mv.refused {
			if at.IsZero() || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(mv.refused, oldest)
	}
	mv.refused[revokedID{key, id}] = now
}

func (mv *moves) revoked(key mesh.RoomKey, id string) bool {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	t, ok := mv.refused[revokedID{key, id}]
	return ok && time.Since(t) <= revokeTTL
}

// Admission without a leader.
//
// When a node dies its participants fail over to other nodes with their
// resume secrets. If the dead node led raft, the directory has no leader
// until the other voters elect one (--raft-timeout and more: a voter does
// not vote while it still believes in the old leader), and a join, a
// directory write, waits for it. A mover (a checked resume from another
// node, joinSession) does not wait: when the directory has not answered
// within leaderlessWait and this node's own copy of the directory (a
// voter's FSM, mesh.LocalReader) lists the room, the mover is admitted
// against that entry (its conference ID, pin, password, lock, E2EE
// requirement and participant count, with the mover still counted on the
// node it left) and its directory join goes on in the background
// (pendingJoin) until it applies, fails for good, or the participant is
// gone. When it applies, the answer is checked as a join's is: a pin that
// excludes this node, a full room, a required E2EE the participant does
// not do, or another conference ID (the meeting ended in the directory
// meanwhile) end the session with that error. Every other join, and a mover
// whose room the local copy does not list (or a node that is not a voter
// and keeps no copy), waits for the directory as before.

// leaderlessWait is how long a mover's directory call may take before the
// local copy is used instead. A join with a leader is one forward and one
// raft commit: milliseconds on a LAN, one or two round trips between
// regions, well under 300 ms. An election takes at least --raft-timeout
// (1.5 s by default) after the leader is lost. 300 ms lets a healthy
// directory answer and keeps most of the 2 s failover budget for the new
// PeerConnections; a slower healthy answer only means the mover is
// admitted on the local entry and the same join completes in the
// background.
const leaderlessWait = 300 * time.Millisecond

// unavailable reports whether a directory error means "no answer in time"
// (no leader, no quorum), not a refusal.
func unavailable(err error) bool {
	return errors.Is(err, mesh.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// lookupForJoin is authorize's directory lookup. For a mover it gives the
// directory leaderlessWait and then reads this node's copy of the room;
// it sets c.leaderless when it did. Every other join looks up as before.
func (s *Server) lookupForJoin(ctx context.Context, c *conn, key mesh.RoomKey) (mesh.Room, bool, error) {
	lr, ok := s.cfg.Directory.(mesh.LocalReader)
	if c.movedID == "" || !ok {
		return s.cfg.Directory.Lookup(ctx, key)
	}
	sctx, cancel := context.WithTimeout(ctx, leaderlessWait)
	info, exists, err := s.cfg.Directory.Lookup(sctx, key)
	cancel()
	if err == nil || !unavailable(err) || ctx.Err() != nil {
		return info, exists, err
	}
	if local, ok := lr.LookupLocal(key); ok {
		c.leaderless = true
		return local, true, nil
	}
	return s.cfg.Directory.Lookup(ctx, key)
}

// joinDirectoryFor is join's directory join. For a mover it may admit on
// the local copy: it then returns that entry (created false) and the
// pendingJoin that goes on in the background, which the participant keeps
// (participant.pending). Otherwise the pendingJoin is nil and the answer
// is the directory's, as for every other join.
func (s *Server) joinDirectoryFor(ctx context.Context, c *conn, key mesh.RoomKey, pin []string, e2ee bool) (mesh.Room, bool, *pendingJoin, error) {
	lr, ok := s.cfg.Directory.(mesh.LocalReader)
	if c.movedID == "" || !ok {
		dctx, cancel := context.WithTimeout(ctx, directoryTimeout)
		info, created, err := s.joinDirectory(dctx, key, pin) // place.go
		cancel()
		return info, created, nil, err
	}
	pj := &pendingJoin{done: make(chan struct{}), admitted: make(chan struct{}), gone: make(chan struct{}), e2ee: e2ee}
	go s.runJoin(pj, key, pin)
	wait := leaderlessWait
	if c.leaderless {
		wait = 0 // authorize already waited for the directory in vain
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-pj.done:
		return pj.handBack()
	case <-ctx.Done():
		s.dropJoin(key, pj)
		return mesh.Room{}, false, nil, ctx.Err()
	case <-t.C:
	}
	local, ok := lr.LookupLocal(key)
	if !ok {
		// Not in the local copy: wait for the directory, as any join.
		t.Reset(directoryTimeout - wait)
		select {
		case <-pj.done:
			return pj.handBack()
		case <-ctx.Done():
		case <-t.C:
		}
		s.dropJoin(key, pj)
		return mesh.Room{}, false, nil, mesh.ErrUnavailable
	}
	select {
	case <-pj.done: // it answered meanwhile
		return pj.handBack()
	default:
	}
	s.moves.leaderless.Add(1)
	s.log.Debug("mover admitted on the local directory copy: no leader")
	return local, false, pj, nil
}

// pendingJoin is a mover's directory join going on in the background
// after the mover was admitted on the local copy of the directory.
type pendingJoin struct {
	e2ee bool // static: the join said it encrypts end to end

	done     chan struct{} // closed by runJoin when the join ended
	admitted chan struct{} // closed by admit once the participant joined
	gone     chan struct{} // closed by abandon or handBack

	mu sync.Mutex
	// The following are guarded by mu.
	info    mesh.Room
	created bool
	err     error
	// applied: the join applied and no Leave has been taken for it yet.
	// Whoever clears it (abandon, or runJoin after abandon) takes it back.
	applied bool
	left    bool // abandon or handBack was called
	p       *participant
}

// runJoin joins the directory until the join applies, fails with an
// error that is not "unavailable", or the participant is gone. Each
// attempt is one Directory call (directoryTimeout, the directory's own
// retries within it); an attempt in flight is never cut short, so a join
// that applies late is seen and either kept or taken back, never lost.
func (s *Server) runJoin(pj *pendingJoin, key mesh.RoomKey, pin []string) {
	var (
		info    mesh.Room
		created bool
		err     error
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
		info, created, err = s.joinDirectory(ctx, key, pin) // place.go
		cancel()
		if err == nil || !unavailable(err) {
			break
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-pj.gone:
		case <-t.C:
		}
		t.Stop()
		if pj.isLeft() {
			break
		}
	}
	pj.mu.Lock()
	pj.info, pj.created, pj.err = info, created, err
	pj.applied = err == nil
	takeBack := pj.left && pj.applied
	if takeBack {
		pj.applied = false
	}
	pj.mu.Unlock()
	close(pj.done)
	if takeBack {
		// The participant left before its join applied.
		if err := s.leaveDirectory(key, nil); err != nil {
			s.log.Warn("directory leave", "err", err)
		}
		return
	}
	select {
	case <-pj.gone:
		return
	case <-pj.admitted:
	}
	pj.mu.Lock()
	p, left := pj.p, pj.left
	pj.mu.Unlock()
	if left {
		// Admitted, then gone: both channels were ready and select took
		// admitted. The participant's leave did what there was to do.
		return
	}
	if cause := s.checkLateJoin(p, info, err, pj.e2ee); cause != nil {
		p.fail(cause) // leave takes the count back when it applied
	}
}

// checkLateJoin checks the directory's answer to a mover's background
// join as join checks its answer; nil keeps the participant.
func (s *Server) checkLateJoin(p *participant, info mesh.Room, err error, e2ee bool) error {
	switch {
	case err != nil:
		p.log.Error("directory join", "err", err)
		return errInternal
	case !info.Allows(s.cfg.Region):
		s.plc.refused.Add(1)
		return errPinnedFull
	case info.Participants() > s.cfg.MaxRoomParticipants:
		return errFull
	case s.e2eeRequired(info) && !e2ee:
		return errE2EERequired
	case info.ConferenceID != p.room.conference:
		// The meeting ended in the directory meanwhile: this one is a
		// new meeting of the same name, which the client joins afresh.
		return errResumeFailed
	}
	p.log.Debug("mover's directory join applied")
	return nil
}

// handBack ends the pendingJoin of a join the directory answered in time:
// the answer is returned to join as any join's.
func (pj *pendingJoin) handBack() (mesh.Room, bool, *pendingJoin, error) {
	pj.mu.Lock()
	info, created, err := pj.info, pj.created, pj.err
	pj.left = true
	pj.applied = false // join owns the count now, as any join's
	pj.mu.Unlock()
	close(pj.gone)
	return info, created, nil, err
}

// abandon is called once the participant is gone (or never got in). It
// reports whether the join applied, in which case the caller takes the
// count back; when the join has not ended yet, runJoin stops retrying and
// takes back an attempt in flight that applies. Idempotent: only one
// caller ever gets true.
func (pj *pendingJoin) abandon() bool {
	pj.mu.Lock()
	defer pj.mu.Unlock()
	if pj.left {
		return false
	}
	pj.left = true
	close(pj.gone)
	applied := pj.applied
	pj.applied = false
	return applied
}

func (pj *pendingJoin) isLeft() bool {
	pj.mu.Lock()
	defer pj.mu.Unlock()
	return pj.left
}

// admit hands the joined participant to runJoin. Nil-safe.
func (pj *pendingJoin) admit(p *participant) {
	if pj == nil {
		return
	}
	pj.mu.Lock()
	pj.p = p
	pj.mu.Unlock()
	close(pj.admitted)
}

// dropJoin gives up a pending join before any participant exists: a
// join that applied meanwhile is taken back.
func (s *Server) dropJoin(key mesh.RoomKey, pj *pendingJoin) {
	if err := s.undoJoin(key, pj, nil); err != nil {
		s.log.Warn("directory leave", "err", err)
	}
}

// undoJoin takes back a join's directory count: at once for a join the
// directory answered, and for a pending one only if (and when) it applied.
func (s *Server) undoJoin(key mesh.RoomKey, pj *pendingJoin, cause error) error {
	if pj != nil && !pj.abandon() {
		return nil
	}
	return s.leaveDirectory(key, cause)
}
