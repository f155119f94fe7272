package bench

import (
	"net"
	"testing"
	"time"
)

// TestLinkConn: packets through an emulated link arrive no earlier than its
// delay, in both directions, and a lossy link drops about its share.
func TestLinkConn(t *testing.T) {
	const delay = 30 * time.Millisecond
	raw, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	inner, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lc := newLinkConn(inner, link{delay: delay})
	defer lc.Close()

	// Out: wrapped → raw.
	start := time.Now()
	if _, err := lc.WriteTo([]byte("out"), raw.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := raw.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "out" {
		t.Fatalf("out: %q %v", buf[:n], err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("out: arrived after %v, link delay %v", d, delay)
	}
	if from.String() != inner.LocalAddr().String() {
		t.Errorf("out: from %v, want %v", from, inner.LocalAddr())
	}

	// In: raw → wrapped.
	start = time.Now()
	raw.WriteTo([]byte("in"), inner.LocalAddr())
	lc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err = lc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "in" {
		t.Fatalf("in: %q %v", buf[:n], err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("in: arrived after %v, link delay %v", d, delay)
	}

	// A read deadline ends a read with nothing to read.
	lc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := lc.ReadFrom(buf); err == nil {
		t.Error("read past the deadline succeeded")
	}

	// Loss: half of 400 packets.
	inner2, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	lossy := newLinkConn(inner2, link{loss: 0.5})
	defer lossy.Close()
	for range 400 {
		lossy.WriteTo([]byte("x"), raw.LocalAddr())
	}
	got := 0
	for {
		raw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := raw.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	if got < 120 || got > 280 {
		t.Errorf("%d of 400 packets crossed a 50%% lossy link", got)
	}

	// Close ends a blocked read.
	done := make(chan error, 1)
	lc.SetReadDeadline(time.Time{})
	go func() { _, _, err := lc.ReadFrom(buf); done <- err }()
	lc.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read on a closed link succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked read")
	}
}

func TestLinkFor(t *testing.T) {
	s := Scenario{Regions: []string{"eu", "us"}, LinkDelay: map[string]time.Duration{"eu-us": 40 * time.Millisecond}, LinkLoss: map[string]float64{"us-eu": 0.01}}
	l, ok := s.linkFor("us", "eu")
	if !ok || l.delay != 40*time.Millisecond || l.loss != 0.01 {
		t.Errorf("us-eu: %+v %v", l, ok)
	}
	if _, ok := s.linkFor("eu", "eu"); ok {
		t.Error("a region links to itself")
	}
	if _, ok := s.linkFor("eu", ""); ok {
		t.Error("unknown region linked")
	}
}
