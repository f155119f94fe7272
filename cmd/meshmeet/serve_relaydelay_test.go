package main

import (
	"net"
	"testing"
	"time"
)

// TestRelayDelay: the bench-only relay wrapper holds packets to a listed
// address for at least its delay, in order, and passes writes to other
// addresses through; bad values are refused.
func TestRelayDelay(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:1", "127.0.0.1:1=x", "127.0.0.1:1=-1ms", "127.0.0.1:1=1h", "nohost=1ms"} {
		if _, err := parseRelayDelay(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	far, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	near, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const d = 80 * time.Millisecond
	delays, err := parseRelayDelay(far.LocalAddr().String() + "=" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	c := newDelayConn(pc, delays)
	defer c.Close()

	start := time.Now()
	for i := range 5 {
		if _, err := c.WriteTo([]byte{byte(i)}, far.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WriteTo([]byte{9}, near.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	near.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _, err := near.ReadFrom(buf); err != nil || n != 1 || buf[0] != 9 {
		t.Fatalf("near: %d %v %v", n, buf[:n], err)
	}
	far.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 5 {
		n, _, err := far.ReadFrom(buf)
		if err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("far packet %d: %d %v %v", i, n, buf[:n], err)
		}
		if i == 0 && time.Since(start) < d {
			t.Errorf("first delayed packet arrived after %v, want at least %v", time.Since(start), d)
		}
	}
	if c.dropped.Load() != 0 {
		t.Errorf("%d dropped", c.dropped.Load())
	}
}
