package mesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

func TestSecret(t *testing.T) {
	s := NewSecret()
	enc := s.Encode()
	back, err := ParseSecret("  " + enc + "\n")
	if err != nil || back != s {
		t.Fatalf("round trip: %v", err)
	}
	if strings.Contains(fmt.Sprint(s), enc[len(secretPrefix):]) || strings.Contains(fmt.Sprintf("%v %+v", s, s), enc[len(secretPrefix):len(secretPrefix)+8]) {
		t.Fatal("fmt prints the secret")
	}
	for _, bad := range []string{"", "meshmeet-cs1:", enc[:len(enc)-1], "x" + enc, enc + "AA", strings.Replace(enc, "meshmeet-cs1:", "meshmeet-cs2:", 1)} {
		_, err := ParseSecret(bad)
		if !errors.Is(err, ErrBadSecret) {
			t.Fatalf("ParseSecret(%q) = %v", bad, err)
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Fatal("error echoes the secret")
		}
	}
	k1, k2 := DeriveKeys(s), DeriveKeys(s)
	if !bytes.Equal(k1.GossipKey, k2.GossipKey) || !bytes.Equal(k1.CAKey, k2.CAKey) || k1.GossipLabel != k2.GossipLabel {
		t.Fatal("derivation is not deterministic")
	}
	all := [][]byte{k1.GossipKey, k1.TURNSecret, k1.RoomKey, k1.AdminToken, k1.CAKey.Seed()}
	for i := range all {
		if len(all[i]) != 32 {
			t.Fatalf("key %d has %d bytes", i, len(all[i]))
		}
		for j := range i {
			if bytes.Equal(all[i], all[j]) {
				t.Fatalf("keys %d and %d are equal", i, j)
			}
		}
	}
	if k3 := DeriveKeys(NewSecret()); bytes.Equal(k3.RoomKey, k1.RoomKey) || k3.GossipLabel == k1.GossipLabel {
		t.Fatal("two secrets derive the same keys")
	}
}

func TestCommandRoundTrip(t *testing.T) {
	var key RoomKey
	rand.Read(key[:])
	for _, c := range []command{
		{typ: cmdJoin, key: key, bridge: "eu-1", conferenceID: NewConferenceID(), created: time.Now().UnixNano()},
		{typ: cmdLeave, key: key, bridge: "eu-1"},
		{typ: cmdBridgeDead, bridge: "us-2"},
		{typ: cmdSetState, key: key, conferenceID: "c", state: RoomState{PasswordHash: []byte("h"), Locked: true, E2EERequired: true, Moderation: ModerationToken}},
		{typ: cmdSetFields, key: key, conferenceID: "c", state: RoomState{Locked: true, Fields: StateLocked | StateE2EERequired}},
		{typ: cmdDropGhosts, bridge: "eu-1", ghosts: []ghost{{key: key, conferenceID: "c", count: 2}, {conferenceID: "d", count: 1}}},
	} {
		got, err := decodeCommand(c.encode())
		if err != nil {
			t.Fatalf("type %d: %v", c.typ, err)
		}
		if !bytes.Equal(got.encode(), c.encode()) {
			t.Fatalf("type %d: round trip differs", c.typ)
		}
	}
	// Unknown types: ignorable ones are skipped, others stop the node.
	f := newFSM()
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{byte(cmdIgnorable | 0x10), 1, 2}}); r != nil {
		t.Fatalf("ignorable command applied: %v", r)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("unknown command did not panic")
			}
		}()
		f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{0x33}})
	}()
}

func FuzzDecodeCommand(f *testing.F) {
	var key RoomKey
	f.Add((&command{typ: cmdJoin, key: key, bridge: "b", conferenceID: "c", created: 1}).encode())
	f.Add((&command{typ: cmdLeave, key: key, bridge: "b"}).encode())
	f.Add((&command{typ: cmdBridgeDead, bridge: "b"}).encode())
	f.Add((&command{typ: cmdSetState, key: key, conferenceID: "c", state: RoomState{PasswordHash: []byte{1}}}).encode())
	f.Add((&command{typ: cmdSetFields, key: key, conferenceID: "c", state: RoomState{PasswordHash: []byte{1}, Fields: StatePassword}}).encode())
	f.Add((&command{typ: cmdDropGhosts, bridge: "b", ghosts: []ghost{{key: key, conferenceID: "c", count: 1}}}).encode())
	f.Add((&command{typ: cmdJoinPin, key: key, bridge: "b", conferenceID: "c", created: 1, pin: []string{"eu", "us"}}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		c2, err := decodeCommand(c.encode())
		if err != nil || !bytes.Equal(c2.encode(), c.encode()) {
			t.Fatalf("decode→encode→decode differs: %v", err)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	fs := newFSM()
	var key RoomKey
	fs.Apply(&raft.Log{Type: raft.LogCommand, Data: (&command{typ: cmdJoin, key: key, bridge: "b", conferenceID: "c", created: 1}).encode()})
	fs.Apply(&raft.Log{Type: raft.LogCommand, Data: (&command{typ: cmdJoinPin, key: RoomKey{1}, bridge: "b", conferenceID: "d", created: 1, pin: []string{"eu"}}).encode()})
	snap, _ := fs.Snapshot()
	sink := &memSink{}
	snap.Persist(sink)
	f.Add(sink.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rooms, _, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		g := newFSM()
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			t.Fatal(err)
		}
		s, _ := g.Snapshot()
		out := &memSink{}
		s.Persist(out)
		again, _, err := decodeSnapshot(out.b)
		if err != nil || len(again) != len(rooms) {
			t.Fatalf("re-encoded snapshot: %v", err)
		}
	})
}

func FuzzDecodeReport(f *testing.F) {
	f.Add(encodeReport("eu-1", []RoomKey{NewRoomKey([]byte("k"), "a"), NewRoomKey([]byte("k"), "b")}))
	f.Add(encodeReport("n", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		bridge, held, err := decodeReport(b)
		if err != nil {
			return
		}
		keys := make([]RoomKey, 0, len(held))
		for k := range held {
			keys = append(keys, k)
		}
		bridge2, held2, err := decodeReport(encodeReport(bridge, keys))
		if err != nil || bridge2 != bridge || len(held2) != len(held) {
			t.Fatalf("decode→encode→decode differs: %v", err)
		}
		for k := range held {
			if !held2[k] {
				t.Fatal("a key was lost")
			}
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{opApply, 0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, p, err := readFrame(bytes.NewReader(b))
		if err == nil && len(p) > maxForwardLen {
			t.Fatal("frame over the bound")
		}
	})
}

func TestClusterWrongGossipKeyRejected(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	ctx := ctxT(t)
	key := NewRoomKey([]byte("k"), "members only")
	if _, _, err := l.Join(ctx, key, l.cfg.NodeName); err != nil {
		t.Fatal(err)
	}
	before := l.fsm.count()
	target := tc.node(names[0]).GossipAddr()

	// A node with no gossip key at all.
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "plain", "127.0.0.1", 0
	mc.Logger = stdLogger(testLogger())
	plain, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := plain.Join([]string{target}); err == nil || n != 0 {
		t.Fatalf("a node without a gossip key joined %d nodes (err %v)", n, err)
	}
	plain.Shutdown()

	for _, tt := range []struct {
		name string
		keys func(Keys) Keys
	}{
		{"another secret", func(Keys) Keys { return DeriveKeys(NewSecret()) }},
		{"right label, wrong key", func(k Keys) Keys { o := DeriveKeys(NewSecret()); o.GossipLabel = k.GossipLabel; return o }},
		{"no label", func(k Keys) Keys {
			o := k
			o.GossipLabel = ""
			o.GossipKey = DeriveKeys(NewSecret()).GossipKey
			return o
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tc.config("intruder", true, 1, "")
			cfg.Join = nil
			cfg.Keys = tt.keys(cfg.Keys)
			cfg.PKI, _ = NewClusterPKI(cfg.Keys, "intruder")
			in := tc.startConfig(cfg)
			defer tc.kill("intruder")
			if n, err := in.ml.Join([]string{target}); err == nil || n != 0 {
				t.Fatalf("intruder joined %d nodes (err %v)", n, err)
			}
			// The intruder makes its own one-node cluster; nothing of it
			// reaches ours.
			eventually(t, "intruder leads its own cluster", func() bool { return in.raft.State() == raft.Leader })
			ctx := ctxT(t)
			if _, _, err := in.Join(ctx, key, "intruder"); err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				for _, m := range tc.node(name).Members() {
					if m.Name == "intruder" || m.Name == "plain" {
						t.Fatalf("%s lists the intruder", name)
					}
				}
			}
			if got := len(in.Members()); got != 1 {
				t.Fatalf("intruder sees %d members", got)
			}
			if r, _, err := l.Lookup(ctx, key); err != nil || r.Bridges["intruder"] != 0 || l.fsm.count() != before {
				t.Fatalf("cluster state changed: %+v %v", r, err)
			}
		})
	}
}

func TestClusterUncertifiedRaftPeerRejected(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	names := tc.names()
	l := tc.formed(names...)
	addr := l.raftAdv
	term := l.raft.CurrentTerm()
	rejected := l.stream.rejected.Load()
	rooms := l.fsm.count()

	// A plain TCP peer that speaks raft's wire format at once.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// rpcRequestVote, then a msgpack map (padded with msgpack nils).
	c.Write(append([]byte{1, 0x81, 0xa4, 'T', 'e', 'r', 'm', 0xcd, 0xff, 0xff}, bytes.Repeat([]byte{0xc0}, 32)...))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("plain TCP peer got an answer")
	}
	c.Close()

	// TLS peers: without a client certificate, and with one from another
	// cluster's CA. Raft's own client is used for the second, so a real
	// RequestVote with a huge term is tried.
	noCert := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if tcn, err := tls.Dial("tcp", addr, noCert); err == nil {
		tcn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = tcn.Read(make([]byte, 1))
		tcn.Close()
		if err == nil {
			t.Fatal("peer without a certificate got an answer")
		}
	}
	foreign, _ := NewClusterPKI(DeriveKeys(NewSecret()), "foreign")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	fs := newStreamLayer(ln, ln.Addr(), foreign, nil, func(c net.Conn) { c.Close() })
	ft := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: fs, MaxPool: 1, Timeout: 5 * time.Second, Logger: hcLogger(testLogger())})
	defer ft.Close()
	var resp raft.RequestVoteResponse
	err = ft.RequestVote(raft.ServerID(l.raftID), raft.ServerAddress(addr), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("foreign"), Addr: []byte(ln.Addr().String())},
		Term:      term + 100, LastLogIndex: 1 << 40, LastLogTerm: term + 99,
	}, &resp)
	if err == nil {
		t.Fatal("foreign raft peer got a vote answer")
	}
	if _, err := dialTLS(addr, 5*time.Second, foreign, nil); err == nil {
		t.Fatal("foreign peer opened a forwarding connection")
	}
	// The server counts a rejection when its side of the handshake ends,
	// which can come after the client has already seen the failure.
	eventually(t, "three rejected handshakes counted", func() bool {
		return l.stream.rejected.Load() >= rejected+3
	})
	// The foreign vote carried term+100: had it been decoded, the leader
	// would have stepped down into that term. (A re-election of our own
	// under a loaded machine only adds a term or two.)
	for _, name := range names {
		n := tc.node(name)
		if n.raft.CurrentTerm() >= term+100 || n.fsm.count() != rooms {
			t.Fatalf("an uncertified peer changed raft state on %s: term %d (was %d)", name, n.raft.CurrentTerm(), term)
		}
	}
}

func TestAdminHandler(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	n := tc.formed("n0")
	key := NewRoomKey(n.cfg.Keys.RoomKey, "secret-room-name")
	if _, _, err := n.Join(ctxT(t), key, "n0"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.AdminHandler(n.cfg.Keys.AdminToken))
	defer srv.Close()
	get := func(path, auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, auth := range []string{"", "Bearer x", AdminAuthorization(DeriveKeys(NewSecret()).AdminToken)} {
		if resp, _ := get("/admin/status", auth); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("auth %q: %d", auth, resp.StatusCode)
		}
	}
	resp, b := get("/admin/status", AdminAuthorization(n.cfg.Keys.AdminToken))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Rooms != 1 || st.Leader != "n0" || len(st.Voters) != 1 || len(st.Members) != 1 || st.Members[0].Region != "r-n0" {
		t.Fatalf("status: %+v", st)
	}
	hexKey := fmt.Sprintf("%x", key[:])
	if bytes.Contains(b, []byte("secret-room-name")) || bytes.Contains(b, []byte(hexKey[:16])) {
		t.Fatal("status reveals a room")
	}
}

// testCA is an operator's PKI for TestClusterOperatorPKI.
func testCA(t *testing.T) (caPEM []byte, issue func(name string) (certPEM, keyPEM []byte)) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ops CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return encodePEM("CERTIFICATE", der), func(name string) ([]byte, []byte) {
		npub, nkey, _ := ed25519.GenerateKey(rand.Reader)
		lt := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		d, err := x509.CreateCertificate(rand.Reader, lt, ca, npub, key)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(nkey)
		return encodePEM("CERTIFICATE", d), encodePEM("PRIVATE KEY", kd)
	}
}

func TestClusterOperatorPKI(t *testing.T) {
	if testing.Short() {
		t.Skip("operator PKI cluster: skipped under -short")
	}
	caPEM, issue := testCA(t)
	tc := newTestCluster(t, 0, nil)
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		cfg := tc.config(name, true, 3, "")
		certPEM, keyPEM := issue(name)
		pki, err := LoadPKI(caPEM, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PKI = pki
		tc.startConfig(cfg)
	}
	l := tc.formed("n0", "n1", "n2")
	if _, _, err := tc.node("n1").Join(context.Background(), NewRoomKey([]byte("k"), "ops"), "n1"); err != nil {
		t.Fatal(err)
	}
	// The cluster-derived CA of the same secret is not the operator's CA.
	derived, _ := NewClusterPKI(l.cfg.Keys, "x")
	if _, err := dialTLS(l.raftAdv, 5*time.Second, derived, nil); err == nil {
		t.Fatal("a certificate of the derived CA is accepted under an operator PKI")
	}
	other, _ := testCA(t)
	c, k := issue("n9")
	if _, err := LoadPKI(other, c, k); err == nil {
		t.Fatal("LoadPKI accepts a certificate of another CA")
	}
}

func TestNodeCertificateRenewal(t *testing.T) {
	keys := DeriveKeys(NewSecret())
	p, err := NewClusterPKI(keys, "n")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p.now = func() time.Time { return now }
	c1, err := p.certificate()
	if err != nil {
		t.Fatal(err)
	}
	if life := c1.Leaf.NotAfter.Sub(c1.Leaf.NotBefore); life > nodeCertLifetime+time.Minute {
		t.Fatalf("node certificate lives %v", life)
	}
	if err := verifyChain(p.pool, c1.Certificate); err != nil {
		t.Fatal(err)
	}
	now = now.Add(nodeCertLifetime / 4)
	if c2, _ := p.certificate(); c2 != c1 {
		t.Fatal("renewed before half-life")
	}
	now = now.Add(nodeCertLifetime / 2)
	c3, _ := p.certificate()
	if c3 == c1 || !c3.Leaf.NotAfter.After(c1.Leaf.NotAfter) {
		t.Fatal("not renewed after half-life")
	}
	// Another node of the same secret verifies it (same derived CA). (c1:
	// c3 is valid only on the test's advanced clock.)
	q, _ := NewClusterPKI(keys, "m")
	if err := verifyChain(q.pool, c1.Certificate); err != nil {
		t.Fatal(err)
	}
}

// TestSetFieldsKeepsTheOthers: a change of some fields of a room's state
// leaves the others as the directory has them, so two moderators who
// change two fields at once (a password through one node, the lobby
// through another, each from a state read before the other's change) both
// take effect; a change without Fields sets every field, as before.
func TestSetFieldsKeepsTheOthers(t *testing.T) {
	var key RoomKey
	rand.Read(key[:])
	f := newFSM()
	apply := func(c command) applyResult {
		t.Helper()
		r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: c.encode()}).(applyResult)
		if r.err != nil {
			t.Fatalf("apply %d: %v", c.typ, r.err)
		}
		return r
	}
	apply(command{typ: cmdJoin, key: key, bridge: "eu-1", conferenceID: "c", created: time.Now().UnixNano()})
	// Both moderators read the blank state, then change one field each.
	apply(command{typ: cmdSetFields, key: key, conferenceID: "c", state: RoomState{PasswordHash: []byte("hash"), Fields: StatePassword}})
	r := apply(command{typ: cmdSetFields, key: key, conferenceID: "c", state: RoomState{Locked: true, Fields: StateLocked}})
	if string(r.room.PasswordHash) != "hash" || !r.room.Locked || r.room.E2EERequired {
		t.Fatalf("after a password and a lobby change: %+v", r.room)
	}
	r = apply(command{typ: cmdSetFields, key: key, conferenceID: "c", state: RoomState{E2EERequired: true, Fields: StateE2EERequired}})
	if string(r.room.PasswordHash) != "hash" || !r.room.Locked || !r.room.E2EERequired {
		t.Fatalf("after an E2EE change: %+v", r.room)
	}
	r = apply(command{typ: cmdSetState, key: key, conferenceID: "c", state: RoomState{}})
	if r.room.PasswordHash != nil || r.room.Locked || r.room.E2EERequired {
		t.Fatalf("a whole-state change left %+v", r.room)
	}
	// A set-fields command must name at least one field, and only known ones.
	whole := (&command{typ: cmdSetState, key: key, conferenceID: "c"}).encode()
	for _, fields := range []byte{0, byte(allStateFields) + 1, 0x80} {
		bad := append(append([]byte{byte(cmdSetFields)}, whole[1:]...), fields)
		if _, err := decodeCommand(bad); err == nil {
			t.Errorf("decoded set-fields with fields %#x", fields)
		}
	}
	if _, err := decodeCommand(append([]byte{byte(cmdSetFields)}, whole[1:]...)); err == nil {
		t.Error("decoded set-fields without its fields byte")
	}
}
