package mesh

import "time"

// Ready reports whether this node has taken its first step (claim) and the
// directory can reach a raft leader, as far as this node knows without
// asking anyone: a voter from raft (a follower forgets the leader within one
// raft timeout of losing it; a leader that loses its quorum steps down
// within its lease); another node from the last answer a leader gave it,
// which the run loop refreshes every ReconcileInterval. It is cheap enough
// for every readiness probe (/readyz).
func (n *Node) Ready() bool {
	if !n.started.Load() {
		return false
	}
	select {
	case <-n.done: // closed
		return false
	case <-n.claimed: // the first step is done
	default:
		return false
	}
	if n.raft != nil {
		addr, _ := n.raft.LeaderWithID()
		return addr != ""
	}
	seen := n.leaderSeen.Load()
	return seen != 0 && time.Since(time.Unix(0, seen)) < n.readyWindow()
}

// readyWindow is how old a non-voter's last answer from the leader may be.
func (n *Node) readyWindow() time.Duration {
	return 3 * n.cfg.ReconcileInterval
}

// forward sends one request to the node at addr (the leader, as far as this
// node knows) and notes when a leader answered.
func (n *Node) forward(addr string, op byte, payload []byte, until time.Time) (byte, []byte, error) {
	st, b, err := n.fwd.call(addr, op, payload, until)
	if err == nil && st != stNotLeader && st != stUnavailable {
		n.leaderSeen.Store(time.Now().UnixNano())
	}
	return st, b, err
}

// probeLeader (non-voters, from the run loop) asks the leader for the
// cluster information when no leader has answered for a while, so Ready
// stays true on an idle node. One probe runs at a time.
func (n *Node) probeLeader() {
	if n.raft != nil || time.Since(time.Unix(0, n.leaderSeen.Load())) < n.cfg.ReconcileInterval {
		return
	}
	if !n.probing.CompareAndSwap(false, true) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.probing.Store(false)
		addr := n.leaderAddr()
		if addr == "" {
			return
		}
		st, b, err := n.forward(addr, opInfo, nil, time.Now().Add(n.readyWindow()))
		switch {
		case err != nil:
			n.setHint("")
		case st == stNotLeader:
			n.setHint(string(b))
		}
	}()
}
