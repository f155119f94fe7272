package relay

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ca := newTestCA(t)
	srv, cli := tlsPair(issue(t, ca, "a"), ca.pool)
	good := Config{PacketConn: pc, ServerTLS: srv, ClientTLS: cli, NodeName: "a"}
	if _, err := New(good); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no socket":      func(c *Config) { c.PacketConn = nil },
		"no server tls":  func(c *Config) { c.ServerTLS = nil },
		"no client tls":  func(c *Config) { c.ClientTLS = nil },
		"no name":        func(c *Config) { c.NodeName = "" },
		"long name":      func(c *Config) { c.NodeName = string(make([]byte, MaxNodeName+1)) },
		"negative":       func(c *Config) { c.IdleTimeout = -1 },
		"backoff order":  func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond },
		"queue too long": func(c *Config) { c.SendQueue = 1 << 20 },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRunCloseLeavesNothing: Run returns after Close, every goroutine the
// relay started (links, managers, loops) has exited, and a relay closed
// before Run refuses to start.
func TestRunCloseLeavesNothing(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	a.attach(t, "c", b)
	b.attach(t, "c", a)
	settled(t, a, b)
	deliver(t, a, b, "c", "x")
	a.relay.Close()
	b.relay.Close()
	a.relay.Close() // idempotent
	if n := a.relay.Stats().Links; n != 0 {
		t.Fatalf("%d links after Close", n)
	}
	// The bridges run on until the test ends; no goroutine of the relays
	// or of quic-go is left.
	var left string
	waitFor(t, "relay goroutines gone", func() bool {
		left = relayGoroutines()
		return left == ""
	})

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	srv, cli := tlsPair(issue(t, ca, "z"), ca.pool)
	r, err := New(Config{PacketConn: pc, ServerTLS: srv, ClientTLS: cli, NodeName: "z"})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := r.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

// relayGoroutines returns the stacks of goroutines running relay or
// quic-go code, or "".
func relayGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "meshmeet/relay.(*") || strings.Contains(g, "quic-go/quic-go") {
			if strings.Contains(g, "relayGoroutines") {
				continue
			}
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
