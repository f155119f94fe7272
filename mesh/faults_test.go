package mesh

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Network faults of the in-process test clusters live here, around the
// sockets and the dialler the tests hand to Config: a partition (links
// between groups are cut), a pause (a node's raft links stall, as if the
// process were stopped with SIGSTOP) and a one-way delay on every write of
// a TCP link (raft, forwarding, gossip streams).

// testNet is the network of one test cluster.
type testNet struct {
	mu     sync.Mutex
	owner  map[string]string // address → node name
	group  map[string]int    // node name → partition group
	paused map[string]bool   // node name → its raft links stall
	delay  time.Duration
}

func newTestNet() *testNet {
	return &testNet{owner: map[string]string{}, group: map[string]int{}, paused: map[string]bool{}}
}

func (tn *testNet) register(name string, addrs ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, a := range addrs {
		if a != "" {
			tn.owner[a] = name
		}
	}
}

// partition puts the named nodes in group 1, all others in group 0.
func (tn *testNet) partition(names ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	clear(tn.group)
	for _, n := range names {
		tn.group[n] = 1
	}
}

func (tn *testNet) heal() { tn.partition() }

// pause stalls every TCP write from and to the named nodes (raft,
// forwarding) until resume; nothing is lost.
func (tn *testNet) pause(names ...string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, n := range names {
		tn.paused[n] = true
	}
}

func (tn *testNet) resume() {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	clear(tn.paused)
}

// nodeFaults is the network as one node sees it.
type nodeFaults struct {
	tn   *testNet
	self string
}

// allow reports whether this node may talk to the node at addr now.
func (f nodeFaults) allow(addr string) bool {
	f.tn.mu.Lock()
	defer f.tn.mu.Unlock()
	peer, ok := f.tn.owner[addr]
	return !ok || f.tn.group[peer] == f.tn.group[f.self]
}

// stalled reports whether a write from this node to addr ("" unknown) waits.
func (f nodeFaults) stalled(addr string) bool {
	f.tn.mu.Lock()
	defer f.tn.mu.Unlock()
	return f.tn.paused[f.self] || (addr != "" && f.tn.paused[f.tn.owner[addr]])
}

func (f nodeFaults) delay() time.Duration {
	f.tn.mu.Lock()
	defer f.tn.mu.Unlock()
	return f.tn.delay
}

var errPartitioned = errors.New("link cut by fault injection")

// dial is the node's Config.Dial.
func (f nodeFaults) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !f.allow(addr) {
		return nil, errPartitioned
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newFaultConn(c, f, addr), nil
}

// listener wraps the raft listener: accepted links get the delay and the
// pause (not the partition: the dialling side, which knows the peer, cuts).
func (f nodeFaults) listener(ln net.Listener) net.Listener { return &faultListener{ln, f} }

type faultListener struct {
	net.Listener
	f nodeFaults
}

func (l *faultListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFaultConn(c, l.f, ""), nil
}

// packetConn wraps the gossip UDP socket: packets to a node across the
// partition are dropped on the wire.
func (f nodeFaults) packetConn(pc net.PacketConn) net.PacketConn { return &faultPacketConn{pc, f} }

type faultPacketConn struct {
	net.PacketConn
	f nodeFaults
}

func (c *faultPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.f.allow(addr.String()) {
		return len(b), nil // lost on the wire
	}
	return c.PacketConn.WriteTo(b, addr)
}

// SetReadBuffer passes the buffer size through to the UDP socket.
func (c *faultPacketConn) SetReadBuffer(n int) error {
	if rb, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return rb.SetReadBuffer(n)
	}
	return nil
}

// faultConn is a TCP link under the test network: a cut link fails every
// read and write (on the dialling side, which knows the peer's address), a
// paused one holds writes back until resumed, and a delay holds every
// write back by that long.
type faultConn struct {
	net.Conn
	f    nodeFaults
	peer string // "" for accepted connections
	q    chan delayed
	done chan struct{}
	once sync.Once
	werr atomic.Value // error of the last delayed write
}

type delayed struct {
	b   []byte
	due time.Time
}

func newFaultConn(c net.Conn, f nodeFaults, peer string) *faultConn {
	fc := &faultConn{Conn: c, f: f, peer: peer, q: make(chan delayed, 1024), done: make(chan struct{})}
	go fc.writeLoop()
	return fc
}

func (c *faultConn) cut() bool { return c.peer != "" && !c.f.allow(c.peer) }

func (c *faultConn) Read(b []byte) (int, error) {
	if c.cut() {
		c.Close()
		return 0, errPartitioned
	}
	n, err := c.Conn.Read(b)
	if c.cut() {
		c.Close()
		return 0, errPartitioned
	}
	return n, err
}

func (c *faultConn) Write(b []byte) (int, error) {
	if c.cut() {
		c.Close()
		return 0, errPartitioned
	}
	for c.f.stalled(c.peer) {
		select {
		case <-c.done:
			return 0, net.ErrClosed
		case <-time.After(2 * time.Millisecond):
		}
	}
	if err, _ := c.werr.Load().(error); err != nil {
		return 0, err
	}
	d := c.f.delay()
	if d <= 0 {
		return c.Conn.Write(b)
	}
	select {
	case c.q <- delayed{b: append([]byte(nil), b...), due: time.Now().Add(d)}:
		return len(b), nil
	case <-c.done:
		return 0, net.ErrClosed
	}
}

func (c *faultConn) writeLoop() {
	for {
		select {
		case <-c.done:
			return
		case w := <-c.q:
			if d := time.Until(w.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			if _, err := c.Conn.Write(w.b); err != nil {
				c.werr.Store(err)
			}
		}
	}
}

func (c *faultConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// listenGossip opens a TCP listener and a UDP socket on the same port of
// addr. With port 0 the kernel picks the TCP port, which another socket may
// hold for UDP: then it tries a fresh one.
func listenGossip(addr string) (net.Listener, net.PacketConn, error) {
	var err error
	for range 20 {
		var ln net.Listener
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if !strings.HasSuffix(addr, ":0") {
			break
		}
	}
	return nil, nil, err
}
