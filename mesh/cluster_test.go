package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// testNet is an in-process network fault injector shared by the nodes of a
// test: nodes in different groups cannot talk; every raft write is delayed.
type testNet struct {
	mu     sync.Mutex
	owner  map[string]string // address → node name
	group  map[string]int    // node name → partition group
	delay  time.Duration
}

func newTestNet() *testNet {
	return &testNet{owner: map[string]string{}, group: map[string]int{}}
}

func (tn *testNet) register(name string, addrs ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, a := range addrs {
		if a != "" {
			tn.owner[a] = name
		}
	}
}

// partition puts the named nodes in group 1, all others in group 0.
func (tn *testNet) partition(names ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	clear(tn.group)
	for _, n := range names {
		tn.group[n] = 1
	}
}

func (tn *testNet) heal() { tn.partition() }

type nodeFaults struct {
	tn   *testNet
	self string
}

func (f nodeFaults) Allow(addr string) bool {
	f.tn.mu.Lock()
	defer f.tn.mu.Unlock()
	peer, ok := f.tn.owner[addr]
	return !ok || f.tn.group[peer] == f.tn.group[f.self]
}

func (f nodeFaults) Delay() time.Duration {
	f.tn.mu.Lock()
	defer f.tn.mu.Unlock()
	return f.tn.delay
}

func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func fastGossip(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.SuspicionMult = 2
	mc.GossipInterval = 50 * time.Millisecond
	mc.PushPullInterval = 2 * time.Second
	mc.TCPTimeout = time.Second
	mc.DeadNodeReclaimTime = time.Millisecond
}

// testCluster is several nodes in this process over loopback sockets.
type testCluster struct {
	t      testing.TB
	secret Secret
	net    *testNet
	mu     sync.Mutex
	nodes  map[string]*testNode
	opts   func(*Config)
}

type testNode struct {
	*Node
	cancel context.CancelFunc
	done   chan struct{}
}

func newTestCluster(t testing.TB, voters int, opts func(*Config)) *testCluster {
	tc := &testCluster{t: t, secret: NewSecret(), net: newTestNet(), nodes: map[string]*testNode{}, opts: opts}
	t.Cleanup(tc.stopAll)
	for i := range voters {
		tc.start(fmt.Sprintf("n%d", i), true, voters, "")
	}
	return tc
}

func (tc *testCluster) config(name string, voter bool, expect int, gossipAddr string) Config {
	keys := DeriveKeys(tc.secret)
	pki, err := NewClusterPKI(keys, name)
	if err != nil {
		tc.t.Fatal(err)
	}
	if gossipAddr == "" {
		gossipAddr = "127.0.0.1:0"
	}
	cfg := Config{
		NodeName: name, Region: "r-" + name,
		GossipAddr: gossipAddr, RaftAddr: "127.0.0.1:0",
		Voter: voter, BootstrapExpect: expect,
		Keys: keys, PKI: pki,
		GossipProfile:     ProfileLocal,
		RaftTimeout:       400 * time.Millisecond,
		DeadGrace:         time.Second,
		BridgeGrace:       time.Second,
		LoadInterval:      200 * time.Millisecond,
		ReconcileInterval: 100 * time.Millisecond,
		ReconnectInterval: 500 * time.Millisecond,
		ApplyTimeout:      3 * time.Second,
		SnapshotInterval:  200 * time.Millisecond,
		TrailingLogs:      16,
		Faults:            nodeFaults{tc.net, name},
		Logger:            testLogger().With("node", name),
		tuneGossip:        fastGossip,
	}
	tc.mu.Lock()
	for _, n := range tc.nodes {
		cfg.Join = append(cfg.Join, n.GossipAddr())
		break
	}
	tc.mu.Unlock()
	if tc.opts != nil {
		tc.opts(&cfg)
	}
	return cfg
}

// start starts a node; gossipAddr "" picks a port.
func (tc *testCluster) start(name string, voter bool, expect int, gossipAddr string) *testNode {
	tc.t.Helper()
	return tc.startConfig(tc.config(name, voter, expect, gossipAddr))
}

func (tc *testCluster) startConfig(cfg Config) *testNode {
	tc.t.Helper()
	n, err := New(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		tc.t.Fatal(err)
	}
	tc.net.register(cfg.NodeName, n.GossipAddr(), n.raftAdv)
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tn.done)
		n.Run(ctx)
	}()
	tc.mu.Lock()
	tc.nodes[cfg.NodeName] = tn
	tc.mu.Unlock()
	return tn
}

func (tc *testCluster) node(name string) *testNode {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.nodes[name]
}

// kill stops a node abruptly: no gossip leave, no leadership transfer.
func (tc *testCluster) kill(name string) {
	tc.mu.Lock()
	n := tc.nodes[name]
	delete(tc.nodes, name)
	tc.mu.Unlock()
	n.Close()
	n.cancel()
	<-n.done
}

func (tc *testCluster) stopAll() {
	tc.mu.Lock()
	nodes := tc.nodes
	tc.nodes = map[string]*testNode{}
	tc.mu.Unlock()
	for _, n := range nodes {
		n.cancel()
	}
	for _, n := range nodes {
		<-n.done
	}
}

func (tc *testCluster) names() []string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return sortedKeys(tc.nodes)
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader returns the node that leads with all given nodes agreeing.
func (tc *testCluster) leader(names ...string) *testNode {
	var l *testNode
	eventually(tc.t, "one agreed raft leader", func() bool {
		l = nil
		var id raft.ServerID
		for i, name := range names {
			n := tc.node(name)
			if n == nil || n.raft == nil {
				continue
			}
			_, lid := n.raft.LeaderWithID()
			if lid == "" || (i > 0 && lid != id) {
				return false
			}
			id = lid
			if n.raft.State() == raft.Leader {
				l = n
			}
		}
		return l != nil && string(id) == l.raftID
	})
	return l
}

// voters returns the raft voter IDs as the node sees them.
func voterIDs(n *Node) []string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// formed waits until every named node sees all of them alive and the
// leader's configuration holds exactly their current raft IDs.
func (tc *testCluster) formed(names ...string) *testNode {
	tc.t.Helper()
	eventually(tc.t, "gossip membership converged", func() bool {
		for _, name := range names {
			alive := 0
			for _, m := range tc.node(name).Members() {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != len(names) {
				return false
			}
		}
		return true
	})
	l := tc.leader(names...)
	want := map[string]bool{}
	for _, name := range names {
		if tc.node(name).raft != nil {
			want[tc.node(name).raftID] = true
		}
	}
	eventually(tc.t, "raft voters are exactly the running voters", func() bool {
		ids := voterIDs(l.Node)
		if len(ids) != len(want) {
			return false
		}
		for _, id := range ids {
			if !want[id] {
				return false
			}
		}
		return true
	})
	return l
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterSingleNode(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	n := tc.formed("n0")
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "room")
	r, created, err := n.Join(ctx, key, "n0")
	if err != nil || !created || r.Bridges["n0"] != 1 {
		t.Fatalf("join: %+v %v %v", r, created, err)
	}
	r2, created, err := n.Join(ctx, key, "n0")
	if err != nil || created || r2.ConferenceID != r.ConferenceID || r2.Participants() != 2 {
		t.Fatalf("second join: %+v %v %v", r2, created, err)
	}
	if c, err := n.Rooms(ctx); err != nil || c != 1 {
		t.Fatalf("rooms %d %v", c, err)
	}
	for range 2 {
		if err := n.Leave(ctx, key, "n0"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := n.Lookup(ctx, key); ok || err != nil {
		t.Fatalf("room survives its last leave: %v %v", ok, err)
	}
	if err := n.Leave(ctx, key, "n0"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("leave of a deleted room: %v", err)
	}
	r3, created, err := n.Join(ctx, key, "n0")
	if err != nil || !created || r3.ConferenceID == r.ConferenceID {
		t.Fatalf("a later join must be a new meeting: %+v %v %v", r3, created, err)
	}
}
