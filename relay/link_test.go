package relay

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/meshmeet/meshmeet/bridge"
)

// attach makes a room on n and attaches it under conf with peers.
func (n *node) attach(t testing.TB, conf string, peers ...*node) *bridge.Room {
	t.Helper()
	rm := n.br.NewRoom(conf, bridge.RoomEvents{
		TrackPublished:   func(ti bridge.TrackInfo) { n.relay.TrackPublished(conf, ti) },
		TrackUnpublished: func(ti bridge.TrackInfo) { n.relay.TrackUnpublished(conf, ti) },
	})
	var ps []Peer
	for _, p := range peers {
		ps = append(ps, p.peer())
	}
	if err := n.relay.AttachRoom(conf, rm, ps); err != nil {
		t.Fatal(err)
	}
	return rm
}

func (n *node) links() int { return n.relay.Stats().Links }

// settled waits until x and y hold one link, the same one on both sides,
// with rooms attached on it.
func settled(t testing.TB, x, y *node) {
	t.Helper()
	waitFor(t, "one link, the same on both sides", func() bool {
		px, py := x.relay.Stats().PerLink, y.relay.Stats().PerLink
		return len(px) == 1 && len(py) == 1 && px[0].Dialled != py[0].Dialled && px[0].Rooms > 0 && py[0].Rooms > 0
	})
}

// deliver sends a room message until to receives it: a message sent on a
// link that the tie-break is about to replace is lost (room messages are
// best effort; OnLinkUp tells the caller to resend its state).
func deliver(t *testing.T, from, to *node, conf, data string) string {
	t.Helper()
	for range 100 {
		if err := from.relay.SendRoomMessage(conf, []byte(data)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-to.msgs:
			return m
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no room message from %s", to.name, from.name)
	return ""
}

// TestRoomMessages: opaque room messages reach the peers of the room over
// one link per pair, in both directions, and a room not shared is not
// delivered.
func TestRoomMessages(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	a.attach(t, "conf1", b)
	b.attach(t, "conf1", a)
	a.attach(t, "conf2", b)
	b.attach(t, "conf2", a)
	settled(t, a, b)
	if got := deliver(t, a, b, "conf1", "hello from a"); got != "conf1 a hello from a" {
		t.Fatalf("b got %q", got)
	}
	if got := deliver(t, b, a, "conf2", "hi"); got != "conf2 b hi" {
		t.Fatalf("a got %q", got)
	}
	if err := a.relay.SendRoomMessage("nope", []byte("x")); err != ErrUnknownRoom {
		t.Fatalf("unknown room: %v", err)
	}
	if err := a.relay.SendRoomMessage("conf1", make([]byte, MaxRoomMessage+1)); err != ErrTooLarge {
		t.Fatalf("oversized: %v", err)
	}
	// Both nodes may have dialled at once; they keep the same link, and if
	// a dialled one it is a's (the lower name keeps its outgoing link).
	sa, sb := a.relay.Stats(), b.relay.Stats()
	if sa.Links != 1 || sb.Links != 1 || sa.PerLink[0].Dialled == sb.PerLink[0].Dialled {
		t.Fatalf("links: a %+v, b %+v", sa.PerLink, sb.PerLink)
	}
}

// TestIdleLinkCloses: when the last shared room is detached the link
// closes after IdleTimeout, and it opens again on demand.
func TestIdleLinkCloses(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	a.attach(t, "c", b)
	b.attach(t, "c", a)
	waitFor(t, "link", func() bool { return a.links() == 1 && b.links() == 1 })
	a.relay.DetachRoom("c")
	b.relay.DetachRoom("c")
	waitFor(t, "idle link closed", func() bool { return a.links() == 0 && b.links() == 0 })
	a.attach(t, "d", b)
	b.attach(t, "d", a)
	settled(t, a, b)
	if got := deliver(t, b, a, "d", "again"); got != "d b again" {
		t.Fatalf("a got %q", got)
	}
}

// TestUncertifiedPeerRefused: a node whose certificate is not issued by
// the cluster CA gets no link, whether it dials or is dialled; the
// handshake fails, so no hello or control message is ever read.
func TestUncertifiedPeerRefused(t *testing.T) {
	ca := newTestCA(t)
	a := startNode(t, ca, "a")
	// x trusts the cluster CA but presents a self-signed certificate.
	x := startNode(t, ca, "x", func(c *Config) {
		c.ServerTLS, c.ClientTLS = tlsPair(issue(t, nil, "x"), ca.pool)
	})
	a.attach(t, "c", x)
	x.attach(t, "c", a)
	waitFor(t, "dial attempts both ways", func() bool {
		return a.relay.Stats().DialFailures >= 2 && x.relay.Stats().DialFailures >= 2
	})
	if a.links() != 0 || x.links() != 0 {
		t.Fatalf("links: a %d, x %d", a.links(), x.links())
	}

	// A raw QUIC client with a self-signed certificate and the right ALPN
	// is refused in the handshake.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	_, cli := tlsPair(issue(t, nil, "intruder"), ca.pool)
	cli.NextProtos = []string{ProtoV1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, a.conn.LocalAddr(), cli, &quic.Config{EnableDatagrams: true})
	if err == nil {
		// TLS 1.3: the client may finish before the server checks its
		// certificate; the server then closes the connection at once.
		_, err = c.AcceptUniStream(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "CRYPTO_ERROR") {
		t.Fatalf("self-signed client: err = %v, want a TLS certificate error", err)
	}
	// A client of the CA is accepted (the refusal above was the
	// certificate, not the setup).
	_, good := tlsPair(issue(t, ca, "z"), ca.pool)
	good.NextProtos = []string{ProtoV1}
	c, err = tr.Dial(ctx, a.conn.LocalAddr(), good, &quic.Config{EnableDatagrams: true})
	if err != nil {
		t.Fatalf("certified client: %v", err)
	}
	c.CloseWithError(0, "")
	// The wrong ALPN is refused too.
	_, old := tlsPair(issue(t, ca, "z"), ca.pool)
	old.NextProtos = []string{"meshmeet-relay/0"}
	if _, err := tr.Dial(ctx, a.conn.LocalAddr(), old, &quic.Config{EnableDatagrams: true}); err == nil {
		t.Fatal("unknown ALPN accepted")
	}
}
