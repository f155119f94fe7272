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

// Join implements Directory: a raft command, applied on the leader. It
// first waits (within ctx and ApplyTimeout) for Run's first step, which
// clears what a previous run of this node left in the directory.
func (n *Node) Join(ctx context.Context, key RoomKey, bridge string) (Room, bool, error) {
	return n.JoinPinned(ctx, key, bridge, nil)
}

// JoinPinned implements Directory: a cmdJoinPin command when pin is not
// empty, else a cmdJoin.
func (n *Node) JoinPinned(ctx context.Context, key RoomKey, bridge string, pin []string) (Room, bool, error) {
	if bridge == "" || len(bridge) > maxBridgeName {
		return Room{}, false, errors.New("mesh: bridge name must be 1 to 128 bytes")
	}
	pin, err := NormalizePin(pin)
	if err != nil {
		return Room{}, false, err
	}
	ctx, cancel := context.WithDeadline(ctx, n.deadline(ctx)) // one budget for both steps
	defer cancel()
	if err := n.waitClaimed(ctx); err != nil {
		return Room{}, false, err
	}
	c := command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: bridge, conferenceID: NewConferenceID(), created: time.Now().UnixNano()}
	if len(pin) > 0 {
		c.typ, c.pin = cmdJoinPin, pin
	}
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
	if st.Fields&^allStateFields != 0 {
		return Room{}, errors.New("mesh: unknown room state field")
	}
	c := command{typ: cmdSetState, key: key, conferenceID: conferenceID, state: st}
	if st.Fields != 0 {
		c.typ = cmdSetFields
	}
	res, err := n.propose(ctx, c.encode())
	return res.room, err
}

// Lookup implements Directory with a linearizable read on the leader.
func (n *Node) Lookup(ctx context.Context, key RoomKey) (Room, bool, error) {
	b, err := n.onLeader(ctx, opLookup, key[:])
	if errors.Is(err, ErrRoomNotFound) {
		return Room{}, false, nil
	}
	if err != nil {
		return Room{}, false, err
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
	b, err := n.onLeader(ctx, opRooms, nil)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, ErrUnavailable
	}
	return int(binary.BigEndian.Uint32(b)), nil
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

// propose applies a raft command on the leader and returns the FSM's answer.
func (n *Node) propose(ctx context.Context, cmd []byte) (applyResult, error) {
	b, err := n.onLeader(ctx, opApply, cmd)
	if err != nil {
		return applyResult{}, err
	}
	return decodeResult(b)
}

// onLeader runs one request on the raft leader: here when this node leads
// (serveOp), else forwarded to the leader as far as this node knows it. It
// waits for a leader and retries until ctx's deadline, at most ApplyTimeout
// from now. Retrying is safe: reads change nothing, and every command is
// idempotent (Join and Leave carry a request ID the FSM remembers; the
// others are idempotent by nature), so a command whose fate is unknown (the
// leader was lost while it was in flight) is proposed again.
func (n *Node) onLeader(ctx context.Context, op byte, payload []byte) ([]byte, error) {
	until := n.deadline(ctx)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	for {
		st, b, err := stNotLeader, []byte(nil), error(nil)
		if n.raft != nil && n.raft.State() == raft.Leader {
			st, b = n.serveOp(ctx, op, payload)
		} else if addr := n.leaderAddr(); addr != "" {
			st, b, err = n.forward(addr, op, payload, until)
		}
		if err == nil {
			if err = statusErr(st); err == nil {
				return b, nil
			}
			if st == stNotLeader {
				n.setHint(string(b))
			}
		}
		switch {
		case errors.Is(err, errNotSent), errors.Is(err, ErrUnavailable):
			n.setHint("") // ask another voter next time
		case errors.Is(err, errNotLeader):
		default:
			return nil, err // ErrRoomNotFound, errMalformed
		}
		if err := n.pause(ctx); err != nil {
			return nil, err
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
		if m.State == MemberAlive && m.Meta.Voter && m.Meta.InCluster && m.Meta.RaftAddr != "" {
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
