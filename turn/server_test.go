package turn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type testServer struct {
	*Server
	udp, tcp string
	secrets  *Secrets
}

// startServer runs a server on 127.0.0.1 with ports chosen by the OS. Its
// policy opens 127.0.0.1/32 (the tests' peers are on loopback) but denies
// the ports in deny.
func startServer(t *testing.T, deny []uint16, mod func(*Config)) *testServer {
	t.Helper()
	return startServerWith(t, deny, mod, nil)
}

// startServerWith is startServer with pre run on the server before Run.
func startServerWith(t *testing.T, deny []uint16, mod func(*Config), pre func(*Server)) *testServer {
	t.Helper()
	// UDP and TCP on one port: the TCP half of a free UDP port may be
	// taken by another test process (CI saw it), so try a few ports.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 9 {
			t.Fatal(err)
		}
	}
	secrets := NewSecrets(testSecret)
	cfg := Config{
		PacketConns: []net.PacketConn{pc},
		Listeners:   []net.Listener{ln},
		RelayIP:     netip.MustParseAddr("127.0.0.1"),
		Secrets:     secrets,
		Policy:      NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, nil, deny),
		Logger:      slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if pre != nil {
		pre(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if n := s.Stats().Allocations; n != 0 {
			t.Errorf("%d allocations left after Run returned", n)
		}
	})
	return &testServer{Server: s, udp: pc.LocalAddr().String(), tcp: ln.Addr().String(), secrets: secrets}
}

// quietLogs keeps pion's client quiet in tests.
var quietLogs = func() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}()

// dial returns a pion TURN client of ts over UDP (or TCP) from 127.0.0.1.
func dial(t *testing.T, ts *testServer, user, pass string, tcp bool) *pionturn.Client {
	t.Helper()
	return dialFrom(t, ts, "127.0.0.1", user, pass, tcp)
}

// dialFrom is dial from the local address src.
func dialFrom(t *testing.T, ts *testServer, src, user, pass string, tcp bool) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	addr := ts.udp
	if tcp {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp4", ts.tcp)
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
		addr = ts.tcp
	} else {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(src, "0"))
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	}
	cl, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: addr,
		STUNServerAddr: addr,
		Username:       user,
		Password:       pass,
		Realm:          "meshmeet",
		Conn:           conn,
		RTO:            200 * time.Millisecond,
		LoggerFactory:  quietLogs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); conn.Close() })
	return cl
}

func TestCredentialMatrix(t *testing.T) {
	ts := startServer(t, nil, nil)
	now := time.Now()
	good, goodPass := Credentials(testSecret, 5*time.Minute, now)
	expired, expiredPass := Credentials(testSecret, -time.Minute, now)
	future, futurePass := Credentials(testSecret, 2*time.Hour, now) // beyond the 10-minute TTL
	noColon := "1999999999"
	tests := []struct {
		name, user, pass string
		ok               bool
		counter          func(Stats) uint64
	}{
		{"valid", good, goodPass, true, nil},
		{"valid over TCP", good, goodPass, true, nil},
		{"expired", expired, expiredPass, false, func(s Stats) uint64 { return s.AuthExpired }},
		{"future beyond TTL", future, futurePass, false, func(s Stats) uint64 { return s.AuthFuture }},
		{"no colon", noColon, Password(testSecret, noColon), false, func(s Stats) uint64 { return s.AuthMalformed }},
		{"empty id", strings.Split(good, ":")[0] + ":", Password(testSecret, strings.Split(good, ":")[0]+":"), false, func(s Stats) uint64 { return s.AuthMalformed }},
		{"tampered password", good, Password([]byte("another secret, not the server's"), good), false, func(s Stats) uint64 { return s.AuthFailed }},
		{"tampered username", good + "x", goodPass, false, func(s Stats) uint64 { return s.AuthFailed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.Stats()
			cl := dial(t, ts, tt.user, tt.pass, strings.HasSuffix(tt.name, "TCP"))
			relay, err := cl.Allocate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Allocate: %v", err)
				}
				relay.Close()
				return
			}
			if err == nil {
				relay.Close()
				t.Fatal("Allocate succeeded")
			}
			if got := tt.counter(ts.Stats()) - tt.counter(before); got == 0 {
				t.Errorf("refusal not counted under its reason (%+v)", ts.Stats())
			}
		})
	}
}

func TestCredentialRotation(t *testing.T) {
	ts := startServer(t, nil, nil)
	now := time.Now()
	oldUser, oldPass := ts.secrets.Mint(5*time.Minute, now)
	newSecret := []byte("the next secret, also 32 bytes..")
	ts.secrets.Rotate(newSecret, time.Hour, now)
	newUser, newPass := ts.secrets.Mint(5*time.Minute, now)
	if newPass != Password(newSecret, newUser) {
		t.Fatal("Mint does not use the rotated secret")
	}
	for _, c := range []struct{ user, pass string }{{oldUser, oldPass}, {newUser, newPass}} {
		relay, err := dial(t, ts, c.user, c.pass, false).Allocate()
		if err != nil {
			t.Fatalf("Allocate during the overlap: %v", err)
		}
		relay.Close()
	}
	// After the overlap, the old secret no longer authenticates.
	ts.secrets.Rotate([]byte("a third secret, also 32 bytes..."), 0, now)
	oldUser, oldPass = Credentials(newSecret, 5*time.Minute, now)
	if _, err := dial(t, ts, oldUser, oldPass, false).Allocate(); err == nil {
		t.Fatal("Allocate with a secret rotated out (overlap 0) succeeded")
	}
}

func TestCheckUsername(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ttl, grace := 10*time.Minute, time.Hour
	u := func(d time.Duration) string { return strconvI(now.Add(d).Unix()) + ":abc" }
	tests := []struct {
		user     string
		allocate bool
		want     credVerdict
	}{
		{u(time.Minute), true, credOK},
		{u(10 * time.Minute), true, credOK},
		{u(11 * time.Minute), true, credFuture},
		{u(0), true, credExpired},
		{u(-time.Second), true, credExpired},
		{u(-time.Minute), false, credOK}, // refresh of a live allocation after expiry
		{u(-59 * time.Minute), false, credOK},
		{u(-2 * time.Hour), false, credExpired}, // past the grace
		{"abc", true, credMalformed},
		{":abc", true, credMalformed},
		{"12a:abc", true, credMalformed},
		{"-5:abc", true, credMalformed},
		{"+5:abc", true, credMalformed},
		{u(time.Minute) + ":x", true, credMalformed},
		{"99999999999999999999:abc", true, credMalformed},
		{u(time.Minute)[:10] + ":", true, credMalformed},
	}
	for _, tt := range tests {
		if _, got := checkUsername(tt.user, tt.allocate, now, ttl, grace); got != tt.want {
			t.Errorf("checkUsername(%q, allocate=%v) = %d, want %d", tt.user, tt.allocate, got, tt.want)
		}
	}
	// Minted usernames carry no room or participant name: expiry, colon,
	// key ID and 22 random characters.
	user, _ := Credentials(testSecret, ttl, now)
	exp, id, _ := strings.Cut(user, ":")
	if exp != strconvI(now.Add(ttl).Unix()) || len(id) != kidLen+22 {
		t.Errorf("minted username %q has an unexpected shape", user)
	}
	if u2, _ := Credentials(testSecret, ttl, now); u2 == user {
		t.Error("two minted usernames are equal")
	}
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }

func TestQuotas(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.MaxAllocationsPerUser = 2; c.MaxAllocations = 3 })
	user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
	for i := 0; i < 2; i++ {
		if _, err := dial(t, ts, user, pass, false).Allocate(); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if _, err := dial(t, ts, user, pass, false).Allocate(); err == nil {
		t.Fatal("third allocation of one user succeeded")
	}
	if st := ts.Stats(); st.QuotaUser != 1 || st.Allocations != 2 {
		t.Fatalf("stats after the per-user refusal: %+v", st)
	}
	u2, p2 := Credentials(testSecret, 5*time.Minute, time.Now())
	if _, err := dial(t, ts, u2, p2, false).Allocate(); err != nil {
		t.Fatalf("another user's allocation: %v", err)
	}
	u3, p3 := Credentials(testSecret, 5*time.Minute, time.Now())
	if _, err := dial(t, ts, u3, p3, true).Allocate(); err == nil {
		t.Fatal("allocation beyond the total quota succeeded")
	}
	if st := ts.Stats(); st.QuotaTotal != 1 || st.Allocations != 3 {
		t.Fatalf("stats after the total refusal: %+v", st)
	}
}

// stunRequest builds a request of method with a fresh transaction ID.
func stunRequest(t *testing.T, method stun.Method, setters ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// reqTransport is a REQUESTED-TRANSPORT attribute.
type reqTransport byte

func (r reqTransport) AddTo(m *stun.Message) error {
	m.Add(stun.AttrRequestedTransport, []byte{byte(r), 0, 0, 0})
	return nil
}

func TestUnauthRateLimit(t *testing.T) {
	const burst = 3
	ts := startServer(t, nil, func(c *Config) { c.UnauthRate = 0.001; c.UnauthBurst = burst })
	srv, _ := net.ResolveUDPAddr("udp4", ts.udp)

	// count sends n unauthenticated Allocate requests from src and counts
	// the 401 answers, until every request is accounted for: answered, or
	// counted as not answered.
	count := func(src string, n int) int {
		c, err := net.ListenPacket("udp4", src)
		if err != nil {
			t.Skipf("cannot bind %s: %v", src, err)
		}
		defer c.Close()
		before := ts.Stats().UnauthLimited
		for i := 0; i < n; i++ {
			c.WriteTo(stunRequest(t, stun.MethodAllocate, reqTransport(17)).Raw, srv)
		}
		got := 0
		buf := make([]byte, 1500)
		for guard := time.Now().Add(10 * time.Second); got+int(ts.Stats().UnauthLimited-before) < n; {
			if time.Now().After(guard) {
				t.Fatalf("%d answers and %d drops for %d requests", got, ts.Stats().UnauthLimited-before, n)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				continue
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:k]...)}
			var ec stun.ErrorCodeAttribute
			if m.Decode() == nil && ec.GetFrom(m) == nil && ec.Code == stun.CodeUnauthorized {
				got++
			}
		}
		return got
	}
	if got := count("127.0.0.1:0", 30); got != burst {
		t.Fatalf("%d 401 answers to 30 requests, want %d", got, burst)
	}
	if st := ts.Stats(); st.UnauthLimited != 30-burst {
		t.Fatalf("UnauthLimited = %d, want %d", st.UnauthLimited, 30-burst)
	}
	if got := count("127.0.0.1:0", 5); got != 0 {
		t.Fatalf("%d 401 answers from a source over its limit, want 0", got)
	}
	// Another source address has its own budget.
	if got := count("127.0.0.2:0", 5); got != burst {
		t.Fatalf("%d 401 answers to another source, want %d", got, burst)
	}
}

func TestTCPRelayRefused(t *testing.T) {
	ts := startServer(t, nil, nil)
	check := func(raw []byte) {
		t.Helper()
		m := &stun.Message{Raw: raw}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil || ec.Code != stun.CodeUnsupportedTransProto || !bytes.Contains(ec.Reason, []byte("RFC 6062")) {
			t.Fatalf("answer to a TCP Allocate: %v %v", ec, err)
		}
	}
	// Over UDP.
	c, err := net.Dial("udp4", ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(stunRequest(t, stun.MethodAllocate, reqTransport(protoTCP)).Raw)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	check(buf[:n])
	// Over TCP, where frames must be cut out of the stream.
	tc, err := net.Dial("tcp4", ts.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write(append(stunRequest(t, stun.MethodBinding).Raw, stunRequest(t, stun.MethodAllocate, reqTransport(protoTCP)).Raw...))
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := pionturn.NewSTUNConn(tc)
	for i := 0; i < 2; i++ {
		n, _, err := sc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			check(buf[:n])
		}
	}
	// And pion's own client, authenticated, over TCP.
	user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
	if _, err := dial(t, ts, user, pass, true).AllocateTCP(); err == nil {
		t.Fatal("a TCP relay allocation succeeded")
	}
	if st := ts.Stats(); st.TCPRelayRefused < 3 || st.Allocations != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestRelayPolicy checks the policy on every path: CreatePermission,
// ChannelBind, Send and ChannelData to a denied port, and packets from a
// denied peer.
func TestRelayPolicy(t *testing.T) {
	// The peer and the canary listen on loopback; the server allows
	// 127.0.0.1 but denies the canary's port, as it denies service ports.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	canary, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close()
	canaryPort := uint16(canary.LocalAddr().(*net.UDPAddr).Port)
	ts := startServer(t, []uint16{canaryPort}, nil)

	for _, tcp := range []bool{false, true} {
		user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
		relay, err := dial(t, ts, user, pass, tcp).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()

		// CreatePermission to denied addresses fails.
		before := ts.Stats().PeerDenied
		for _, a := range []string{"10.0.0.1:5000", "169.254.169.254:80", "127.0.0.2:5000", "[::ffff:127.0.0.2]:5000"} {
			ua, _ := net.ResolveUDPAddr("udp", a)
			if _, err := relay.WriteTo([]byte("x"), ua); err == nil {
				t.Errorf("relaying to %s was permitted", a)
			}
		}
		if got := ts.Stats().PeerDenied - before; got < 4 {
			t.Errorf("PeerDenied grew by %d, want >= 4", got)
		}

		// Packets to the canary (a denied port on an allowed address) are
		// dropped whether they go by Send indication (the first packets) or
		// ChannelData (after the client bound a channel); packets to the
		// peer arrive. Each round sends to the canary first: when the peer
		// has the packet, the server has handled the canary's.
		buf := make([]byte, 1500)
		for round := 0; round < 20; round++ {
			denied := ts.Stats().PacketsDenied
			if _, err := relay.WriteTo([]byte("canary"), canary.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, from, err := peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("round %d: peer got %q, %v", round, buf[:n], err)
			}
			if ts.Stats().PacketsDenied == denied {
				t.Fatalf("round %d: the packet to the denied port was not dropped", round)
			}
			// The reverse path: the canary's port may not send to the
			// client; the peer may.
			canary.WriteTo([]byte("from canary"), from)
			peer.WriteTo([]byte("reply"), from)
			relay.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, src, err := relay.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "reply" || src.String() != peer.LocalAddr().String() {
				t.Fatalf("round %d: client got %q from %v, %v", round, buf[:n], src, err)
			}
		}
		canary.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := canary.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the canary received %q", buf[:n])
		}
	}
}

// TestChannelBindDenied sends a raw, authenticated ChannelBind to denied
// peers without any CreatePermission before it (pion's client always
// creates the permission first): the policy must refuse it on this path too.
func TestChannelBindDenied(t *testing.T) {
	ts := startServer(t, []uint16{7880}, nil)
	rc := rawAllocate(t, ts)
	for i, peer := range []string{"10.0.0.1:5000", "169.254.169.254:80", "[::ffff:127.0.0.2]:5000", "192.168.1.1:5000"} {
		before := ts.Stats().PeerDenied
		if r := rc.bind(0x4000+uint16(i), netip.MustParseAddrPort(peer)); r.Type.Class != stun.ClassErrorResponse {
			t.Fatalf("ChannelBind to %s: %v", peer, r)
		}
		if ts.Stats().PeerDenied == before {
			t.Fatalf("ChannelBind to %s not counted as denied", peer)
		}
	}
	// An allowed peer binds (so the refusals above were the policy's).
	if r := rc.bind(0x4010, netip.MustParseAddrPort("127.0.0.1:5000")); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ChannelBind to an allowed peer: %v", r)
	}
}

// rawClient is a TURN client over UDP written with bare STUN messages, so
// that tests can send exactly what they mean (and allocate nothing).
type rawClient struct {
	t     *testing.T
	c     *net.UDPConn // connected to the server
	relay netip.AddrPort
	auth  []stun.Setter
	buf   []byte
}

// rawAllocate makes an allocation on ts's UDP listener.
func rawAllocate(t *testing.T, ts *testServer) *rawClient {
	t.Helper()
	user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
	rc, r := rawAllocateAs(t, ts, user, pass)
	if r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", r)
	}
	return rc
}

// rawAllocateAs sends an Allocate with the credentials user and pass from
// a fresh socket and returns the client and the answer. The client's
// relay is set when the answer is a success.
func rawAllocateAs(t *testing.T, ts *testServer, user, pass string) (*rawClient, *stun.Message) {
	t.Helper()
	c, err := net.Dial("udp4", ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, c: c.(*net.UDPConn), buf: make([]byte, 1500)}
	// Allocate: a 401 with realm and nonce, then the authenticated request.
	r := rc.roundTrip(stunRequest(t, stun.MethodAllocate, reqTransport(17)))
	var realm stun.Realm
	var nonce stun.Nonce
	if realm.GetFrom(r) != nil || nonce.GetFrom(r) != nil {
		t.Fatalf("no realm/nonce in %v", r)
	}
	rc.auth = []stun.Setter{stun.NewUsername(user), realm, nonce, stun.NewLongTermIntegrity(user, realm.String(), pass), stun.Fingerprint}
	if r = rc.roundTrip(stunRequest(t, stun.MethodAllocate, append([]stun.Setter{reqTransport(17)}, rc.auth...)...)); r.Type.Class != stun.ClassSuccessResponse {
		return rc, r
	}
	var relay stun.XORMappedAddress
	if err := relay.GetFromAs(r, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("Allocate answer without a relayed address: %v", err)
	}
	ip, _ := netip.AddrFromSlice(relay.IP)
	rc.relay = netip.AddrPortFrom(ip.Unmap(), uint16(relay.Port))
	return rc, r
}

func (rc *rawClient) roundTrip(m *stun.Message) *stun.Message {
	rc.t.Helper()
	if _, err := rc.c.Write(m.Raw); err != nil {
		rc.t.Fatal(err)
	}
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := rc.c.Read(rc.buf)
	if err != nil {
		rc.t.Fatal(err)
	}
	r := &stun.Message{Raw: append([]byte(nil), rc.buf[:n]...)}
	if err := r.Decode(); err != nil {
		rc.t.Fatal(err)
	}
	return r
}

// bind sends a ChannelBind of channel num to peer and returns the answer.
func (rc *rawClient) bind(num uint16, peer netip.AddrPort) *stun.Message {
	rc.t.Helper()
	xpa := peerAddr{IP: peer.Addr().AsSlice(), Port: int(peer.Port())}
	return rc.roundTrip(stunRequest(rc.t, stun.MethodChannelBind, append([]stun.Setter{channelNumber(num), xpa}, rc.auth...)...))
}

// refresh sends a Refresh with the given lifetime (0 deletes the
// allocation) and returns the answer.
func (rc *rawClient) refresh(lifetime time.Duration) *stun.Message {
	rc.t.Helper()
	return rc.roundTrip(stunRequest(rc.t, stun.MethodRefresh, append([]stun.Setter{pionLifetime(lifetime)}, rc.auth...)...))
}

// pionLifetime is a LIFETIME attribute.
type pionLifetime time.Duration

func (l pionLifetime) AddTo(m *stun.Message) error {
	v := uint32(time.Duration(l) / time.Second)
	m.Add(stun.AttrLifetime, []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return nil
}

// channelNumber is a CHANNEL-NUMBER attribute.
type channelNumber uint16

func (n channelNumber) AddTo(m *stun.Message) error {
	m.Add(stun.AttrChannelNumber, []byte{byte(n >> 8), byte(n), 0, 0})
	return nil
}

// peerAddr is an XOR-PEER-ADDRESS attribute.
type peerAddr struct {
	IP   net.IP
	Port int
}

func (p peerAddr) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress{IP: p.IP, Port: p.Port}.AddToAs(m, stun.AttrXORPeerAddress)
}
