package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

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
	faults := nodeFaults{tc.net, name}
	gln, gpc, err := listenGossip(gossipAddr)
	if err != nil {
		tc.t.Fatal(err)
	}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tc.t.Fatal(err)
	}
	cfg := Config{
		NodeName: name, Region: "r-" + name,
		GossipListener: gln, GossipConn: faults.packetConn(gpc), RaftListener: faults.listener(rln),
		Dial:  faults.dial,
		Voter: voter, BootstrapExpect: expect,
		Keys: keys, PKI: pki,
		GossipProfile:     ProfileLocal,
		RaftTimeout:       2 * time.Second, // lease 1 s: the shared cores are often saturated
		DeadGrace:         time.Second,
		BridgeGrace:       time.Second,
		LoadInterval:      200 * time.Millisecond,
		ReconcileInterval: 100 * time.Millisecond,
		ReconnectInterval: 500 * time.Millisecond,
		ApplyTimeout:      10 * time.Second, // calls wait this long for a leader: the shared cores are often saturated
		SnapshotInterval:  200 * time.Millisecond,
		TrailingLogs:      16,
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
				if m.State == MemberAlive {
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
	// Every node has cleared its previous run's entries (claim), so a
	// test's own proposals for a node's bridge cannot race with it.
	eventually(tc.t, "every node took its first step", func() bool {
		for _, name := range names {
			select {
			case <-tc.node(name).claimed:
			default:
				return false
			}
		}
		return true
	})
	return l
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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

func TestClusterForms(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if size == 5 && testing.Short() {
				t.Skip("5 nodes: skipped under -short")
			}
			tc := newTestCluster(t, size, nil)
			names := tc.names()
			l := tc.formed(names...)
			if got := len(voterIDs(l.Node)); got != size {
				t.Fatalf("%d voters, want %d", got, size)
			}
			// Every node answers for the whole cluster.
			ctx := ctxT(t)
			key := NewRoomKey([]byte("k"), "forms")
			var conf string
			for _, name := range names {
				r, _, err := tc.node(name).Join(ctx, key, name)
				if err != nil {
					t.Fatalf("join via %s: %v", name, err)
				}
				if conf == "" {
					conf = r.ConferenceID
				} else if r.ConferenceID != conf {
					t.Fatalf("join via %s: conference %s, want %s", name, r.ConferenceID, conf)
				}
			}
			r, ok, err := tc.node(names[size-1]).Lookup(ctx, key)
			if err != nil || !ok || r.Participants() != size || len(r.Bridges) != size {
				t.Fatalf("lookup: %+v %v %v", r, ok, err)
			}
			// Load and metadata reach the others by gossip.
			eventually(t, "metadata gossiped", func() bool {
				for _, m := range tc.node(names[0]).Members() {
					if m.Meta.Region != "r-"+m.Name || m.Meta.RaftID == "" {
						return false
					}
				}
				return true
			})
		})
	}
}

func TestClusterConcurrentFirstJoins(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	tc.formed(names...)
	// A non-voter forwards too.
	tc.start("x", false, 3, "")
	names = append(names, "x")
	tc.formed(names...)
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "everyone at once")
	const joins = 100
	var wg sync.WaitGroup
	confs := make([]string, joins)
	created := make([]bool, joins)
	errs := make([]error, joins)
	start := make(chan struct{})
	for i := range joins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := names[i%len(names)]
			r, c, err := tc.node(name).Join(ctx, key, name)
			confs[i], created[i], errs[i] = r.ConferenceID, c, err
		}()
	}
	close(start)
	wg.Wait()
	ids := map[string]int{}
	nCreated := 0
	for i := range joins {
		if errs[i] != nil {
			t.Fatalf("join %d: %v", i, errs[i])
		}
		ids[confs[i]]++
		if created[i] {
			nCreated++
		}
	}
	if len(ids) != 1 || nCreated != 1 {
		t.Fatalf("%d conference IDs and %d creations, want 1 and 1", len(ids), nCreated)
	}
	r, ok, err := tc.node("x").Lookup(ctx, key)
	if err != nil || !ok || r.Participants() != joins {
		t.Fatalf("lookup: %d participants %v %v, want %d", r.Participants(), ok, err, joins)
	}
	for name, c := range r.Bridges {
		if c != joins/len(names) {
			t.Fatalf("bridge %s holds %d, want %d", name, c, joins/len(names))
		}
	}
	// The non-voter's status asks the leader for what it does not hold.
	st := tc.node("x").Status(ctx)
	if st.Leader == "" || len(st.Voters) != 3 || st.Rooms != 1 || len(st.Members) != 4 {
		t.Fatalf("non-voter status: %+v", st)
	}
}

func TestClusterLeaderFailover(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "failover")
	var survivor string
	for _, n := range names {
		if n != l.cfg.NodeName {
			survivor = n
		}
	}
	r, _, err := tc.node(survivor).Join(ctx, key, survivor)
	if err != nil {
		t.Fatal(err)
	}
	old := l.raftID
	tc.kill(l.cfg.NodeName)
	rest := tc.names()
	nl := tc.leader(rest...)
	if nl.raftID == old {
		t.Fatal("the killed leader still leads")
	}
	// Joins continue, through both survivors, on the same meeting.
	for _, n := range rest {
		r2, created, err := tc.node(n).Join(ctxT(t), key, n)
		if err != nil || created || r2.ConferenceID != r.ConferenceID {
			t.Fatalf("join via %s after failover: %v %v %v", n, created, err, r2.ConferenceID == r.ConferenceID)
		}
	}
	// The dead leader is removed from the voters after the grace period.
	eventually(t, "dead leader removed from voters", func() bool {
		for _, id := range voterIDs(nl.Node) {
			if id == old {
				return false
			}
		}
		return true
	})
}

func TestClusterPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("partition: skipped under -short")
	}
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	// Cut the leader off: the worst case, it must step down.
	cut := l.cfg.NodeName
	var majority []string
	for _, n := range names {
		if n != cut {
			majority = append(majority, n)
		}
	}
	ctx := ctxT(t)
	hosted := NewRoomKey([]byte("k"), "hosted before")
	before, _, err := tc.node(cut).Join(ctx, hosted, cut)
	if err != nil {
		t.Fatal(err)
	}
	rooms := tc.node(majority[0]).fsm.count()
	tc.net.partition(cut)

	key := NewRoomKey([]byte("k"), "during the partition")
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, _, err = tc.node(cut).Join(short, key, cut)
	cancel()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("join on the minority side: %v, want ErrUnavailable", err)
	}
	if _, _, err := tc.node(cut).Lookup(ctxT(t), hosted); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lookup on the minority side: %v, want ErrUnavailable", err)
	}
	nl := tc.leader(majority...)
	r, created, err := nl.Join(ctxT(t), key, nl.cfg.NodeName)
	if err != nil || !created {
		t.Fatalf("join on the majority side: %v %v", created, err)
	}
	// The majority still knows the room the cut node hosts (within the
	// bridge grace it is not cleaned up yet, the cut node may come back).
	if got := tc.node(majority[0]).fsm.count(); got < rooms {
		t.Fatalf("majority lost rooms: %d < %d", got, rooms)
	}

	tc.net.heal()
	tc.formed(names...)
	// The healed node agrees with the majority on the meeting made while it
	// was cut off.
	eventually(t, "healed node serves the majority's room", func() bool {
		r2, created, err := tc.node(cut).Join(ctxT(t), key, cut)
		return err == nil && !created && r2.ConferenceID == r.ConferenceID
	})
	_ = before
}

func TestClusterDeadBridgeCleanup(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	var victim string
	for _, n := range names {
		if n != l.cfg.NodeName {
			victim = n
			break
		}
	}
	ctx := ctxT(t)
	alone := NewRoomKey([]byte("k"), "held by the victim alone")
	shared := NewRoomKey([]byte("k"), "held by two bridges")
	for _, j := range []struct {
		key    RoomKey
		bridge string
	}{{alone, victim}, {alone, victim}, {shared, victim}, {shared, l.cfg.NodeName}} {
		if _, _, err := tc.node(j.bridge).Join(ctx, j.key, j.bridge); err != nil {
			t.Fatal(err)
		}
	}
	tc.kill(victim)
	eventually(t, "dead bridge's rooms cleaned up", func() bool {
		return !l.fsm.holds(alone)
	})
	r, ok, err := l.Lookup(ctxT(t), shared)
	if err != nil || !ok || len(r.Bridges) != 1 || r.Bridges[l.cfg.NodeName] != 1 {
		t.Fatalf("shared room after its other bridge died: %+v %v %v", r, ok, err)
	}
	// A later join of the dead bridge's room is a new meeting.
	if _, created, err := l.Join(ctxT(t), alone, l.cfg.NodeName); err != nil || !created {
		t.Fatalf("join after cleanup: %v %v", created, err)
	}
}

func TestClusterRestartedNodeRejoins(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	var victim string
	for _, n := range names {
		if n != l.cfg.NodeName {
			victim = n
			break
		}
	}
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "restart")
	if _, _, err := tc.node(victim).Join(ctx, key, victim); err != nil {
		t.Fatal(err)
	}
	oldID := tc.node(victim).raftID
	gossip := tc.node(victim).GossipAddr()
	raftAddr := tc.node(victim).raftAdv
	tc.kill(victim)
	// Same gossip and raft addresses, as a restarted process would have:
	// the leader must drop the old ID before adding the new one at the
	// same address.
	cfg := tc.config(victim, true, 3, gossip)
	cfg.RaftListener.Close()
	rln, err := net.Listen("tcp", raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RaftListener = nodeFaults{tc.net, victim}.listener(rln)
	n := tc.startConfig(cfg)
	if n.raftID == oldID {
		t.Fatal("restarted node reuses its raft ID")
	}
	tc.formed(names...) // exactly the current IDs: the old one is gone
	// The restarted node serves joins; its previous run's participants are
	// gone, so its first join clears them and the room starts afresh.
	r, created, err := n.Join(ctxT(t), key, victim)
	if err != nil || !created || r.Bridges[victim] != 1 {
		t.Fatalf("join on the restarted node: %+v %v %v", r, created, err)
	}
}

func TestClusterLastLeaveForgetsRoom(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "ephemeral")
	for _, n := range names {
		if _, _, err := tc.node(n).Join(ctx, key, n); err != nil {
			t.Fatal(err)
		}
		if err := tc.node(n).SetStateForTest(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := tc.node(n).Leave(ctx, key, n); err != nil {
			t.Fatal(err)
		}
	}
	// Every replica forgets the room, and so does a snapshot.
	eventually(t, "no FSM refers to the room", func() bool {
		for _, n := range names {
			if tc.node(n).fsm.holds(key) {
				return false
			}
		}
		return true
	})
	snap, _ := l.fsm.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if containsKey(sink.b, key) {
		t.Fatal("snapshot still holds the room key")
	}
	// Once raft has snapshotted and compacted, no log entry on the leader
	// refers to the room either.
	for range 40 {
		if _, _, err := l.Join(ctx, NewRoomKey([]byte("k"), fmt.Sprint("filler", time.Now().UnixNano())), "n0"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "raft log compacted past the room", func() bool {
		if err := l.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return false
		}
		return !logMentions(l.Node, key)
	})
}

// SetStateForTest gives the room a password hash, a lock and E2EE.
func (n *Node) SetStateForTest(ctx context.Context, key RoomKey) error {
	r, ok, err := n.Lookup(ctx, key)
	if err != nil || !ok {
		return fmt.Errorf("lookup: %v %v", ok, err)
	}
	got, err := n.SetState(ctx, key, r.ConferenceID, RoomState{PasswordHash: []byte("argon2id-hash"), Locked: true, E2EERequired: true, Moderation: ModerationToken})
	if err != nil {
		return err
	}
	if !got.Locked || !got.E2EERequired || string(got.PasswordHash) != "argon2id-hash" {
		return fmt.Errorf("state not applied: %+v", got)
	}
	return nil
}

type memSink struct{ b []byte }

func (s *memSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *memSink) Close() error                { return nil }
func (s *memSink) ID() string                  { return "mem" }
func (s *memSink) Cancel() error               { return nil }

func containsKey(b []byte, k RoomKey) bool {
	for i := 0; i+len(k) <= len(b); i++ {
		if string(b[i:i+len(k)]) == string(k[:]) {
			return true
		}
	}
	return false
}

// logMentions reports whether any raft log entry still stored holds key.
func logMentions(n *Node, key RoomKey) bool {
	first, last := n.raftFirstLast()
	for i := first; i <= last && i != 0; i++ {
		var l raft.Log
		if n.logs.GetLog(i, &l) == nil && containsKey(l.Data, key) {
			return true
		}
	}
	return false
}

func TestClusterLoadGossiped(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.formed("n0", "n1")
	tc.node("n1").SetLoadFunc(func() Load { return Load{Participants: 42, BitrateBps: 3_000_000} })
	tc.node("n1").SetDraining(true)
	eventually(t, "n0 sees n1's load and draining flag", func() bool {
		for _, m := range tc.node("n0").Members() {
			if m.Name == "n1" {
				return m.Meta.Participants == 42 && m.Meta.BitrateBps == 3_000_000 && m.Meta.Draining
			}
		}
		return false
	})
}

func TestLogRedaction(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stdLogger(l).Printf("[WARN] memberlist: failed to probe 10.1.2.3:7946 via [2001:db8::1]:7946 and ::1")
	hcLogger(l).Info("failed to contact", "addr", "192.168.0.7:7947")
	out := buf.String()
	for _, ip := range []string{"10.1.2.3", "2001:db8", "::1", "192.168.0.7"} {
		if strings.Contains(out, ip) {
			t.Fatalf("log carries %s: %s", ip, out)
		}
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "failed to probe") {
		t.Fatalf("level or message lost: %s", out)
	}
}

// TestFSMIdempotentRetries: a Join or Leave proposed twice (its fate was
// unknown) counts once, also on a replica restored from a snapshot.
func TestFSMIdempotentRetries(t *testing.T) {
	var key RoomKey
	join := (&command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: "b", conferenceID: "c1", created: 1}).encode()
	join2 := (&command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: "b", conferenceID: "c2", created: 2}).encode()
	leave := (&command{typ: cmdLeave, reqID: newRequestID(), key: key, bridge: "b"}).encode()
	apply := func(f *fsm, b []byte) applyResult {
		r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: b}).(applyResult)
		return r
	}
	f := newFSM()
	if r := apply(f, join); !r.created || r.room.Participants() != 1 {
		t.Fatalf("first join: %+v", r)
	}
	if r := apply(f, join); !r.created || r.room.Participants() != 1 {
		t.Fatalf("retried join counted again or lost its created flag: %+v", r)
	}
	apply(f, join2)
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.b))); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*fsm{f, g} {
		apply(x, join2) // a retry after the snapshot
		apply(x, leave)
		apply(x, leave) // and a retried leave
		r, ok := x.lookup(key)
		if !ok || r.Participants() != 1 || r.ConferenceID != "c1" {
			t.Fatalf("after retries: %+v %v", r, ok)
		}
	}
}

// TestClusterRetriedProposal: the same encoded Join proposed twice through
// the cluster (as propose does when the leader is lost in flight) counts once.
func TestClusterRetriedProposal(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	tc.formed(names...)
	key := NewRoomKey([]byte("k"), "retry")
	cmd := (&command{typ: cmdJoin, reqID: newRequestID(), key: key, bridge: "n1", conferenceID: NewConferenceID(), created: 1}).encode()
	for _, via := range names {
		if _, err := tc.node(via).propose(ctxT(t), cmd); err != nil {
			t.Fatal(err)
		}
	}
	r, ok, err := tc.node("n2").Lookup(ctxT(t), key)
	if err != nil || !ok || r.Participants() != 1 {
		t.Fatalf("%d participants after %d proposals of one join (%v %v)", r.Participants(), len(names), ok, err)
	}
}
