package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
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
// New only validates; Start opens the sockets; Run runs the loops until its
// context ends and then leaves the cluster.
type Node struct {
	cfg    Config // static after construction
	log    *slog.Logger
	raftID string // fresh at every start
	fsm    *fsm

	// Set by Start, static afterwards.
	ml        *memberlist.Memberlist
	raft      *raft.Raft // nil for non-voters
	logs      *raft.InmemStore
	trans     *raft.NetworkTransport
	stream    *streamLayer
	raftAdv   string
	gossipAdv string
	gossipTr  *faultTransport
	gossipLog *levelWriter // memberlist's log, rate-limited
	fwd       *forwardPool

	wake chan struct{} // capacity 1: membership changed

	mu           sync.Mutex
	meta         NodeMeta                // guarded by mu
	members      map[string]*memberState // by name; guarded by mu
	leaderHint   string                  // raft address; guarded by mu
	cleanedSelf  bool                    // stale entries of a previous run removed; guarded by mu
	cleanMu      sync.Mutex              // serialises the clean-up proposal
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
}

var _ Directory = (*Node)(nil)

// New validates cfg and returns a Node that has not started.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
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
		members:      map[string]*memberState{},
		done:         make(chan struct{}),
		missingSince: map[raft.ServerID]time.Time{},
		bridgeGone:   map[string]time.Time{},
	}
	n.meta = NodeMeta{
		Region: cfg.Region, HasGeo: cfg.HasGeo, Lat: cfg.Lat, Lon: cfg.Lon,
		SignalingURL: cfg.SignalingURL, WebRTCAddr: cfg.WebRTCAddr, RelayAddr: cfg.RelayAddr, TURNAddr: cfg.TURNAddr,
		Capacity: cfg.Capacity, RaftID: n.raftID, Voter: cfg.Voter,
	}
	return n, nil
}

// nameOfRaftID returns the node name inside a raft server ID.
func nameOfRaftID(id string) string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return id
}

// Start opens the gossip and raft sockets and starts raft and memberlist.
// Run joins the Join addresses (in the background: a seed that is down
// does not hold up the start).
func (n *Node) Start() error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("mesh: node already started")
	}
	n.fwd = newForwardPool(n.cfg.PKI, n.cfg.Faults)
	if n.cfg.Voter {
		if err := n.startRaft(); err != nil {
			return err
		}
	}
	if err := n.startGossip(); err != nil {
		n.shutdownRaft()
		return err
	}
	return nil
}

func (n *Node) startRaft() error {
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft: listen on the raft address: %w", redactErr(err))
	}
	adv := n.cfg.RaftAdvertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil || advAddr.IP == nil || advAddr.IP.IsUnspecified() {
		ln.Close()
		return errors.New("raft: the advertised raft address must be a concrete IP:port (set --public-ip or a concrete --raft-addr)")
	}
	if advAddr.Port == 0 {
		advAddr.Port = ln.Addr().(*net.TCPAddr).Port
	}
	n.raftAdv = advAddr.String()
	n.meta.RaftAddr = n.raftAdv
	n.stream = newStreamLayer(ln, advAddr, n.cfg.PKI, n.cfg.Faults, n.serveForward)
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
		return fmt.Errorf("raft: %w", redactErr(err))
	}
	n.raft, n.logs = r, store
	return nil
}

func (n *Node) startGossip() error {
	var mc *memberlist.Config
	switch n.cfg.GossipProfile {
	case ProfileLAN:
		mc = memberlist.DefaultLANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultWANConfig()
	}
	host, portStr, _ := net.SplitHostPort(n.cfg.GossipAddr)
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return errors.New("gossip: bad port")
	}
	n.gossipLog = &levelWriter{log: n.log, component: "memberlist"}
	logger := log.New(n.gossipLog, "", 0)
	nt, err := listenGossip(host, port, logger)
	if err != nil {
		return fmt.Errorf("gossip listen: %w", redactErr(err))
	}
	n.gossipTr = &faultTransport{NetTransport: nt, faults: n.cfg.Faults}
	mc.Transport = n.gossipTr
	mc.Name = n.cfg.NodeName
	mc.BindAddr = host
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertiseAddr, mc.AdvertisePort = host, mc.BindPort
	if a := n.cfg.GossipAdvertise; a != "" {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			nt.Shutdown()
			return errors.New("gossip: advertise address is not host:port")
		}
		mc.AdvertiseAddr = h
		if pp, err := strconv.Atoi(p); err == nil && pp != 0 {
			mc.AdvertisePort = pp
		}
	}
	mc.SecretKey = n.cfg.Keys.GossipKey
	mc.Label = n.cfg.Keys.GossipLabel
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Logger = logger
	mc.DeadNodeReclaimTime = 10 * time.Second
	if n.cfg.tuneGossip != nil {
		n.cfg.tuneGossip(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		nt.Shutdown()
		return fmt.Errorf("gossip: %w", redactErr(err))
	}
	n.ml = ml
	// Read once now: memberlist rewrites its local node on every UpdateNode.
	a := ml.LocalNode()
	n.gossipAdv = net.JoinHostPort(a.Addr.String(), strconv.Itoa(int(a.Port)))
	return nil
}

// redactErr removes addresses from a library error.
func redactErr(err error) error { return errors.New(redact(err.Error())) }

// GossipAddr returns the address gossip listens at (after Start).
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
	reconcile := time.NewTicker(n.cfg.ReconcileInterval)
	defer reconcile.Stop()
	load := time.NewTicker(n.cfg.LoadInterval)
	defer load.Stop()
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
			} else {
				n.log.Info("lost raft leadership")
			}
			n.step()
		case <-load.C:
			n.refreshMeta()
		}
	}
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

func (n *Node) inCluster() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
}

// maybeBootstrap makes the first raft configuration once BootstrapExpect
// voters see each other and none of them is in a cluster already.
func (n *Node) maybeBootstrap() {
	var servers []raft.Server
	for _, m := range n.Members() {
		if m.State != "alive" || !m.Meta.Voter || m.Meta.RaftID == "" || m.Meta.RaftAddr == "" {
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
		alive := known && (m.State == "alive" || m.State == "suspect")
		if alive {
			delete(n.missingSince, s.ID)
			continue
		}
		remove := false
		switch cur, ok := byName[nameOfRaftID(id)]; {
		case ok && cur.Meta.RaftID != id && cur.State == "alive":
			remove = true // the node restarted under a new ID
		case known && m.State == "left":
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
		if inConfig[id] || !m.Meta.Voter || m.State != "alive" || m.Meta.RaftAddr == "" {
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
	states := map[string]string{}
	for name, m := range n.members {
		states[name] = m.State
	}
	n.mu.Unlock()
	now := time.Now()
	for _, b := range names {
		st := states[b]
		if st == "alive" || st == "suspect" || b == n.cfg.NodeName {
			delete(n.bridgeGone, b)
			continue
		}
		if st != "left" {
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

// refreshMeta re-reads the load and gossips the metadata when it changed.
func (n *Node) refreshMeta() {
	var l Load
	if f := n.loadFn.Load(); f != nil {
		l = (*f)()
	} else if n.cfg.Load != nil {
		l = n.cfg.Load()
	}
	cpu := n.cpu.sample()
	n.mu.Lock()
	old := n.meta
	n.meta.Participants = max(l.Participants, 0)
	n.meta.BitrateBps = max(l.BitrateBps, 0)
	n.meta.CPU = float64(int(cpu*100)) / 100
	changed := old != n.meta
	n.mu.Unlock()
	if changed {
		n.ml.UpdateNode(n.cfg.LoadInterval)
	}
}

// SetLoadFunc sets the function that reports this node's load, called every
// LoadInterval from the run loop (it must not block). It replaces
// Config.Load, for a caller that is built after the node.
func (n *Node) SetLoadFunc(f func() Load) {
	if f == nil {
		n.loadFn.Store(nil)
		return
	}
	n.loadFn.Store(&f)
}

// SetDraining sets the draining flag gossiped to the cluster.
func (n *Node) SetDraining(d bool) {
	n.mu.Lock()
	n.meta.Draining = d
	n.mu.Unlock()
	if n.ml != nil {
		n.ml.UpdateNode(time.Second)
	}
}

// reconnectLoop retries dead members and, while alone, the Join addresses,
// so that both sides of a healed partition merge again. Close does not wait
// for it: a join attempt to a dead address can take memberlist's TCPTimeout
// (30 s on WAN), and shutting down must not. It stops at the next address
// once the node is closed, and a join on a shut-down memberlist fails.
func (n *Node) reconnectLoop() {
	if len(n.cfg.Join) > 0 {
		if _, err := n.ml.Join(n.cfg.Join); err != nil {
			n.log.Warn("no join address answered yet; retrying", "err", redactErr(err))
		}
	}
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		var addrs []string
		alive := 0
		n.mu.Lock()
		for name, m := range n.members {
			switch {
			case m.State == "alive" || m.State == "suspect":
				alive++
			case m.State == "dead" && time.Since(m.Since) < time.Hour:
				if a := m.addr; a != "" {
					addrs = append(addrs, a)
				}
			case time.Since(m.Since) >= time.Hour:
				delete(n.members, name)
			}
		}
		n.mu.Unlock()
		if alive <= 1 {
			addrs = append(addrs, n.cfg.Join...)
		}
		for _, a := range addrs {
			select {
			case <-n.done:
				return
			default:
			}
			n.ml.Join([]string{a})
		}
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
// of the cluster, if Run has not left first). It is idempotent and waits.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		if n.ml != nil {
			n.ml.Shutdown()
		}
		n.shutdownRaft()
		if n.fwd != nil {
			n.fwd.close()
		}
		n.wg.Wait()
	})
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

// memberState is what the events delegate records about a node.
type memberState struct {
	Member
	addr string // gossip address, for reconnects
}

// delegate implements memberlist.Delegate.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	b := d.meta.encode()
	d.mu.Unlock()
	if len(b) > limit {
		return nil
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events implements memberlist.EventDelegate: it records and wakes the run
// loop, never blocking.
type events Node

func (e *events) record(nd *memberlist.Node, gone bool) {
	meta, err := decodeMeta(nd.Meta)
	if err != nil {
		meta = NodeMeta{}
	}
	st := "alive"
	if gone {
		st = "dead"
		if meta.Leaving {
			st = "left"
		}
	}
	e.mu.Lock()
	m, ok := e.members[nd.Name]
	if !ok {
		m = &memberState{}
		e.members[nd.Name] = m
	}
	if !ok || m.State != st {
		m.Since = time.Now()
	}
	m.Name, m.State, m.Meta = nd.Name, st, meta
	m.addr = nd.Address()
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *events) NotifyJoin(nd *memberlist.Node)   { e.record(nd, false) }
func (e *events) NotifyLeave(nd *memberlist.Node)  { e.record(nd, true) }
func (e *events) NotifyUpdate(nd *memberlist.Node) { e.record(nd, false) }

// faultTransport is memberlist's NetTransport with test faults on every
// outgoing packet and stream.
type faultTransport struct {
	*memberlist.NetTransport
	faults NetFaults
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.faults != nil && !t.faults.Allow(addr) {
		return time.Now(), nil // dropped on the wire
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.faults != nil && !t.faults.Allow(addr) {
		return nil, errPartitioned
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// raftFirstLast returns the first and last index of the stored raft log.
func (n *Node) raftFirstLast() (uint64, uint64) {
	first, _ := n.logs.FirstIndex()
	last, _ := n.logs.LastIndex()
	return first, last
}

// listenGossip opens gossip's TCP and UDP sockets on host:port. Port 0 asks
// the kernel for a TCP port and then binds UDP to the same number, which
// another socket may hold: then it tries again with a fresh port, as
// memberlist does for its own transport (ours wraps it for fault
// injection, so memberlist's retry does not apply).
func listenGossip(host string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}
