package mesh

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// startRaft starts this voter's raft server on the raft listener, with
// in-memory log, stable and snapshot stores: nothing about a meeting
// touches disk.
func (n *Node) startRaft() error {
	ln := n.cfg.RaftListener
	adv := n.cfg.RaftAdvertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil || advAddr.IP == nil || advAddr.IP.IsUnspecified() {
		return errors.New("raft: the advertised raft address must be a concrete IP:port (set --public-ip or a concrete --raft-addr)")
	}
	if advAddr.Port == 0 {
		if ta, ok := ln.Addr().(*net.TCPAddr); ok {
			advAddr.Port = ta.Port
		}
	}
	n.raftAdv = advAddr.String()
	n.meta.RaftAddr = n.raftAdv
	n.stream = newStreamLayer(ln, advAddr, n.cfg.PKI, n.cfg.Dial, n.serveForward)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.stream,
		MaxPool: 4,
		Timeout: 10 * time.Second,
		Logger:  hcLogger(n.log),
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.raftID)
	rc.HeartbeatTimeout = n.cfg.RaftTimeout
	rc.ElectionTimeout = n.cfg.RaftTimeout
	rc.LeaderLeaseTimeout = n.cfg.RaftTimeout / 2
	rc.CommitTimeout = min(50*time.Millisecond, n.cfg.RaftTimeout/10)
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.SnapshotThreshold = n.cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = hcLogger(n.log)
	store := raft.NewInmemStore() // log and stable store: nothing on disk
	r, err := raft.NewRaft(rc, n.fsm, store, store, raft.NewInmemSnapshotStore(), n.trans)
	if err != nil {
		n.trans.Close()
		n.stream.Close()
		return fmt.Errorf("raft: %w", redactErr(err))
	}
	n.raft, n.logs = r, store
	return nil
}

func (n *Node) shutdownRaft() {
	if n.raft != nil {
		n.raft.Shutdown().Error()
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.stream != nil {
		n.stream.Close()
		n.stream.wg.Wait()
	}
}

// inCluster reports whether this voter's raft holds a configuration.
func (n *Node) inCluster() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
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

// raftFirstLast returns the first and last index of the stored raft log.
func (n *Node) raftFirstLast() (uint64, uint64) {
	first, _ := n.logs.FirstIndex()
	last, _ := n.logs.LastIndex()
	return first, last
}
