package signaling

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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
