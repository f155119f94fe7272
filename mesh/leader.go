package mesh

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// maybeBootstrap makes the first raft configuration once BootstrapExpect
// voters see each other and none of them is in a cluster already.
func (n *Node) maybeBootstrap() {
	var servers []raft.Server
	for _, m := range n.Members() {
		if m.State != MemberAlive || !m.Meta.Voter || m.Meta.RaftID == "" || m.Meta.RaftAddr == "" {
			continue
		}
		if m.Meta.InCluster {
			return // a cluster exists: its leader adds us
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Meta.RaftID), Address: raft.ServerAddress(m.Meta.RaftAddr)})
	}
	if len(servers) < n.cfg.BootstrapExpect || !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == n.raftID }) {
		return
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		n.log.Warn("raft bootstrap failed", "err", redactErr(err))
		return
	}
	n.log.Info("raft cluster bootstrapped", "voters", len(servers))
}

// reconcileVoters (leader only) adds alive voters missing from the raft
// configuration and removes servers whose node left, restarted under a new
// ID, or has been dead for DeadGrace.
func (n *Node) reconcileVoters() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	byID := map[string]Member{}
	byName := map[string]Member{}
	for _, m := range n.Members() {
		byName[m.Name] = m
		if m.Meta.RaftID != "" {
			byID[m.Meta.RaftID] = m
		}
	}
	now := time.Now()
	inConfig := map[string]bool{}
	for _, s := range servers {
		id := string(s.ID)
		inConfig[id] = true
		if id == n.raftID {
			continue
		}
		m, known := byID[id]
		if known && m.State == MemberAlive {
			delete(n.missingSince, s.ID)
			continue
		}
		remove := false
		switch cur, ok := byName[nameOfRaftID(id)]; {
		case ok && cur.Meta.RaftID != id && cur.State == MemberAlive:
			remove = true // the node restarted under a new ID
		case known && m.State == MemberLeft:
			remove = true
		default:
			since, seen := n.missingSince[s.ID]
			if !seen {
				n.missingSince[s.ID] = now
			} else if now.Sub(since) >= n.cfg.DeadGrace {
				remove = true
			}
		}
		if remove {
			if err := n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("remove raft voter failed", "voter", nameOfRaftID(id), "err", redactErr(err))
				continue
			}
			delete(n.missingSince, s.ID)
			n.log.Info("removed raft voter", "voter", nameOfRaftID(id))
		}
	}
	for id, m := range byID {
		if inConfig[id] || !m.Meta.Voter || m.State != MemberAlive || m.Meta.RaftAddr == "" {
			continue
		}
		if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(m.Meta.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
			n.log.Warn("add raft voter failed", "voter", m.Name, "err", redactErr(err))
			continue
		}
		n.log.Info("added raft voter", "voter", m.Name)
	}
}

// reconcileBridges (leader only) removes a bridge from every room once its
// node has left or been dead for BridgeGrace.
func (n *Node) reconcileBridges() {
	names := n.fsm.bridgeNames()
	if len(names) == 0 {
		return
	}
	n.mu.Lock()
	states := map[string]MemberState{}
	for name, m := range n.members {
		states[name] = m.State
	}
	n.mu.Unlock()
	now := time.Now()
	for _, b := range names {
		st := states[b]
		if st == MemberAlive || b == n.cfg.NodeName {
			delete(n.bridgeGone, b)
			continue
		}
		if st != MemberLeft {
			since, seen := n.bridgeGone[b]
			if !seen {
				n.bridgeGone[b] = now
				continue
			}
			if now.Sub(since) < n.cfg.BridgeGrace {
				continue
			}
		}
		c := command{typ: cmdBridgeDead, bridge: b}
		if err := n.raft.Apply(c.encode(), n.cfg.ApplyTimeout).Error(); err != nil {
			n.log.Warn("removing dead bridge failed", "bridge", b, "err", redactErr(err))
			continue
		}
		delete(n.bridgeGone, b)
		n.log.Info("removed dead bridge from its rooms", "bridge", b)
	}
}
