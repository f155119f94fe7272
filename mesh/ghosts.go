package mesh

import (
	"context"
	"encoding/binary"
	"time"
)

// Ghost rooms. A Join can commit after its caller was told ErrUnavailable
// (the leader lost its quorum with the command in flight, and won it back),
// so the directory can list a bridge in a room it never took a participant
// of; the room then outlives every participant, and the same name later
// would get the old conference ID. The directory converges to what the
// bridges hold instead:
//
//	every node, each ReportInterval   ->  opReport to the leader: its name
//	                                      and the RoomKeys of the rooms its
//	                                      bridge holds (Config.LiveRooms)
//	leader, on each report                for every room the FSM lists that
//	                                      bridge in: held -> forget it;
//	                                      missing from reports for at least
//	                                      GhostGrace -> cmdDropGhosts
//
// The grace keeps a join in flight (committed, not yet in the bridge's
// report) alive, and the count in cmdDropGhosts keeps a join that commits
// after the decision. A node without LiveRooms sends no reports and its
// rooms are left alone. The leader keeps what it saw in memory only; a new
// leader starts over, so a ghost lives at most GhostGrace after the last
// leader change plus one ReportInterval.

// Bounds of a report: at most maxReportRooms keys, which fit in one
// forwarded frame.
const maxReportRooms = (maxForwardLen - 256) / len(RoomKey{})

// ghostKey names one (room, conference, bridge) entry the leader watches.
type ghostKey struct {
	key          RoomKey
	conferenceID string
}

// report sends this node's live rooms to the leader (from the run loop, one
// at a time, in the background).
func (n *Node) report() {
	if n.cfg.LiveRooms == nil || !n.reporting.CompareAndSwap(false, true) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.reporting.Store(false)
		select {
		case <-n.claimed: // before, this node's entries are a previous run's
		default:
			return
		}
		keys := n.cfg.LiveRooms()
		if len(keys) > maxReportRooms {
			n.log.Warn("too many rooms to report to the directory leader; ghost rooms are not cleaned up", "rooms", len(keys))
			return
		}
		b := encodeReport(n.cfg.NodeName, keys)
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReportInterval)
		defer cancel()
		if _, err := n.onLeader(ctx, opReport, b); err != nil {
			n.log.Debug("live rooms report failed", "err", err)
		}
	}()
}

// encodeReport builds an opReport payload.
func encodeReport(bridge string, keys []RoomKey) []byte {
	b := appendStr8(make([]byte, 0, 1+len(bridge)+4+len(keys)*len(RoomKey{})), bridge)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = append(b, k[:]...)
	}
	return b
}

// decodeReport parses an opReport payload.
func decodeReport(b []byte) (string, map[RoomKey]bool, error) {
	r := reader{b: b}
	bridge := r.str8(maxBridgeName)
	cnt := r.u32()
	if r.err != nil || bridge == "" || cnt > uint32(maxReportRooms) || len(r.b) != int(cnt)*len(RoomKey{}) {
		return "", nil, errMalformed
	}
	held := make(map[RoomKey]bool, cnt)
	for range cnt {
		var k RoomKey
		r.key(&k)
		held[k] = true
	}
	return bridge, held, nil
}

// liveReport (leader) compares a bridge's report with the directory and
// removes, through raft, the entries missing from its reports for
// GhostGrace.
func (n *Node) liveReport(ctx context.Context, bridge string, held map[RoomKey]bool) error {
	listed := n.fsm.roomsOf(bridge)
	now := time.Now()
	var drop []ghost
	n.ghostMu.Lock()
	seen := n.missing[bridge]
	if seen == nil {
		seen = map[ghostKey]time.Time{}
	}
	next := make(map[ghostKey]time.Time, len(seen))
	for _, g := range listed {
		if held[g.key] {
			continue
		}
		k := ghostKey{g.key, g.conferenceID}
		since, ok := seen[k]
		if !ok {
			since = now
		}
		next[k] = since
		if now.Sub(since) >= n.cfg.GhostGrace && len(drop) < maxGhosts {
			drop = append(drop, g)
		}
	}
	if len(next) == 0 {
		delete(n.missing, bridge)
	} else {
		n.missing[bridge] = next
	}
	n.ghostMu.Unlock()
	if len(drop) == 0 {
		return nil
	}
	c := command{typ: cmdDropGhosts, bridge: bridge, ghosts: drop}
	if _, err := n.applyLocal(ctx, c.encode()); err != nil {
		return err
	}
	n.log.Info("removed ghost room entries no bridge holds", "bridge", bridge, "rooms", len(drop))
	return nil
}

// forgetReports drops what the leader saw of the reports (leadership
// changed: a new leader starts over).
func (n *Node) forgetReports() {
	n.ghostMu.Lock()
	clear(n.missing)
	n.ghostMu.Unlock()
}
