package mesh

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// startGossip starts memberlist on the gossip sockets of the Config.
func (n *Node) startGossip() error {
	var mc *memberlist.Config
	switch n.cfg.GossipProfile {
	case ProfileLAN:
		mc = memberlist.DefaultLANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
	default:
		mc = memberlist.DefaultWANConfig()
	}
	n.gossipLog = &levelWriter{log: n.log, component: "memberlist"}
	logger := log.New(n.gossipLog, "", 0)
	bound, ok := n.cfg.GossipListener.Addr().(*net.TCPAddr)
	if !ok {
		return errors.New("gossip: the listener is not TCP")
	}
	mc.Name = n.cfg.NodeName
	mc.BindAddr, mc.BindPort = bound.IP.String(), bound.Port
	mc.AdvertiseAddr, mc.AdvertisePort = "", 0 // the transport's answer: the bound address
	if a := n.cfg.GossipAdvertise; a != "" {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return errors.New("gossip: advertise address is not host:port")
		}
		mc.AdvertiseAddr, mc.AdvertisePort = h, bound.Port
		if pp, err := strconv.Atoi(p); err == nil && pp != 0 {
			mc.AdvertisePort = pp
		}
	}
	n.gossip = newGossipTransport(n.cfg.GossipListener, n.cfg.GossipConn, n.cfg.Dial, logger)
	mc.Transport = n.gossip
	mc.SecretKey = n.cfg.Keys.GossipKey
	mc.Label = n.cfg.Keys.GossipLabel
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Logger = logger
	mc.DeadNodeReclaimTime = 10 * time.Second
	if n.cfg.tuneGossip != nil {
		n.cfg.tuneGossip(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		n.gossip.Shutdown()
		return fmt.Errorf("gossip: %w", redactErr(err))
	}
	n.ml = ml
	// Read once now: memberlist rewrites its local node on every UpdateNode.
	a := ml.LocalNode()
	n.gossipAdv = net.JoinHostPort(a.Addr.String(), strconv.Itoa(int(a.Port)))
	return nil
}

// memberState is what the events delegate records about a node.
type memberState struct {
	Member
	addr string // gossip address, for reconnects
}

// reconnectLoop retries dead members and, while alone, the Join addresses,
// so that both sides of a healed partition merge again. Close does not wait
// for it: a join attempt to a dead address can take memberlist's TCPTimeout
// (30 s on WAN), and shutting down must not. It stops at the next address
// once the node is closed, and a join on a shut-down memberlist fails.
func (n *Node) reconnectLoop() {
	if len(n.cfg.Join) > 0 {
		if _, err := n.ml.Join(n.cfg.Join); err != nil {
			n.log.Warn("no join address answered yet; retrying", "err", redactErr(err))
		}
	}
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		var addrs []string
		alive := 0
		n.mu.Lock()
		for name, m := range n.members {
			switch {
			case m.State == MemberAlive:
				alive++
			case m.State == MemberDead && time.Since(m.Since) < time.Hour:
				if a := m.addr; a != "" {
					addrs = append(addrs, a)
				}
			case time.Since(m.Since) >= time.Hour:
				delete(n.members, name)
			}
		}
		n.mu.Unlock()
		if alive <= 1 {
			addrs = append(addrs, n.cfg.Join...)
		}
		for _, a := range addrs {
			select {
			case <-n.done:
				return
			default:
			}
			n.ml.Join([]string{a})
		}
	}
}

// gossipTransport is memberlist's Transport over the sockets the caller
// opened (a TCP listener and a UDP packet conn on the same port), dialling
// with the caller's Dial. It owns the sockets: Shutdown closes them.
type gossipTransport struct {
	ln   net.Listener   // static after construction
	pc   net.PacketConn // static after construction
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	log  *log.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{} // closed by Shutdown
	shutdown atomic.Bool
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// Gossip socket sizes: a UDP datagram is at most maxGossipPacket bytes; the
// kernel buffer is asked for gossipRecvBuffer bytes (memberlist's own
// transport asks for the same).
const (
	maxGossipPacket  = 65536
	gossipRecvBuffer = 2 << 20
)

func newGossipTransport(ln net.Listener, pc net.PacketConn, dial func(context.Context, string, string) (net.Conn, error), logger *log.Logger) *gossipTransport {
	t := &gossipTransport{ln: ln, pc: pc, dial: dial, log: logger,
		packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn), done: make(chan struct{})}
	if rb, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		for size := gossipRecvBuffer; size > 0 && rb.SetReadBuffer(size) != nil; size /= 2 {
		}
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop()
	return t
}

// FinalAdvertiseAddr implements memberlist.Transport: the configured
// advertise address, else the address the listener is bound to.
func (t *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, errors.New("gossip: the advertise address is not an IP")
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	ta, ok := t.ln.Addr().(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		return nil, 0, errors.New("gossip: listening on an unspecified address needs an advertise address")
	}
	a := ta.IP
	if a4 := a.To4(); a4 != nil {
		a = a4
	}
	return a, ta.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.pc.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.dial(ctx, "tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *gossipTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes the sockets and waits
// for the loops.
func (t *gossipTransport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.done)
	t.ln.Close()
	t.pc.Close()
	t.wg.Wait()
	return nil
}

func (t *gossipTransport) acceptLoop() {
	defer t.wg.Done()
	delay := time.Duration(0)
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Printf("[ERR] memberlist: accepting a gossip stream: %v", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			c.Close()
			return
		}
	}
}

func (t *gossipTransport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, maxGossipPacket)
	for {
		n, from, err := t.pc.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if t.shutdown.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Printf("[ERR] memberlist: reading a gossip packet: %v", err)
			continue
		}
		if n == 0 {
			continue // memberlist needs at least the message type
		}
		// memberlist keeps the packet: copy it out of the read buffer.
		select {
		case t.packetCh <- &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: now}:
		case <-t.done:
			return
		}
	}
}
