package signaling_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// clusterNode is one node of a real in-process cluster: a raft voter
// (mesh.Node over loopback, mutual TLS) and a signaling server with its
// bridge, whose directory is that voter.
type clusterNode struct {
	name  string
	mesh  *mesh.Node
	srv   *signaling.Server
	url   string
	hs    *httptest.Server
	conns sync.Map // net.Conn -> struct{}: the HTTP server's connections
	stop  func()   // idempotent
}

// startVoters starts n voters n0..n<n-1> forming one cluster, with
// raftTimeout, each with its signaling server. Cleanup stops them.
func startVoters(t *testing.T, n int, raftTimeout time.Duration) ([]*clusterNode, []byte) {
	t.Helper()
	keys := mesh.DeriveKeys(mesh.NewSecret())
	var nodes []*clusterNode
	var gossip []string
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		var gln net.Listener
		var gpc net.PacketConn
		for range 20 { // the same port for TCP and UDP
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			pc, err := net.ListenPacket("udp4", ln.Addr().String())
			if err == nil {
				gln, gpc = ln, pc
				break
			}
			ln.Close()
		}
		if gln == nil {
			t.Fatal("no port free for gossip")
		}
		rln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pki, err := mesh.NewClusterPKI(keys, name)
		if err != nil {
			t.Fatal(err)
		}
		mn, err := mesh.New(mesh.Config{
			NodeName: name, Region: "local",
			GossipListener: gln, GossipConn: gpc, RaftListener: rln,
			Join:  append([]string(nil), gossip...),
			Voter: true, BootstrapExpect: n,
			Keys: keys, PKI: pki,
			GossipProfile: mesh.ProfileLocal,
			RaftTimeout:   raftTimeout,
			DeadGrace:     time.Second,
			Logger:        testLogger(t).With("node", name),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := mn.Start(); err != nil {
			t.Fatal(err)
		}
		gossip = append(gossip, gln.Addr().String())
		cn := &clusterNode{name: name, mesh: mn}
		cn.start(t, keys.RoomKey)
		nodes = append(nodes, cn)
	}
	return nodes, keys.RoomKey
}

// start runs the node's mesh, bridge and signaling server.
func (cn *clusterNode) start(t *testing.T, roomKey []byte) {
	t.Helper()
	log := testLogger(t).With("node", cn.name)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(bridge.Config{UDPConn: udp, PublicIPs: []string{"127.0.0.1"}, IncludeLoopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := signaling.New(signaling.Config{
		NodeName: cn.name, Region: "local", RoomKey: roomKey,
		Directory: cn.mesh, Bridge: br, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); cn.mesh.Run(ctx) }()
	go func() { defer wg.Done(); br.Run(ctx) }()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			cn.conns.Store(c, struct{}{})
		}
	}
	hs.Start()
	cn.srv, cn.url, cn.hs = srv, hs.URL, hs
	var once sync.Once
	cn.stop = func() {
		once.Do(func() {
			hs.Close()
			cn.mesh.Close()
			cancel()
			wg.Wait()
			udp.Close()
		})
	}
	t.Cleanup(cn.stop)
}

// kill ends the node as a crash would for its clients: their sockets
// break (no leave, no error message), it answers nothing more, and its
// voter is gone.
func (cn *clusterNode) kill() {
	cn.conns.Range(func(c, _ any) bool {
		c.(net.Conn).Close()
		return true
	})
	cn.stop()
}

// leader is the raft leader's name as n knows it, "" when there is none.
// A voter keeps naming a dead leader until its heartbeat timeout: no
// directory write gets through meanwhile.
func (cn *clusterNode) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return cn.mesh.Status(ctx).Leader
}

// TestMoverAdmittedWithoutLeader: when the node a participant was on dies
// and it led raft, a participant moving to another node with its resume
// secret is admitted there on that node's copy of the directory before any
// new leader exists, and gets the media of a participant on that node. Its
// directory join completes in the background once a leader is back; a
// mover that leaves before then leaves no count behind and takes none
// that is not its own.
//
// The voters' --raft-timeout is long (15 s), so that the survivors elect
// no leader until the steps that must happen without one are done; the
// test asserts that no leader existed when each of them happened, not how
// long they took.
func TestMoverAdmittedWithoutLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-voter cluster with a 15 s raft timeout")
	}
	nodes, roomKey := startVoters(t, 3, 15*time.Second)
	var lead *clusterNode
	waitFor(t, 120*time.Second, "a raft leader all voters know", func() bool {
		l := nodes[0].leader()
		for _, n := range nodes {
			if n.leader() != l || !n.mesh.Ready() {
				return false
			}
		}
		for _, n := range nodes {
			if n.name == l {
				lead = n
			}
		}
		return lead != nil
	})
	var dest *clusterNode // the node the movers go to
	for _, n := range nodes {
		if n != lead {
			dest = n
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	room := roomname.New()
	key := mesh.NewRoomKey(roomKey, room)

	// Bob talks on dest.
	audio, err := client.NewAudio("a", "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := client.Join(ctx, dest.url, room, client.Options{Name: "Bob", Tracks: []webrtc.TrackLocal{audio}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bob.Close)
	go (&client.Synth{Sender: 1, Ext: bob.Ext}).RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})

	// Ada and Cy are on the leader, with no cascade to dest: they get
	// Bob's media only once they are on dest.
	type mover struct {
		c           *client.Client
		movedNoLead atomic.Int32 // 1: failed over with no leader, 2: with one
		gotMedia    chan struct{}
		once        sync.Once
	}
	movers := map[string]*mover{}
	for _, name := range []string{"Ada", "Cy"} {
		mv := &mover{gotMedia: make(chan struct{})}
		c, err := client.Join(ctx, lead.url, room, client.Options{
			Name: name, Failover: true, Alternates: []string{dest.url},
			OnFailover: func(string) {
				if l := dest.leader(); l == "" || l == lead.name {
					mv.movedNoLead.Store(1)
				} else {
					mv.movedNoLead.Store(2)
				}
			},
			OnTrack: func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				if _, _, err := tr.ReadRTP(); err == nil {
					mv.once.Do(func() { close(mv.gotMedia) })
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		mv.c = c
		movers[name] = mv
	}
	counts := func() map[string]int {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, ok, err := dest.mesh.Lookup(lctx, key)
		if err != nil || !ok {
			return nil
		}
		return r.Bridges
	}
	waitFor(t, 30*time.Second, "directory counts 2 on the leader, 1 on dest", func() bool {
		b := counts()
		return b[lead.name] == 2 && b[dest.name] == 1
	})

	lead.kill()
	for name, mv := range movers {
		select {
		case <-mv.gotMedia:
		case <-ctx.Done():
			t.Fatalf("%s never got Bob's media on %s", name, dest.name)
		}
		switch mv.movedNoLead.Load() {
		case 1:
		case 2:
			t.Fatalf("%s was admitted on %s only once a new leader existed", name, dest.name)
		default:
			t.Fatalf("%s got media but never failed over", name)
		}
	}
	// Both movers were admitted while no leader existed (above); the
	// counter must show it. Under load a mover's first attempt can end
	// before its admission and its retry be the one admitted, so at least
	// one (CI once counted 1 with both admitted leaderless).
	if got := dest.srv.Stats().AdmittedWithoutLeader; got < 1 {
		t.Errorf("AdmittedWithoutLeader = %d, want at least 1", got)
	} else {
		t.Logf("AdmittedWithoutLeader = %d", got)
	}
	// Ada leaves while there is still no leader; Cy stays.
	movers["Ada"].c.Close()
	waitFor(t, 30*time.Second, "Ada gone from dest", func() bool { return dest.srv.Participants() == 2 })
	if l := dest.leader(); l != "" && l != lead.name {
		t.Fatalf("a leader (%s) was elected before the test's leaderless steps were done: raise the raft timeout", l)
	}

	// Once a leader is back, the directory counts Bob and Cy on dest, and
	// the dead node no more.
	waitForf(t, 120*time.Second, func() string { return fmt.Sprintf("directory counts %v, want only %s: 2", counts(), dest.name) }, func() bool {
		b := counts()
		return len(b) == 1 && b[dest.name] == 2
	})
	// Both stay: Cy's background join applied and was kept (a session
	// between a drop and its resume is counted too, so wait, never for
	// long).
	waitForf(t, 30*time.Second, func() string {
		return fmt.Sprintf("dest holds %d participants, want 2 (Bob, Cy); stats %+v", dest.srv.Participants(), dest.srv.Stats())
	}, func() bool { return dest.srv.Participants() == 2 })
}
