package turn

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestSourceLimiterIPv6Per64: the addresses of one IPv6 /64 share a
// budget (one host or one customer picks any of them at will); another
// /64 has its own; IPv4 stays per address, IPv4-mapped included.
func TestSourceLimiterIPv6Per64(t *testing.T) {
	l := newSourceLimiter(0.001, 3)
	take := func(s string, n int) int {
		ok := 0
		for i := 0; i < n; i++ {
			if l.allow(netip.MustParseAddr(s), 0) {
				ok++
			}
		}
		return ok
	}
	if got := take("2001:db8:1:2::1", 3); got != 3 {
		t.Fatalf("first source: %d of 3", got)
	}
	for _, s := range []string{"2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::1%eth0"} {
		if got := take(s, 1); got != 0 {
			t.Fatalf("%s, same /64 as a spent source, got an answer", s)
		}
	}
	if got := take("2001:db8:1:3::1", 3); got != 3 {
		t.Fatalf("another /64: %d of 3", got)
	}
	if got := take("192.0.2.1", 3); got != 3 {
		t.Fatalf("IPv4: %d of 3", got)
	}
	if got := take("::ffff:192.0.2.1", 1) + take("192.0.2.2", 3); got != 3 {
		t.Fatalf("IPv4-mapped must share its IPv4 address's budget, the next address not: %d", got)
	}
}

// TestSourceLimiterEvictsOldest: when the limiter is full it forgets the
// source it heard from least recently, not everyone: a source that keeps
// sending keeps its spent budget while thousands of others come and go.
// (It used to clear itself at 100 000 sources, giving every spent source a
// full budget again.)
func TestSourceLimiterEvictsOldest(t *testing.T) {
	l := newSourceLimiter(0.001, 2)
	l.max = 4
	busy := netip.MustParseAddr("192.0.2.1")
	l.allow(busy, 0)
	l.allow(busy, 0)
	for i := 0; i < 1000; i++ {
		other := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if !l.allow(other, 0) {
			t.Fatalf("new source %s refused", other)
		}
		if l.allow(busy, 0) {
			t.Fatalf("after %d other sources, the busy source got a fresh budget", i+1)
		}
	}
	if n := len(l.srcs); n != 4 {
		t.Fatalf("%d sources tracked, want the cap 4", n)
	}
	// The three most recent others are kept, spent by one answer each.
	for i := 997; i < 1000; i++ {
		other := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if e := l.srcs[other]; e == nil || e.b.tokens != 1 {
			t.Fatalf("recent source %s forgotten or reset", other)
		}
	}
}

// TestBindingRateLimit: STUN Binding answers on the TURN port take from
// the same per-source budget as 401s, so a spoofed source cannot make the
// node reflect unlimited Binding answers (they were unlimited), and the
// answers not sent are counted.
func TestBindingRateLimit(t *testing.T) {
	const burst, sent = 3, 30
	ts := startServer(t, nil, func(c *Config) { c.UnauthRate = 0.001; c.UnauthBurst = burst })
	for _, tcp := range []bool{false, true} {
		// Each transport from its own source address: one budget each.
		network, addr, d := "udp4", ts.udp, net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}}
		if tcp {
			network, addr, d = "tcp4", ts.tcp, net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		}
		before := ts.Stats().BindingLimited
		c, err := d.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < sent; i++ {
			if _, err := c.Write(stunRequest(t, stun.MethodBinding).Raw); err != nil {
				t.Fatal(err)
			}
		}
		// Every request is handled once the counter has counted the rest.
		for guard := time.Now().Add(10 * time.Second); ts.Stats().BindingLimited-before < sent-burst; time.Sleep(time.Millisecond) {
			if time.Now().After(guard) {
				t.Fatalf("tcp=%v: BindingLimited grew by %d in 10 s, want %d", tcp, ts.Stats().BindingLimited-before, sent-burst)
			}
		}
		got := 0
		buf := make([]byte, 1500)
		var stream []byte
		for {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if !tcp {
				got++
				continue
			}
			stream = append(stream, buf[:n]...)
		}
		if tcp {
			for len(stream) >= stunHeaderSize {
				got++
				n, err := frameLen(stream)
				if err != nil || n == 0 || n > len(stream) {
					t.Fatalf("a broken answer stream: %x", stream)
				}
				stream = stream[n:]
			}
		}
		if got != burst {
			t.Fatalf("tcp=%v: %d Binding answers to %d requests, want %d", tcp, got, sent, burst)
		}
		if d := ts.Stats().BindingLimited - before; d != sent-burst {
			t.Fatalf("tcp=%v: BindingLimited grew by %d, want %d", tcp, d, sent-burst)
		}
	}
}
