package turn

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

// drip writes b to c one byte every interval until it is all written or
// the server closed the connection (seen by a reader), and returns how
// many bytes were written before the close, or len(b) and the server's
// answer when there was no close.
func drip(t *testing.T, c net.Conn, b []byte, interval time.Duration) (sent int, answered bool) {
	t.Helper()
	closed := make(chan bool, 1) // true: an answer came first
	go func() {
		buf := make([]byte, 1500)
		c.SetReadDeadline(time.Now().Add(time.Minute)) // a guard against a hang, not a measure
		n, err := c.Read(buf)
		closed <- err == nil && n > 0
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for sent < len(b) {
		select {
		case ans := <-closed:
			return sent, ans
		case <-tick.C:
		}
		if _, err := c.Write(b[sent : sent+1]); err != nil {
			return sent, false
		}
		sent++
	}
	return sent, <-closed
}

// TestTCPDripBeforeSetup: a client that drips one byte of its first frame
// per interval does not hold the connection past the setup deadline.
// Before, every byte moved the deadline, so a client at one byte every 2 s
// held a connection (and a slot of the connection cap) indefinitely.
// Deadlines here are shortened 5×: 2 s, one byte per 400 ms, a frame of
// 20 bytes (8 s).
func TestTCPDripBeforeSetup(t *testing.T) {
	ts := startServerWith(t, nil, nil, func(s *Server) {
		s.tcpTimeouts = tcpTimeouts{setup: 2 * time.Second, frame: 2 * time.Second, idle: time.Minute}
	})
	c, err := net.Dial("tcp4", ts.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := stunRequest(t, stun.MethodBinding).Raw
	sent, answered := drip(t, c, req, 400*time.Millisecond)
	if answered || sent == len(req) {
		t.Fatalf("a dripping client sent its whole frame (%d bytes, answered %v): the connection outlived the setup deadline", sent, answered)
	}
	if st := ts.Stats(); st.TCPTimeouts != 1 {
		t.Fatalf("TCPTimeouts = %d, want 1", st.TCPTimeouts)
	}
}

// TestTCPDripAfterSetup: once the connection holds an allocation, a silent
// connection lives on (the idle deadline), but a frame must arrive whole
// within the frame deadline of its first byte, however the bytes trickle.
func TestTCPDripAfterSetup(t *testing.T) {
	ts := startServerWith(t, nil, nil, func(s *Server) {
		s.tcpTimeouts = tcpTimeouts{setup: 2 * time.Second, frame: 2 * time.Second, idle: time.Minute}
	})
	c, err := net.Dial("tcp4", ts.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := pionturn.NewSTUNConn(c)
	buf := make([]byte, 1500)
	roundTrip := func(m *stun.Message) *stun.Message {
		t.Helper()
		if _, err := c.Write(m.Raw); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := sc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		r := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := r.Decode(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := roundTrip(stunRequest(t, stun.MethodAllocate, reqTransport(17)))
	var realm stun.Realm
	var nonce stun.Nonce
	if realm.GetFrom(r) != nil || nonce.GetFrom(r) != nil {
		t.Fatalf("no realm/nonce in %v", r)
	}
	user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
	auth := []stun.Setter{stun.NewUsername(user), realm, nonce, stun.NewLongTermIntegrity(user, realm.String(), pass), stun.Fingerprint}
	if r := roundTrip(stunRequest(t, stun.MethodAllocate, append([]stun.Setter{reqTransport(17)}, auth...)...)); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v", r)
	}
	// Silent for longer than the setup and frame deadlines: still open.
	time.Sleep(3 * time.Second)
	refresh := stunRequest(t, stun.MethodRefresh, append([]stun.Setter{pionLifetime(5 * time.Minute)}, auth...)...)
	if r := roundTrip(refresh); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Refresh after a silence: %v", r)
	}
	// A frame dripped a byte per 400 ms (8 s for this one) is cut at 2 s.
	refresh = stunRequest(t, stun.MethodRefresh, append([]stun.Setter{pionLifetime(5 * time.Minute)}, auth...)...)
	c.SetReadDeadline(time.Time{})
	sent, answered := drip(t, c, refresh.Raw, 400*time.Millisecond)
	if answered || sent == len(refresh.Raw) {
		t.Fatalf("a dripped frame was read whole (%d bytes, answered %v)", sent, answered)
	}
	if st := ts.Stats(); st.TCPTimeouts != 1 {
		t.Fatalf("TCPTimeouts = %d, want 1", st.TCPTimeouts)
	}
}
