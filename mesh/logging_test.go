package mesh

import (
	"bytes"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestLibraryWarningsRateLimited: repeated library warnings of one kind
// are written logBurst times per window; the next one after the window says
// how many were suppressed. Other kinds keep their own budget.
func TestLibraryWarningsRateLimited(t *testing.T) {
	var buf syncbuf.Buffer
	now := time.Unix(1000, 0)
	w := &levelWriter{log: slog.New(slog.NewTextHandler(&buf, nil)), component: "memberlist"}
	w.limit.now = func() time.Time { return now }
	lg := stdLogger(slog.Default())
	lg.SetOutput(w)
	for i := range 100 {
		lg.Printf("[ERR] memberlist: discarding packet with unacceptable label %q: from=10.0.0.%d:7946", strings.Repeat("x", i%7), i)
	}
	lg.Printf("[WARN] memberlist: Got invalid checksum for UDP packet: 1, 2")
	if got := strings.Count(buf.String(), "discarding packet"); got != logBurst {
		t.Fatalf("%d lines of one kind written, want %d:\n%s", got, logBurst, buf.String())
	}
	if !strings.Contains(buf.String(), "invalid checksum") {
		t.Fatal("another kind of warning was suppressed with the first")
	}
	now = now.Add(logWindow)
	lg.Printf("[ERR] memberlist: discarding packet with unacceptable label \"\": from=10.0.0.1:7946")
	if !strings.Contains(buf.String(), "suppressed=95") {
		t.Fatalf("the line after the window does not count the suppressed ones:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "10.0.0.") {
		t.Fatal("an address reached the log")
	}
}

// TestGossipGarbageLogsRateLimited: a stranger sending garbage to a node's
// gossip port does not get one warning line per packet.
func TestGossipGarbageLogsRateLimited(t *testing.T) {
	var buf syncbuf.Buffer
	tc := newTestCluster(t, 0, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	n := tc.start("n0", true, 1, "")
	tc.formed("n0")
	c, err := net.Dial("udp", n.GossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const packets = 300
	for i := range packets {
		c.Write(bytes.Repeat([]byte{byte(i)}, 40+i%50))
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond) // stay within the socket buffer
		}
	}
	// TCP garbage too: memberlist complains once per connection.
	for range 20 {
		if tcp, err := net.Dial("tcp", n.GossipAddr()); err == nil {
			tcp.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			tcp.Close()
		}
	}
	eventually(t, "garbage seen by memberlist", func() bool {
		return n.gossipLog.limit.total() >= packets/2
	})
	lines := strings.Count(buf.String(), "level=WARN")
	if lines > 4*logBurst {
		t.Fatalf("%d warning lines for %d garbage packets:\n%s", lines, packets, buf.String())
	}
}
