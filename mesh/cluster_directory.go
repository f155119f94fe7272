package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Join implements Directory: a raft command, applied on the leader.
func (n *Node) Join(ctx context.Context, key RoomKey, bridge string) (Room, bool, error) {
	if bridge == "" || len(bridge) > maxBridgeName {
		return Room{}, false, errors.New("mesh: bridge name must be 1 to 128 bytes")
	}
	if err := n.cleanSelf(ctx); err != nil {
		return Room{}, false, err
	}
	c := command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: bridge, conferenceID: NewConferenceID(), created: time.Now().UnixNano()}
	res, err := n.propose(ctx, c.encode())
	if err != nil {
		return Room{}, false, err
	}
	return res.room, res.created, nil
}

// Leave implements Directory.
func (n *Node) Leave(ctx context.Context, key RoomKey, bridge string) error {
	if bridge == "" || len(bridge) > maxBridgeName {
		return errors.New("mesh: bridge name must be 1 to 128 bytes")
	}
	c := command{typ: cmdLeave, reqID: newRequestID(), key: key, bridge: bridge}
	_, err := n.propose(ctx, c.encode())
	return err
}

// SetState replaces the shared state (password hash, lock, moderation,
// E2EE) of the room with this conference ID. It returns ErrRoomNotFound when
// the room ended (a later room of the same name has another ID).
func (n *Node) SetState(ctx context.Context, key RoomKey, conferenceID string, st RoomState) (Room, error) {
	if len(conferenceID) > maxConferenceID || len(st.PasswordHash) > maxPasswordHash || st.Moderation > ModerationToken {
		return Room{}, errors.New("mesh: room state out of bounds")
	}
	c := command{typ: cmdSetState, key: key, conferenceID: conferenceID, state: st}
	res, err := n.propose(ctx, c.encode())
	return res.room, err
}

// Lookup implements Directory with a linearizable read on the leader.
func (n *Node) Lookup(ctx context.Context, key RoomKey) (Room, bool, error) {
	st, b, err := n.read(ctx, opLookup, key[:])
	if errors.Is(err, ErrRoomNotFound) {
		return Room{}, false, nil
	}
	if err != nil {
		return Room{}, false, err
	}
	if st != nil {
		return *st, true, nil
	}
	rd := reader{b: b}
	r := rd.room()
	if rd.err != nil || len(rd.b) != 0 {
		return Room{}, false, ErrUnavailable
	}
	return *r, true, nil
}

// Rooms implements Directory with a linearizable read on the leader.
func (n *Node) Rooms(ctx context.Context) (int, error) {
	_, b, err := n.read(ctx, opRooms, nil)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, ErrUnavailable
	}
	return int(binary.BigEndian.Uint32(b)), nil
}

// cleanSelf removes, once per run, entries a previous run of this node left
// in the directory: a restarted node holds none of its old participants.
func (n *Node) cleanSelf(ctx context.Context) error {
	n.mu.Lock()
	done := n.cleanedSelf
	n.mu.Unlock()
	if done {
		return nil
	}
	n.cleanMu.Lock()
	defer n.cleanMu.Unlock()
	n.mu.Lock()
	done = n.cleanedSelf
	n.mu.Unlock()
	if done {
		return nil
	}
	c := command{typ: cmdBridgeDead, bridge: n.cfg.NodeName}
	if _, err := n.propose(ctx, c.encode()); err != nil {
		return err
	}
	n.mu.Lock()
	n.cleanedSelf = true
	n.mu.Unlock()
	return nil
}

// deadline is the end of a directory call: ctx's deadline, at most
// ApplyTimeout from now.
func (n *Node) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(n.cfg.ApplyTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// propose applies a command on the leader, here or forwarded, waiting for a
// leader until the deadline. Every command is idempotent (Join and Leave
// carry a request ID the FSM remembers; the others are idempotent by
// nature), so a command whose fate is unknown — the leader was lost while
// it was in flight — is proposed again until the deadline.
func (n *Node) propose(ctx context.Context, cmd []byte) (applyResult, error) {
	until := n.deadline(ctx)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	for {
		var (
			res applyResult
			err error
		)
		if n.raft != nil && n.raft.State() == raft.Leader {
			res, err = n.applyLocal(ctx, cmd)
		} else if addr := n.leaderAddr(); addr != "" {
			var st byte
			var b []byte
			st, b, err = n.forward(addr, opApply, cmd, until)
			if err == nil {
				if err = statusErr(st); err == nil {
					return decodeResult(b)
				}
				if st == stNotLeader {
					n.setHint(string(b))
				}
			}
			if errors.Is(err, errNotSent) || errors.Is(err, ErrUnavailable) {
				n.setHint("")
			}
		} else {
			err = errNotLeader
		}
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, errNotLeader), errors.Is(err, errNotSent), errors.Is(err, ErrUnavailable):
			// retry below
		default:
			return res, err // ErrRoomNotFound, errMalformed
		}
		if err := n.pause(ctx); err != nil {
			return applyResult{}, err
		}
	}
}

// read answers opLookup or opRooms linearizably: on the leader after a
// barrier, elsewhere by forwarding. For a local Lookup it returns the room.
func (n *Node) read(ctx context.Context, op byte, payload []byte) (*Room, []byte, error) {
	until := n.deadline(ctx)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	for {
		if n.raft != nil && n.raft.State() == raft.Leader {
			err := n.barrier(ctx)
			if err == nil {
				switch op {
				case opLookup:
					var k RoomKey
					copy(k[:], payload)
					r, ok := n.fsm.lookup(k)
					if !ok {
						return nil, nil, ErrRoomNotFound
					}
					return &r, nil, nil
				default:
					return nil, binary.BigEndian.AppendUint32(nil, uint32(n.fsm.count())), nil
				}
			}
			if !errors.Is(err, errNotLeader) {
				return nil, nil, err
			}
		} else if addr := n.leaderAddr(); addr != "" {
			st, b, err := n.forward(addr, op, payload, until)
			if err == nil {
				if err = statusErr(st); err == nil {
					return nil, b, nil
				}
				if st == stNotLeader {
					n.setHint(string(b))
				}
			}
			if errors.Is(err, errNotSent) || errors.Is(err, ErrUnavailable) {
				n.setHint("") // reads are safe to retry
			} else if !errors.Is(err, errNotLeader) {
				return nil, nil, err
			}
		}
		if err := n.pause(ctx); err != nil {
			return nil, nil, err
		}
	}
}

// pause waits a little before another attempt, or reports unavailability.
func (n *Node) pause(ctx context.Context) error {
	t := time.NewTimer(time.Duration(20+rand.IntN(30)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ErrUnavailable
	case <-n.done:
		return ErrUnavailable
	case <-t.C:
		return nil
	}
}

// applyLocal applies a command on this node, which believes it leads.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (applyResult, error) {
	f := n.raft.Apply(cmd, time.Until(n.deadline(ctx)))
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		switch {
		case err == nil:
		case errors.Is(err, raft.ErrNotLeader):
			return applyResult{}, errNotLeader
		default:
			return applyResult{}, ErrUnavailable
		}
	case <-ctx.Done():
		return applyResult{}, ErrUnavailable
	}
	res, _ := f.Response().(applyResult)
	return res, res.err
}

// barrier makes sure this node still leads and has applied everything
// committed before the call.
func (n *Node) barrier(ctx context.Context) error {
	f := n.raft.Barrier(time.Until(n.deadline(ctx)))
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, raft.ErrNotLeader):
			return errNotLeader
		}
		return ErrUnavailable
	case <-ctx.Done():
		return ErrUnavailable
	}
}

// leaderAddr returns where to send a forwarded request: the raft leader
// for a voter; for other nodes the last leader hint or a random voter.
func (n *Node) leaderAddr() string {
	if n.raft != nil {
		addr, _ := n.raft.LeaderWithID()
		return string(addr)
	}
	n.mu.Lock()
	hint := n.leaderHint
	n.mu.Unlock()
	if hint != "" {
		return hint
	}
	var voters []string
	for _, m := range n.Members() {
		if m.State == "alive" && m.Meta.Voter && m.Meta.InCluster && m.Meta.RaftAddr != "" {
			voters = append(voters, m.Meta.RaftAddr)
		}
	}
	if len(voters) == 0 {
		return ""
	}
	return voters[rand.IntN(len(voters))]
}

func (n *Node) setHint(addr string) {
	if n.raft != nil || len(addr) > maxAddrLen {
		return
	}
	n.mu.Lock()
	n.leaderHint = addr
	n.mu.Unlock()
}

// raftInfo returns the leader's and the voters' node names, as this voter
// knows them.
func (n *Node) raftInfo() (leader string, voters []string) {
	if n.raft == nil {
		return "", nil
	}
	_, id := n.raft.LeaderWithID()
	if id != "" {
		leader = nameOfRaftID(string(id))
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return leader, nil
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, nameOfRaftID(string(s.ID)))
		}
	}
	return leader, voters
}

// clusterInfo is raftInfo, asked of the leader when this node is no voter.
func (n *Node) clusterInfo(ctx context.Context) (string, []string) {
	if n.raft != nil {
		return n.raftInfo()
	}
	addr := n.leaderAddr()
	if addr == "" {
		return "", nil
	}
	st, b, err := n.forward(addr, opInfo, nil, n.deadline(ctx))
	if err != nil || st != stOK {
		return "", nil
	}
	parts := strings.Split(string(b), "\n")
	return parts[0], parts[1:]
}
