package turn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

// The fuzz targets of the hand-written parsers: the data plane's look at a
// client datagram (ChannelData), TCP framing, the STUN peeks of conns.go,
// and the policy's address reduction. Their seed corpora under
// testdata/fuzz are real packets, recorded from pion's TURN client talking
// to this server (TestRecordFuzzSeeds), and crashers found are kept there
// too, so `go test` replays them all.

// FuzzClientDatagram: clientDatagram never reads past the datagram, finds
// a ChannelData payload exactly where its header says, and a ChannelData
// it accepts encodes back to the same bytes (decode→encode).
func FuzzClientDatagram(f *testing.F) {
	f.Add([]byte{0x40, 0x00, 0x00, 0x03, 'a', 'b', 'c', 0})
	f.Add([]byte{0x40, 0x01, 0x00, 0x05, 'a'})
	f.Add([]byte{0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, num, payload := clientDatagram(b)
		switch kind {
		case dgramChannel:
			if len(b) < 4 || b[0]&0xC0 != 0x40 || num != uint16(b[0])<<8|uint16(b[1]) {
				t.Fatalf("ChannelData %x: channel %#x", b, num)
			}
			if len(payload) != int(b[2])<<8|int(b[3]) || 4+len(payload) > len(b) {
				t.Fatalf("ChannelData %x: payload of %d bytes", b, len(payload))
			}
			enc := make([]byte, 4+len(payload))
			putChannelHeader(enc, num, len(payload))
			copy(enc[4:], payload)
			if !bytes.Equal(enc, b[:4+len(payload)]) {
				t.Fatalf("ChannelData %x re-encodes to %x", b, enc)
			}
			if k2, n2, p2 := clientDatagram(enc); k2 != dgramChannel || n2 != num || !bytes.Equal(p2, payload) {
				t.Fatalf("re-encoded ChannelData %x decodes to %d %#x %x", enc, k2, n2, p2)
			}
		case dgramSTUN:
			if len(b) == 0 || b[0] >= 0x40 {
				t.Fatalf("%x taken for STUN", b)
			}
		case dgramMalformed:
			if len(b) > 0 && b[0] < 0x40 {
				t.Fatalf("STUN-shaped %x taken for malformed", b)
			}
		default:
			t.Fatalf("kind %d", kind)
		}
	})
}

// FuzzTCPFraming feeds a byte stream, cut into reads of chunk bytes, to a
// TURN/TCP connection and checks what Read returns: whole frames only,
// each as long as its header says, in order, nothing invented; the frames
// and the TCP Allocates the connection answered itself re-assemble the
// stream's prefix (decode→encode); the 442 answers are well-formed.
func FuzzTCPFraming(f *testing.F) {
	f.Add([]byte{0x40, 0x00, 0x00, 0x01, 'x', 0, 0, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		if len(stream) > 1<<16 {
			return
		}
		cc := &chunkConn{in: stream, step: int(chunk)%64 + 1}
		s := &Server{tcpTimeouts: tcpTimeouts{setup: time.Minute, frame: time.Minute, idle: time.Minute}, tcp: map[*tcpConn]struct{}{}}
		c := &tcpConn{Conn: cc, s: s, accepted: time.Now()}
		var frames [][]byte
		var err error
		buf := make([]byte, 1600)
		for {
			var n int
			if n, err = c.Read(buf); err != nil {
				break
			}
			if want, ferr := frameLen(buf[:n]); ferr != nil || want != n {
				t.Fatalf("Read returned %d bytes, a frame of %d (%v)", n, want, ferr)
			}
			if isTCPAllocate(buf[:n]) {
				t.Fatal("a TCP Allocate reached pion")
			}
			frames = append(frames, append([]byte(nil), buf[:n]...))
		}
		if err != io.EOF && !errors.Is(err, errFrame) {
			t.Fatalf("Read: %v", err)
		}
		// Re-assemble: each frame in order, with the refused TCP Allocates
		// before it, is the next part of the stream.
		rest := stream
		skipRefused := func() {
			for {
				n, _ := frameLen(rest)
				if n == 0 || n > len(rest) || !isTCPAllocate(rest[:n]) {
					return
				}
				rest = rest[n:]
			}
		}
		for _, fr := range frames {
			skipRefused()
			if !bytes.HasPrefix(rest, fr) {
				t.Fatalf("frame %x is not the next bytes of the stream %x", fr, rest)
			}
			rest = rest[len(fr):]
		}
		if err == io.EOF {
			// Everything left is refused TCP Allocates and an incomplete frame.
			skipRefused()
			if n, ferr := frameLen(rest); ferr == nil && n > 0 && n <= len(rest) && n <= len(buf) {
				t.Fatalf("a whole frame %x was left unread", rest[:n])
			}
		}
		// Every answer the connection wrote is a 442.
		ans := cc.out.Bytes()
		for len(ans) > 0 {
			n, ferr := frameLen(ans)
			if ferr != nil || n == 0 || n > len(ans) {
				t.Fatalf("a broken answer stream %x", ans)
			}
			m := &stun.Message{Raw: ans[:n]}
			var ec stun.ErrorCodeAttribute
			if m.Decode() != nil || ec.GetFrom(m) != nil || ec.Code != stun.CodeUnsupportedTransProto {
				t.Fatalf("answer %x is not a 442", ans[:n])
			}
			ans = ans[n:]
		}
	})
}

// chunkConn is the client end of a TCP stream for FuzzTCPFraming: reads
// return in in pieces of step bytes, then io.EOF; writes are kept.
type chunkConn struct {
	net.Conn // nil: only what tcpConn.Read uses is implemented
	in       []byte
	step     int
	out      bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in[:min(c.step, len(c.in))])
	c.in = c.in[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSTUNPeek checks the hand-written STUN peeks of conns.go (frameLen,
// findAttr, isTCPAllocate, answerKind) against pion's decoder: where pion
// decodes a message, they agree with it, on the message and on pion's
// re-encoding of it (decode→encode); elsewhere they do not panic.
func FuzzSTUNPeek(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		kind := answerKind(b)
		tcpAlloc := isTCPAllocate(b)
		frameLen(b)
		if len(b) >= stunHeaderSize {
			findAttr(b, attrReqTransport)
		}
		// pion decodes messages whose two top bits are set, which RFC 8489
		// section 5 forbids and the peeks take for ChannelData: compare
		// only messages that are STUN on the wire.
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if len(b) == 0 || b[0] >= 0x40 || m.Decode() != nil || int(m.Length)+stunHeaderSize != len(b) {
			return
		}
		check := func(what string, raw []byte) {
			t.Helper()
			if n, err := frameLen(raw); err != nil || n != len(raw) {
				t.Fatalf("%s %x: frameLen %d, %v", what, raw, n, err)
			}
			v, ok := findAttr(raw, attrReqTransport)
			pv, perr := m.Get(stun.AttrRequestedTransport)
			if ok != (perr == nil) || !bytes.Equal(v, pv) {
				t.Fatalf("%s %x: findAttr %x %v, pion %x %v", what, raw, v, ok, pv, perr)
			}
			wantTCP := m.Type == stun.NewType(stun.MethodAllocate, stun.ClassRequest) && perr == nil && len(pv) >= 1 && pv[0] == protoTCP
			if got := isTCPAllocate(raw); got != wantTCP {
				t.Fatalf("%s %x: isTCPAllocate %v, want %v", what, raw, got, wantTCP)
			}
			want := answerFree
			switch {
			case m.Type.Class == stun.ClassErrorResponse:
				want = answerError
			case m.Type == stun.BindingSuccess:
				want = answerBinding
			}
			if got := answerKind(raw); got != want {
				t.Fatalf("%s %x: answerKind %d, want %d", what, raw, got, want)
			}
		}
		check("message", b)
		if kind != answerKind(m.Raw) || tcpAlloc != isTCPAllocate(m.Raw) {
			t.Fatal("the peeks changed their answer on the same bytes")
		}
		// pion's re-encoding of what it decoded.
		re := stun.New()
		re.Type, re.TransactionID = m.Type, m.TransactionID
		for _, a := range m.Attributes {
			re.Add(a.Type, a.Value)
		}
		re.WriteHeader()
		check("re-encoded", re.Raw)
	})
}

// FuzzReduce checks the policy's address reduction: it is idempotent, an
// IPv4 address comes back from each of its IPv6 encodings (encode→reduce),
// and every verdict — Check, CheckIP, CheckRange — is the same for an
// address and for its reduction, so no encoding opens what the plain
// address does not.
func FuzzReduce(f *testing.F) {
	for _, s := range []string{"::ffff:127.0.0.1", "::ffff:0:10.0.0.1", "::127.0.0.1", "2002:a9fe:a9fe::1",
		"64:ff9b::a00:1", "64:ff9b:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::", "::1", "fe80::1",
		"2606:4700:4700::1111", "8.8.8.8", "27.0.0.5"} {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:], uint16(9999))
	}
	p := NewPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")},
		[]netip.AddrPort{netip.MustParseAddrPort("27.0.0.5:9999"), netip.MustParseAddrPort("[2001:4860::1]:9999")},
		[]uint16{7880, 3478})
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		var ip netip.Addr
		switch len(b) {
		case 4:
			ip = netip.AddrFrom4([4]byte(b))
		case 16:
			ip = netip.AddrFrom16([16]byte(b))
		default:
			return
		}
		r, reason := reduce(ip)
		if r.Zone() != "" || r.Is4In6() {
			t.Fatalf("reduce(%s) = %s: not reduced", ip, r)
		}
		if reason == "" {
			if r2, reason2 := reduce(r); r2 != r || reason2 != "" {
				t.Fatalf("reduce(%s) = %s, but reduce(%s) = %s %q", ip, r, r, r2, reason2)
			}
			same := func(what string, a, b error) {
				if (a == nil) != (b == nil) {
					t.Fatalf("%s(%s) = %v but %s(%s) = %v", what, ip, a, what, r, b)
				}
			}
			same("Check", p.Check(netip.AddrPortFrom(ip, port)), p.Check(netip.AddrPortFrom(r, port)))
			same("CheckIP", p.CheckIP(ip), p.CheckIP(r))
			same("CheckRange", p.CheckRange(ip), p.CheckRange(r))
		} else if p.Check(netip.AddrPortFrom(ip, port)) == nil || p.CheckIP(ip) == nil || p.CheckRange(ip) == nil {
			t.Fatalf("%s (%s) allowed", ip, reason)
		}
		if !r.Is4() {
			return
		}
		v := r.As4()
		for _, enc := range []string{
			"::ffff:" + r.String(),
			"::ffff:0:" + r.String(),
			fmt.Sprintf("2002:%02x%02x:%02x%02x::1", v[0], v[1], v[2], v[3]),
			"64:ff9b::" + r.String(),
		} {
			e := netip.MustParseAddr(enc)
			if got, why := reduce(e); got != r || why != "" {
				t.Fatalf("reduce(%s) = %s %q, want %s", enc, got, why, r)
			}
		}
	})
}

// TestRecordFuzzSeeds records real packets between pion's TURN client and
// this server — Allocate with its 401, CreatePermission, ChannelBind, Send
// and Data indications, ChannelData both ways, Refresh, over UDP and TCP —
// into the seed corpora under testdata/fuzz. Run it to refresh them:
//
//	MESHMEET_RECORD_FUZZ_SEEDS=1 go test -run TestRecordFuzzSeeds ./turn
func TestRecordFuzzSeeds(t *testing.T) {
	if os.Getenv("MESHMEET_RECORD_FUZZ_SEEDS") != "1" {
		t.Skip("set MESHMEET_RECORD_FUZZ_SEEDS=1 to record the seed corpora")
	}
	ts := startServer(t, nil, nil)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var (
		mu        sync.Mutex
		datagrams [][]byte
		tcpStream []byte
	)
	for _, tcp := range []bool{false, true} {
		var conn net.PacketConn
		if tcp {
			c, err := net.Dial("tcp4", ts.tcp)
			if err != nil {
				t.Fatal(err)
			}
			conn = pionturn.NewSTUNConn(&recordConn{Conn: c, mu: &mu, out: &tcpStream})
		} else {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			conn = &recordPacketConn{PacketConn: c, mu: &mu, all: &datagrams}
		}
		addr := ts.udp
		if tcp {
			addr = ts.tcp
		}
		user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
		cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr,
			Username: user, Password: pass, Realm: "meshmeet", Conn: conn, LoggerFactory: quietLogs, RTO: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Listen(); err != nil {
			t.Fatal(err)
		}
		relay, err := cl.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		for i := 0; i < 4; i++ { // Send indications, then ChannelData once bound
			relay.WriteTo([]byte("seed payload "+strconv.Itoa(i)), peer.LocalAddr())
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, from, err := peer.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			peer.WriteTo([]byte("seed reply "+strconv.Itoa(i)), from)
			relay.SetReadDeadline(time.Now().Add(5 * time.Second))
			relay.ReadFrom(buf)
			time.Sleep(100 * time.Millisecond)
		}
		relay.Close() // Refresh of 0
		cl.Close()
		conn.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	write := func(target string, i int, args ...string) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		body := "go test fuzz v1\n"
		for _, a := range args {
			body += a + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-pion-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range datagrams {
		q := "[]byte(" + strconv.Quote(string(d)) + ")"
		write("FuzzClientDatagram", i, q)
		write("FuzzSTUNPeek", i, q)
	}
	for i, step := range []int{1, 7, 64} {
		write("FuzzTCPFraming", i, "[]byte("+strconv.Quote(string(tcpStream))+")", fmt.Sprintf("uint8(%d)", step-1))
	}
	t.Logf("recorded %d datagrams and a TCP stream of %d bytes", len(datagrams), len(tcpStream))
}

// recordPacketConn records every datagram written and read.
type recordPacketConn struct {
	net.PacketConn
	mu  *sync.Mutex
	all *[][]byte
}

func (c *recordPacketConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	*c.all = append(*c.all, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.PacketConn.WriteTo(p, a)
}

func (c *recordPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if n > 0 {
		c.mu.Lock()
		*c.all = append(*c.all, append([]byte(nil), p[:n]...))
		c.mu.Unlock()
	}
	return n, a, err
}

// recordConn records the bytes a TCP client writes.
type recordConn struct {
	net.Conn
	mu  *sync.Mutex
	out *[]byte
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	*c.out = append(*c.out, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}
