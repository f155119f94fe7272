package bench

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// Emulated links between regions, without root and without netem (which
// this kernel lacks): a participant in one region that enters a node in
// another gets its pion sockets wrapped so that every packet it sends or
// receives waits the link's one-way delay and is dropped at the link's
// loss rate. Only media (ICE/DTLS/SRTP) crosses the emulated link; the
// WebSocket signaling does not.

// link is one region pair's emulation.
type link struct {
	delay time.Duration
	loss  float64
}

// linkFor returns the emulated link between two regions (either order).
func (s Scenario) linkFor(a, b string) (link, bool) {
	if a == b || a == "" || b == "" {
		return link{}, false
	}
	var l link
	found := false
	for _, k := range []string{a + "-" + b, b + "-" + a} {
		if d, ok := s.LinkDelay[k]; ok {
			l.delay, found = d, true
		}
		if p, ok := s.LinkLoss[k]; ok {
			l.loss, found = p, true
		}
	}
	return l, found
}

// linkSettingEngine returns pion settings for a participant behind l:
// loopback candidates (the nodes listen on 127.0.0.1), no mDNS, sockets
// wrapped by l.
func linkSettingEngine(l link) (*webrtc.SettingEngine, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	se := &webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetNet(&linkNet{Net: n, l: l})
	return se, nil
}

// linkNet is the host network with UDP sockets behind a link.
type linkNet struct {
	*stdnet.Net
	l link
}

func (n *linkNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return newLinkConn(c, n.l), nil
}

func (n *linkNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		return newLinkConn(u, n.l), nil
	}
	return c, nil
}

// linkConn delays and drops what goes through a UDP socket. ICE reads with
// ReadFrom and writes with WriteTo; those are the paths it wraps.
type linkConn struct {
	transport.UDPConn
	l link

	out  chan linkPacket // to the writer goroutine, in send order
	in   chan linkPacket // from the reader goroutine, in arrival order
	done chan struct{}   // closed by Close

	// mu guards the following fields.
	mu       sync.Mutex
	rng      *rand.Rand
	deadline time.Time // read deadline
	closed   bool
	readErr  error
}

type linkPacket struct {
	due  time.Time
	data []byte
	addr net.Addr
}

// linkQueue bounds each direction's queue: beyond it packets are dropped,
// as a router's buffer would.
const linkQueue = 4096

func newLinkConn(c transport.UDPConn, l link) *linkConn {
	lc := &linkConn{
		UDPConn: c, l: l,
		out:  make(chan linkPacket, linkQueue),
		in:   make(chan linkPacket, linkQueue),
		done: make(chan struct{}),
		rng:  rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	go lc.writeLoop()
	go lc.readLoop()
	return lc
}

func (c *linkConn) drop() bool {
	if c.l.loss <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Float64() < c.l.loss
}

// WriteTo queues p to leave after the link's delay.
func (c *linkConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	if c.drop() {
		return len(p), nil
	}
	select {
	case c.out <- linkPacket{due: time.Now().Add(c.l.delay), data: append([]byte(nil), p...), addr: addr}:
	default: // queue full: dropped
	}
	return len(p), nil
}

func (c *linkConn) writeLoop() {
	for {
		select {
		case <-c.done:
			return
		case p := <-c.out:
			if !sleepUntil(c.done, p.due) {
				return
			}
			c.UDPConn.WriteTo(p.data, p.addr)
		}
	}
}

func (c *linkConn) readLoop() {
	buf := make([]byte, 1500)
	for {
		n, addr, err := c.UDPConn.ReadFrom(buf)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			c.Close()
			return
		}
		if c.drop() {
			continue
		}
		select {
		case c.in <- linkPacket{due: time.Now().Add(c.l.delay), data: append([]byte(nil), buf[:n]...), addr: addr}:
		default:
		}
	}
}

// ReadFrom returns the next packet once its delay has passed.
func (c *linkConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.mu.Lock()
	dl := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case pkt := <-c.in:
		if !sleepUntil(c.done, pkt.due) {
			return 0, nil, net.ErrClosed
		}
		return copy(p, pkt.data), pkt.addr, nil
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.done:
		c.mu.Lock()
		err := c.readErr
		c.mu.Unlock()
		if err == nil || errors.Is(err, net.ErrClosed) {
			err = net.ErrClosed
		}
		return 0, nil, err
	}
}

// SetReadDeadline applies to later ReadFrom calls.
func (c *linkConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

// SetDeadline sets the read deadline; writes never block.
func (c *linkConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// Close closes the socket and stops the link.
func (c *linkConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	return c.UDPConn.Close()
}

// sleepUntil waits until t or done; false if done.
func sleepUntil(done <-chan struct{}, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-done:
		return false
	case <-tm.C:
		return true
	}
}
