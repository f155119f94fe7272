package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// Node is one node's control plane: gossip membership and, for voters, a
// raft server holding the room directory. It implements Directory for the
// whole cluster: voters apply on the leader or forward to it, other nodes
// forward to a voter.
//
// The code is split by concern, as nomad splits its server: this file is
// the lifecycle (New, Start, Run, Close); raft.go the raft server and its
// transport; gossip.go memberlist and its transport over the caller's
// sockets; delegate.go memberlist's callbacks; leader.go what the leader
// reconciles; load.go the gossiped load; cluster_directory.go and
// forward.go the Directory calls.
//
// New only validates; Start starts raft and memberlist on the sockets of
// the Config; Run runs the loops until its context ends and then leaves the
// cluster.
type Node struct {
	cfg    Config // static after construction
	log    *slog.Logger
	raftID string // fresh at every start
	fsm    *fsm

	// Set by Start, static afterwards.
	ml        *memberlist.Memberlist
	gossip    *gossipTransport
	gossipLog *levelWriter // memberlist's log, rate-limited
	gossipAdv string
	raft      *raft.Raft // nil for non-voters
	logs      *raft.InmemStore
	trans     *raft.NetworkTransport
	stream    *streamLayer
	raftAdv   string
	fwd       *forwardPool

	wake chan struct{} // capacity 1: membership changed
	// claimed is closed once this run has cleared what a previous run of
	// this node left in the directory (see claim); Join waits for it.
	claimed chan struct{}

	mu         sync.Mutex
	meta       NodeMeta                // guarded by mu
	members    map[string]*memberState // by name; guarded by mu
	leaderHint string                  // raft address; guarded by mu

	started      atomic.Bool
	closeOnce    sync.Once
	done         chan struct{}
	wg           sync.WaitGroup
	missingSince map[raft.ServerID]time.Time // owned by the run loop
	bridgeGone   map[string]time.Time        // owned by the run loop
	cpu          cpuMeter                    // owned by the run loop
	loadFn       atomic.Pointer[func() Load] // set by SetLoadFunc
	leaderSeen   atomic.Int64                // unix ns of a non-voter's last answer from a leader
	probing      atomic.Bool                 // a probeLeader is in flight
	reporting    atomic.Bool                 // a report is in flight

	ghostMu sync.Mutex
	// missing holds, on the leader, since when each room listing a bridge
	// has been missing from that bridge's reports; guarded by ghostMu.
	missing map[string]map[ghostKey]time.Time
}

var _ Directory = (*Node)(nil)

// New validates cfg and returns a Node that has not started. On an error it
// closes the sockets of cfg.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		cfg.closeSockets()
		return nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	n := &Node{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "mesh"),
		raftID:       cfg.NodeName + "." + hex.EncodeToString(b[:]),
		fsm:          newFSM(),
		wake:         make(chan struct{}, 1),
		claimed:      make(chan struct{}),
		members:      map[string]*memberState{},
		done:         make(chan struct{}),
		missingSince: map[raft.ServerID]time.Time{},
		bridgeGone:   map[string]time.Time{},
		missing:      map[string]map[ghostKey]time.Time{},
	}
	n.meta = NodeMeta{
		Region: cfg.Region, HasGeo: cfg.HasGeo, Lat: cfg.Lat, Lon: cfg.Lon,
		SignalingURL: cfg.SignalingURL, WebRTCAddr: cfg.WebRTCAddr, RelayAddr: cfg.RelayAddr, TURNAddr: cfg.TURNAddr,
		Capacity: cfg.Capacity, RaftID: n.raftID, Voter: cfg.Voter,
	}
	return n, nil
}

// closeSockets closes every socket of c (a failed New or Start).
func (c *Config) closeSockets() {
	if c.GossipListener != nil {
		c.GossipListener.Close()
	}
	if c.GossipConn != nil {
		c.GossipConn.Close()
	}
	if c.RaftListener != nil {
		c.RaftListener.Close()
	}
}

// nameOfRaftID returns the node name inside a raft server ID.
func nameOfRaftID(id string) string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return id
}

// Start starts raft (voters) and memberlist on the sockets of the Config.
// Run joins the Join addresses (in the background: a seed that is down
// does not hold up the start). On an error the sockets are closed.
func (n *Node) Start() error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("mesh: node already started")
	}
	n.fwd = newForwardPool(n.cfg.PKI, n.cfg.Dial)
	if !n.cfg.Voter && n.cfg.RaftListener != nil {
		n.cfg.RaftListener.Close() // only voters serve raft
		n.cfg.RaftListener = nil
	}
	if n.cfg.Voter {
		if err := n.startRaft(); err != nil {
			n.cfg.closeSockets()
			return err
		}
	}
	if err := n.startGossip(); err != nil {
		n.shutdownRaft()
		n.cfg.closeSockets()
		return err
	}
	return nil
}

// redactErr removes addresses from a library error.
func redactErr(err error) error { return errors.New(redact(err.Error())) }

// GossipAddr returns the address gossip is advertised at (after Start).
func (n *Node) GossipAddr() string { return n.gossipAdv }

// RaftID returns this run's raft server ID.
func (n *Node) RaftID() string { return n.raftID }

// Run reconciles until ctx ends, then leaves the cluster: hands leadership
// over if it leads, leaves gossip, stops raft. It returns nil on a clean stop.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.Load() {
		return errors.New("mesh: Run before Start")
	}
	go n.reconnectLoop()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.claim()
	}()
	reconcile := time.NewTicker(n.cfg.ReconcileInterval)
	defer reconcile.Stop()
	load := time.NewTicker(n.cfg.LoadInterval)
	defer load.Stop()
	report := time.NewTicker(n.cfg.ReportInterval)
	defer report.Stop()
	var leaderCh <-chan bool
	if n.raft != nil {
		leaderCh = n.raft.LeaderCh()
	}
	n.step()
	for {
		select {
		case <-ctx.Done():
			n.leave()
			return nil
		case <-n.done:
			return nil
		case <-n.wake:
			n.step()
		case <-reconcile.C:
			n.step()
			n.probeLeader()
		case isLeader := <-leaderCh:
			if isLeader {
				n.log.Info("became raft leader")
				clear(n.missingSince)
				clear(n.bridgeGone)
				n.forgetReports()
			} else {
				n.log.Info("lost raft leadership")
			}
			n.step()
		case <-load.C:
			n.refreshMeta()
		case <-report.C:
			n.report()
		}
	}
}

// claim is the first step of a run: it removes from the directory what a
// previous run of this node left there (a restarted node holds none of its
// old participants), retrying until a leader applies it, and then lets
// Join through. Until then Ready is false and Join waits.
func (n *Node) claim() {
	c := command{typ: cmdBridgeDead, bridge: n.cfg.NodeName}
	b := c.encode()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
		_, err := n.propose(ctx, b)
		cancel()
		if err == nil {
			close(n.claimed)
			n.log.Debug("cleared this node's rooms of a previous run")
			return
		}
		select {
		case <-n.done:
			return
		default:
		}
	}
}

// waitClaimed waits for claim, or reports ErrUnavailable at ctx's end.
func (n *Node) waitClaimed(ctx context.Context) error {
	select {
	case <-n.claimed:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(n.deadline(ctx)))
	defer t.Stop()
	select {
	case <-n.claimed:
		return nil
	case <-ctx.Done():
	case <-n.done:
	case <-t.C:
	}
	return ErrUnavailable
}

// step runs one round of bootstrap and, on the leader, reconciliation.
func (n *Node) step() {
	if n.raft == nil {
		return
	}
	in := n.inCluster()
	n.mu.Lock()
	changed := n.meta.InCluster != in
	n.meta.InCluster = in
	n.mu.Unlock()
	if changed {
		n.ml.UpdateNode(time.Second)
	}
	if !in {
		n.maybeBootstrap()
		return
	}
	if n.raft.State() == raft.Leader {
		n.reconcileVoters()
		n.reconcileBridges()
	}
}

// Members returns every node this node knows of, itself included, sorted by
// name.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// leave is the orderly shutdown. Leadership is handed over before the
// gossip leave, so that the new leader sees the leave and removes this voter
// from the configuration at once instead of after DeadGrace.
func (n *Node) leave() {
	select {
	case <-n.done: // closed already
		return
	default:
	}
	if n.raft != nil && n.raft.State() == raft.Leader {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Debug("leadership transfer failed", "err", redactErr(err))
		}
	}
	n.mu.Lock()
	n.meta.Leaving = true
	n.mu.Unlock()
	n.ml.UpdateNode(time.Second)
	if err := n.ml.Leave(2 * time.Second); err != nil {
		n.log.Debug("gossip leave failed", "err", redact(err.Error()))
	}
	n.Close()
}

// Close stops everything at once, without leaving (a crash, for the rest
// of the cluster, if Run has not left first), and closes the sockets. It is
// idempotent and waits.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		if n.ml != nil {
			n.ml.Shutdown() // closes the gossip sockets (gossipTransport.Shutdown)
		} else {
			n.cfg.closeSockets()
		}
		n.shutdownRaft()
		if n.fwd != nil {
			n.fwd.close()
		}
		n.wg.Wait()
	})
	return nil
}
