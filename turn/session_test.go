package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// sessionCreds mints credentials of session id for ts.
func sessionCreds(t *testing.T, id string) (user, pass string) {
	t.Helper()
	user, pass, err := CredentialsFor(testSecret, id, 5*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return user, pass
}

// TestSessionChurn is the join/leave exhaustion a hostile participant
// found: each join minted fresh credentials, and allocations made with
// them lived on after the leave, so ~417 cycles filled a node. Here the
// participant keeps every allocation open (it never sends a Refresh of 0),
// and 500 cycles fit in a server that holds 60 allocations, because each
// leave ends the session. Without EndSession the same churn fills it
// within 30 cycles (the second half shows it).
func TestSessionChurn(t *testing.T) {
	const perCycle, total = 2, 60
	ts := startServer(t, nil, func(c *Config) { c.MaxAllocations = total; c.UnauthRate = -1 })
	for i := 0; i < 500; i++ {
		id := fmt.Sprintf("churn-%d", i)
		user, pass := sessionCreds(t, id)
		for j := 0; j < perCycle; j++ {
			rc, r := rawAllocateAs(t, ts, user, pass)
			if r.Type.Class != stun.ClassSuccessResponse {
				t.Fatalf("cycle %d: allocation refused: %v (stats %+v)", i, r, ts.Stats())
			}
			defer rc.c.Close()
		}
		ts.EndSession(id) // the participant left
		if n := ts.Stats().Allocations; n != 0 {
			t.Fatalf("cycle %d: %d allocations left after the session ended", i, n)
		}
	}
	// The same churn where nobody ends the sessions fills the server.
	for i := 0; ; i++ {
		if i > total/perCycle {
			t.Fatalf("%d allocations of open sessions in a server that holds %d", i*perCycle, total)
		}
		user, pass := sessionCreds(t, fmt.Sprintf("open-%d", i))
		rc, r := rawAllocateAs(t, ts, user, pass)
		defer rc.c.Close()
		if r.Type.Class != stun.ClassSuccessResponse {
			break
		}
		rc2, _ := rawAllocateAs(t, ts, user, pass)
		defer rc2.c.Close()
	}
	if st := ts.Stats(); st.QuotaTotal == 0 || st.Allocations != total {
		t.Fatalf("stats after filling the server: %+v", st)
	}
}

// TestEndSession checks what a participant's leave does to its TURN
// credentials: its allocations close, and every later request with them
// is refused — Refresh, CreatePermission, ChannelBind and a new Allocate,
// with the credentials it had and with ones minted at a resume — while
// another participant's allocation goes on.
func TestEndSession(t *testing.T) {
	ts := startServer(t, nil, nil)
	peer := netip.MustParseAddrPort("127.0.0.1:5000")
	user, pass := sessionCreds(t, "leaver")
	leaver, r := rawAllocateAs(t, ts, user, pass)
	if r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", r)
	}
	if r := leaver.bind(0x4000, peer); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ChannelBind: %v", r)
	}
	ou, op := sessionCreds(t, "stayer")
	stayer, r := rawAllocateAs(t, ts, ou, op)
	if r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", r)
	}

	ts.EndSession("leaver")
	if st := ts.Stats(); st.Allocations != 1 {
		t.Fatalf("allocations after the leave: %d, want the other participant's 1", st.Allocations)
	}
	before := ts.Stats().SessionEnded
	refused := func(what string, r *stun.Message) {
		t.Helper()
		if r.Type.Class != stun.ClassErrorResponse {
			t.Fatalf("%s after the session ended: %v", what, r)
		}
	}
	refused("Refresh", leaver.refresh(10*time.Minute))
	refused("ChannelBind", leaver.bind(0x4001, peer))
	refused("CreatePermission", leaver.roundTrip(stunRequest(t, stun.MethodCreatePermission,
		append([]stun.Setter{peerAddr{IP: peer.Addr().AsSlice(), Port: int(peer.Port())}}, leaver.auth...)...)))
	if _, r := rawAllocateAs(t, ts, user, pass); r.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("Allocate with the ended session's credentials: %v", r)
	}
	// Credentials minted for the session later (a resume) are refused too.
	ru, rp := sessionCreds(t, "leaver")
	if _, r := rawAllocateAs(t, ts, ru, rp); r.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("Allocate with the ended session's resume credentials: %v", r)
	}
	if got := ts.Stats().SessionEnded - before; got < 5 {
		t.Fatalf("SessionEnded grew by %d, want >= 5", got)
	}
	if st := ts.Stats(); st.Allocations != 1 {
		t.Fatalf("allocations: %d, want 1", st.Allocations)
	}
	// The other participant is untouched.
	if r := stayer.refresh(10 * time.Minute); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("the other participant's Refresh: %v", r)
	}
	// Ending a session twice, or one that never allocated, is harmless.
	ts.EndSession("leaver")
	ts.EndSession("never-allocated")
	ts.EndSession("")
}

// TestSessionAllocationCap: a participant holds at most
// MaxAllocationsPerUser allocations (default 6), counted over every
// credential minted for its session, so fresh credentials at a resume do
// not open a second budget.
func TestSessionAllocationCap(t *testing.T) {
	ts := startServer(t, nil, nil)
	u1, p1 := sessionCreds(t, "capped")
	u2, p2, err := CredentialsFor(testSecret, "capped", 4*time.Minute, time.Now()) // the resume's credentials
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		u, p := u1, p1
		if i%2 == 1 {
			u, p = u2, p2
		}
		if _, r := rawAllocateAs(t, ts, u, p); r.Type.Class != stun.ClassSuccessResponse {
			t.Fatalf("allocation %d: %v", i, r)
		}
	}
	for _, c := range [][2]string{{u1, p1}, {u2, p2}} {
		if _, r := rawAllocateAs(t, ts, c[0], c[1]); r.Type.Class != stun.ClassErrorResponse {
			t.Fatalf("a seventh allocation of one session: %v", r)
		}
	}
	if st := ts.Stats(); st.Allocations != 6 || st.QuotaUser != 2 {
		t.Fatalf("stats: %+v", st)
	}
	// Another participant has its own budget.
	u3, p3 := sessionCreds(t, "other")
	if _, r := rawAllocateAs(t, ts, u3, p3); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("another session's allocation: %v", r)
	}
}

func TestCredentialsForSessionID(t *testing.T) {
	for _, id := range []string{"", "a:b", "a.b", "a b", "é", string(make([]byte, 65))} {
		if _, _, err := CredentialsFor(testSecret, id, time.Minute, time.Now()); !errors.Is(err, ErrSessionID) {
			t.Errorf("CredentialsFor(%q): %v, want ErrSessionID", id, err)
		}
	}
	user, _, err := CredentialsFor(testSecret, "Ab-9_x", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionOf(user); got != "Ab-9_x" {
		t.Fatalf("sessionOf(%q) = %q", user, got)
	}
	if id, v := checkUsername(user, true, time.Now(), 2*time.Minute, time.Hour); v != credOK || id == "" {
		t.Fatalf("checkUsername(%q) = %q, %v", user, id, v)
	}
	// A credential minted without a session is a session of its own.
	plain, _ := Credentials(testSecret, time.Minute, time.Now())
	if sessionOf(plain) == sessionOf(user) || sessionOf(plain) == "" {
		t.Fatalf("sessionOf(%q) = %q", plain, sessionOf(plain))
	}
}

// TestRelayOnlyToBridges: with no --turn-allow-peer range, the server
// relays only to the cluster's bridges' media addresses, exactly (address
// and port), over UDP (the data plane) and TCP (pion's path); a public
// address is refused at CreatePermission, another port of the bridge's
// address per packet; and when the bridge set changes, live allocations
// follow it from their next packet, channels and cached verdicts included.
func TestRelayOnlyToBridges(t *testing.T) {
	bridgeA, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bridgeA.Close()
	bridgeB, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bridgeB.Close()
	apA := bridgeA.LocalAddr().(*net.UDPAddr).AddrPort()
	apB := bridgeB.LocalAddr().(*net.UDPAddr).AddrPort()
	ts := startServer(t, nil, func(c *Config) { c.Policy = NewPolicy(nil, []netip.AddrPort{apA}, nil) })

	buf := make([]byte, 1500)
	// roundsTo relays to `not` and to `to`, in that order, a few rounds
	// (Send indications first, then ChannelData once pion's client bound a
	// channel), and checks that `to` gets them and `not` nothing.
	roundsTo := func(relay net.PacketConn, to, not net.PacketConn) {
		t.Helper()
		for round := 0; round < 10; round++ {
			denied := ts.Stats().PacketsDenied
			relay.WriteTo([]byte("to no bridge"), not.LocalAddr())
			if _, err := relay.WriteTo([]byte("to the bridge"), to.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			to.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, _, err := to.ReadFrom(buf); err != nil || string(buf[:n]) != "to the bridge" {
				t.Fatalf("round %d: the bridge got %q, %v; stats %+v", round, buf[:n], err, ts.Stats())
			}
			// The server may count the refused packet a moment after it
			// relayed the next one (they are handled apart): wait for it.
			for deadline := time.Now().Add(10 * time.Second); ts.Stats().PacketsDenied == denied; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the packet to a non-bridge port was not dropped", round)
				}
			}
		}
		not.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := not.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a port that is no bridge's received %q", buf[:n])
		}
	}
	for _, tcp := range []bool{false, true} {
		user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
		relay, err := dial(t, ts, user, pass, tcp).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		before := ts.Stats().PeerDenied
		for _, a := range []string{"8.8.8.8:53", "1.1.1.1:53", "127.0.0.2:5000"} {
			if _, err := relay.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a))); err == nil {
				t.Errorf("relaying to %s, no bridge, was permitted", a)
			}
		}
		if got := ts.Stats().PeerDenied - before; got < 3 {
			t.Errorf("PeerDenied grew by %d, want >= 3", got)
		}
		ts.SetBridges([]netip.AddrPort{apA})
		roundsTo(relay, bridgeA, bridgeB)
		ts.SetBridges([]netip.AddrPort{apB}) // A left the cluster, B joined
		roundsTo(relay, bridgeB, bridgeA)
		ts.SetBridges([]netip.AddrPort{apA})
		roundsTo(relay, bridgeA, bridgeB)
	}
}

// TestCredentialsBoundToServer: credentials a node's server mints for a
// session work on that server only. Another node shares the secret, so
// without the binding a participant could take its credentials there,
// where the end of its session is never heard of, and keep allocations
// open after it left.
func TestCredentialsBoundToServer(t *testing.T) {
	a := startServer(t, nil, nil)
	b := startServer(t, nil, nil) // another node of the cluster: same secret
	user, pass, err := a.Credentials("traveller", 5*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if iss, sess := parseSession(user); iss == "" || sess != "traveller" {
		t.Fatalf("username %q: issuer %q, session %q", user, iss, sess)
	}
	if _, r := rawAllocateAs(t, b, user, pass); r.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("another node took the credentials: %v", r)
	}
	if st := b.Stats(); st.AuthOtherServer == 0 || st.Allocations != 0 {
		t.Fatalf("the other node's stats: %+v", st)
	}
	if _, r := rawAllocateAs(t, a, user, pass); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("the issuing node refused its own credentials: %v", r)
	}
	a.EndSession("traveller")
	if st := a.Stats(); st.Allocations != 0 {
		t.Fatalf("allocations after the session ended: %d", st.Allocations)
	}
	if _, _, err := a.Credentials("bad.id", time.Minute, time.Now()); !errors.Is(err, ErrSessionID) {
		t.Fatalf("Credentials(bad.id): %v", err)
	}
}

// TestRelayCloseTwice: a relay socket closed by EndSession is closed again
// by pion when it deletes the allocation, or at shutdown; the second Close
// must not fail, since pion's allocation manager stops closing the other
// allocations at the first error (they then stayed open after Run).
func TestRelayCloseTwice(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{quota: newQuota(6, 10)}
	if r := s.quota.acquire("s"); r != quotaOK {
		t.Fatal(r)
	}
	rc := &relayConn{PacketConn: pc, s: s, session: "s"}
	if !s.quota.attach(rc) {
		t.Fatal("attach")
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n, _ := s.quota.count(); n != 0 {
		t.Fatalf("%d allocations counted after Close", n)
	}
}

// TestEndedSessionsExpire: the list of ended sessions is bounded by time:
// an entry is forgotten once its credentials could no longer allocate,
// swept at most a minute later.
func TestEndedSessionsExpire(t *testing.T) {
	q := newQuota(6, 10)
	ttl := 11 * time.Minute // CredentialTTL plus a minute of skew, as EndSession passes
	for i := 0; i < 1000; i++ {
		now := time.Duration(i) * time.Second
		q.end(fmt.Sprintf("s%d", i), now, now+ttl)
	}
	// 1000 sessions over 1000 s, each remembered 11 minutes: at most the
	// last 11 minutes, plus a minute's sweep lag, are kept.
	if n := q.endedCount(); n > 12*60 || n < 11*60 {
		t.Fatalf("%d ended sessions remembered", n)
	}
	if !q.isEnded("s999") || q.isEnded("s0") {
		t.Fatal("the newest must be remembered and the oldest forgotten")
	}
	q.end("late", time.Hour, time.Hour+ttl)
	if n := q.endedCount(); n != 1 {
		t.Fatalf("%d ended sessions an hour later, want 1", n)
	}
}
