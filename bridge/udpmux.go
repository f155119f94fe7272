package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
)

// udpMux is the ICE UDP mux over several sockets bound to one address and
// port with SO_REUSEPORT (Config.UDPConn plus Config.UDPConns), used
// instead of pion's ice.UDPMuxDefault, which reads its one socket with one
// goroutine: with several sockets the kernel spreads remote addresses over
// them by a hash of the 4-tuple, and each socket has its own reader, so a
// node's media ingress is read on as many cores as it has sockets.
//
// Routing follows pion's mux. A datagram from a remote address a conn has
// written to goes to that conn; a STUN message from any other address goes
// to the conn whose local ufrag is the first part of its USERNAME
// attribute (RFC 8445 section 7.2.2: "local:remote" as seen by us) and the
// address's family; anything else is dropped and counted (mux_unroutable;
// a STUN message that does not parse: mux_malformed). A conn learns a
// remote address when it writes to it, as pion's does: only addresses its
// ICE agent chose to talk to, never one a datagram merely claimed.
//
// The reader reads into a pooled buffer and, when the datagram is routed,
// queues that buffer on the conn as is: no copy and no goroutine hand-off
// between the socket and the conn (the ICE agent's candidate goroutine
// reads the conn, as with pion's mux). A conn queues at most muxQueueLen
// datagrams; beyond that the datagram is dropped and counted
// (mux_queue_full). pion's mux queues without bound.
//
// A conn's writes leave through the socket its remote address was last
// received on (the first socket until the address has been heard from).
// Any of the sockets would do, since they share the address and port;
// keeping the kernel's choice keeps each remote on one socket's buffers.
// Batched egress (batch.go) sends through the first socket's descriptor
// only: its sendmmsg runs are longest when every datagram of a round goes
// through one socket, and one goroutine sends at a time anyway.

const (
	// muxMaxDatagram is the largest datagram the mux delivers: an
	// Ethernet MTU. Nothing WebRTC endpoints send is bigger (pion and
	// browsers keep DTLS and RTP under ~1,200 bytes), and the packet cache
	// takes no bigger packet (slotSize). Bigger datagrams are dropped and
	// counted as mux_malformed.
	muxMaxDatagram = 1500
	// muxQueueLen is the most datagrams a conn holds for its reader:
	// ~190 ms of a 720p publisher at 1.5 Mbit/s, a keyframe's burst many
	// times over.
	muxQueueLen = 256
	// muxMaxAddrs is the most remote addresses a conn routes by; one more
	// forgets its oldest. A conn talks to its remote candidates only, and
	// a PeerConnection takes maxRemoteCandidates of those.
	muxMaxAddrs = maxRemoteCandidates
	// muxShards is the number of independently locked parts of the
	// address table, so the readers of different sockets seldom meet on a
	// lock.
	muxShards = 32
)

// errMuxAddress is GetConn's answer for an address the mux does not
// listen on.
var errMuxAddress = errors.New("bridge: udp mux: not a listen address")

// muxBuf is one datagram: a pooled buffer, queued on a conn as read.
type muxBuf struct {
	next *muxBuf
	n    int
	from netip.AddrPort
	// One byte more than muxMaxDatagram: a read that fills it was a
	// bigger datagram, truncated by the kernel.
	b [muxMaxDatagram + 1]byte
}

var muxBufPool = sync.Pool{New: func() any { return new(muxBuf) }}

// muxSock is one of the mux's sockets with its address-port access.
type muxSock struct {
	pc net.PacketConn
	ap ice.AddrPortReaderWriter // nil: ReadFrom/WriteTo
}

func newMuxSock(pc net.PacketConn) muxSock {
	if uc, ok := pc.(*net.UDPConn); ok {
		return muxSock{pc: pc, ap: udpAddrPort{uc}}
	}
	ap, _ := pc.(ice.AddrPortReaderWriter)
	return muxSock{pc: pc, ap: ap}
}

func (s muxSock) read(p []byte) (int, netip.AddrPort, error) {
	if s.ap != nil {
		return s.ap.ReadFromAddrPort(p)
	}
	n, a, err := s.pc.ReadFrom(p)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, _ := a.(*net.UDPAddr)
	if ua == nil {
		return n, netip.AddrPort{}, nil // counted as malformed
	}
	return n, ua.AddrPort(), nil
}

func (s muxSock) write(p []byte, to netip.AddrPort) (int, error) {
	if s.ap != nil {
		return s.ap.WriteToAddrPort(p, to)
	}
	return s.pc.WriteTo(p, net.UDPAddrFromAddrPort(to))
}

// udpAddrPort is a *net.UDPConn's allocation-free reads and writes.
type udpAddrPort struct{ c *net.UDPConn }

func (u udpAddrPort) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(p)
}

func (u udpAddrPort) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	return u.c.WriteToUDPAddrPort(p, to)
}

// muxAddr is a remote address a conn routes by.
type muxAddr struct {
	ap   netip.AddrPort // canonical (muxCanonical)
	conn *muxConn
	sock atomic.Int32 // the socket it was last received on
}

// sockCounter is one reader's counter, alone on its cache line so that
// readers on different cores do not share one.
type sockCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// addrShard is a part of the address table, padded to a cache line: an
// RLock writes to its mutex.
type addrShard struct {
	mu sync.RWMutex
	m  map[netip.AddrPort]*muxAddr
	_  [64 - 24 - 8]byte
}

type udpMux struct {
	socks       []muxSock     // static after newUDPMux
	local       net.Addr      // static: every socket's address
	localStr    string        // static
	unspecified bool          // static: the sockets listen on 0.0.0.0 or ::
	loopback    bool          // static: Config.IncludeLoopback
	stats       *counters     // the bridge's
	log         *slog.Logger  // static
	recv        []sockCounter // datagrams read, per socket

	shards [muxShards]addrShard
	// addrMu serialises changes of the address table and of the conns'
	// address lists (rare: a conn's first write to an address, its close);
	// never held by the readers.
	addrMu sync.Mutex

	// mu guards the following fields.
	mu     sync.Mutex
	closed bool
	conns  [2]map[string]*muxConn // [0] IPv4, [1] IPv6, by local ufrag

	closeOnce sync.Once
	wg        sync.WaitGroup // the readers
}

// newUDPMux returns a mux over socks (bound to one address and port); it
// starts nothing until start.
func newUDPMux(socks []net.PacketConn, loopback bool, stats *counters, log *slog.Logger) *udpMux {
	m := &udpMux{
		local:    socks[0].LocalAddr(),
		loopback: loopback,
		stats:    stats,
		log:      log,
		recv:     make([]sockCounter, len(socks)),
		conns:    [2]map[string]*muxConn{{}, {}},
	}
	m.localStr = m.local.String()
	if ua, ok := m.local.(*net.UDPAddr); ok && ua.IP.IsUnspecified() {
		m.unspecified = true
	}
	for _, s := range socks {
		m.socks = append(m.socks, newMuxSock(s))
	}
	for i := range m.shards {
		m.shards[i].m = map[netip.AddrPort]*muxAddr{}
	}
	return m
}

// start starts one reader per socket.
func (m *udpMux) start() {
	m.wg.Add(len(m.socks))
	for i := range m.socks {
		go m.readLoop(i)
	}
}

// received returns how many datagrams each socket has read (tests).
func (m *udpMux) received() []uint64 {
	out := make([]uint64, len(m.recv))
	for i := range m.recv {
		out[i] = m.recv[i].n.Load()
	}
	return out
}

// muxCanonical is the address table's key for ap: IPv4-mapped IPv6 as
// IPv4, no zone except on link-local IPv6 (where it names the interface),
// as pion's mux keys its table.
func muxCanonical(ap netip.AddrPort) netip.AddrPort {
	a := ap.Addr().Unmap()
	if !(a.Is6() && a.IsLinkLocalUnicast()) {
		a = a.WithZone("")
	}
	return netip.AddrPortFrom(a, ap.Port())
}

func famIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

func (m *udpMux) shard(ap netip.AddrPort) *addrShard {
	a := ap.Addr().As16()
	h := uint32(2166136261)
	for _, b := range a {
		h = (h ^ uint32(b)) * 16777619
	}
	h = (h ^ uint32(ap.Port())) * 16777619
	return &m.shards[h%muxShards]
}

// readLoop reads socket i until the mux closes.
func (m *udpMux) readLoop(i int) {
	defer m.wg.Done()
	s := m.socks[i]
	b := muxBufPool.Get().(*muxBuf)
	defer func() { muxBufPool.Put(b) }()
	logged := false
	for {
		n, from, err := s.read(b.b[:])
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			if !logged { // a UDP read fails only when closed; once is enough
				m.log.Error("udp mux read", "err", err)
				logged = true
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if m.dispatch(i, b, n, from) {
			b = muxBufPool.Get().(*muxBuf)
		}
	}
}

// dispatch routes b, n bytes read on socket i from from, to its conn and
// reports whether the conn took b; otherwise the drop is counted and b is
// the caller's again.
func (m *udpMux) dispatch(i int, b *muxBuf, n int, from netip.AddrPort) bool {
	m.recv[i].n.Add(1)
	if n > muxMaxDatagram || n <= 0 || !from.IsValid() {
		m.stats.dropMuxMalformed.Add(1)
		return false
	}
	ap := muxCanonical(from)
	sh := m.shard(ap)
	sh.mu.RLock()
	e := sh.m[ap]
	sh.mu.RUnlock()
	var c *muxConn
	if e != nil {
		c = e.conn
		if e.sock.Load() != int32(i) {
			e.sock.Store(int32(i))
		}
	} else {
		p := b.b[:n]
		if !isSTUNMessage(p) {
			m.stats.dropMuxUnroutable.Add(1)
			return false
		}
		ufrag, ok := stunLocalUfrag(p)
		if !ok {
			m.stats.dropMuxMalformed.Add(1)
			return false
		}
		m.mu.Lock()
		c = m.conns[famIndex(ap.Addr().Is6())][string(ufrag)]
		m.mu.Unlock()
		if c == nil {
			m.stats.dropMuxUnroutable.Add(1)
			return false
		}
	}
	b.n, b.from = n, from
	switch c.deliver(b, i) {
	case deliverOK:
		return true
	case deliverFull:
		m.stats.dropMuxQueueFull.Add(1)
	default:
		m.stats.dropMuxUnroutable.Add(1) // its conn closed meanwhile
	}
	return false
}

// stunMagicCookie is RFC 8489 section 5's magic cookie.
const stunMagicCookie = 0x2112A442

// isSTUNMessage reports whether p is a STUN message by RFC 7983's first
// byte (0–3) and the magic cookie; pion's mux looks at the cookie only.
func isSTUNMessage(p []byte) bool {
	return len(p) >= 20 && p[0] < 4 && binary.BigEndian.Uint32(p[4:8]) == stunMagicCookie
}

// STUN attribute types (RFC 8489 section 18.3).
const (
	stunAttrUsername         = 0x0006
	stunAttrMessageIntegrity = 0x0008
	stunAttrMIntegritySHA256 = 0x001C
)

// stunLocalUfrag returns the part before the first ':' of the USERNAME
// attribute of the STUN message p (the local ufrag of a connectivity
// check sent to us), false if p is not a well-formed STUN message (its
// length field is not exactly the rest of the datagram, an attribute runs
// past the end) or has no USERNAME before its integrity attributes (pion
// ignores what follows MESSAGE-INTEGRITY), or the ufrag is empty. It
// allocates nothing: the ufrag is a subslice of p.
func stunLocalUfrag(p []byte) ([]byte, bool) {
	if !isSTUNMessage(p) {
		return nil, false
	}
	size := int(binary.BigEndian.Uint16(p[2:4]))
	if size%4 != 0 || 20+size != len(p) {
		return nil, false
	}
	var user []byte
	found, integrity := false, false
	for rest := p[20:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, false
		}
		typ := binary.BigEndian.Uint16(rest[0:2])
		l := int(binary.BigEndian.Uint16(rest[2:4]))
		padded := (l + 3) &^ 3
		if padded > len(rest)-4 {
			return nil, false
		}
		switch typ {
		case stunAttrUsername:
			if !found && !integrity {
				user, found = rest[4:4+l], true
			}
		case stunAttrMessageIntegrity, stunAttrMIntegritySHA256:
			integrity = true
		}
		rest = rest[4+padded:]
	}
	if !found {
		return nil, false
	}
	if i := bytes.IndexByte(user, ':'); i >= 0 {
		user = user[:i]
	}
	return user, len(user) > 0
}

// GetListenAddresses implements ice.UDPMux: the sockets' address, or with
// an unspecified one every up interface's addresses of its family;
// loopback ones only with Config.IncludeLoopback (pion's mux does that
// filtering in the agent, for its own type only).
func (m *udpMux) GetListenAddresses() []net.Addr {
	ua, ok := m.local.(*net.UDPAddr)
	if !ok {
		return []net.Addr{m.local}
	}
	if !m.unspecified {
		if ua.IP.IsLoopback() && !m.loopback {
			return nil
		}
		return []net.Addr{m.local}
	}
	only4 := ua.IP.To4() != nil
	ifaces, err := net.Interfaces()
	if err != nil {
		return []net.Addr{m.local}
	}
	var out []net.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || (ifc.Flags&net.FlagLoopback != 0 && !m.loopback) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if (only4 && !ip.Is4()) || ip.IsLinkLocalUnicast() || (ip.IsLoopback() && !m.loopback) {
				continue
			}
			out = append(out, &net.UDPAddr{IP: ip.AsSlice(), Port: ua.Port})
		}
	}
	return out
}

// GetConn implements ice.UDPMux: the conn of ufrag for addr's family,
// created on first use. Each call returns a handle; the conn lives until
// its last handle is closed or RemoveConnByUfrag.
func (m *udpMux) GetConn(ufrag string, addr net.Addr) (net.PacketConn, error) {
	if !m.unspecified && addr.String() != m.localStr {
		return nil, errMuxAddress
	}
	v6 := false
	if ua, ok := addr.(*net.UDPAddr); ok && ua.IP.To4() == nil {
		v6 = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, io.ErrClosedPipe
	}
	tab := m.conns[famIndex(v6)]
	c := tab[ufrag]
	if c == nil {
		c = &muxConn{m: m, ufrag: ufrag, v6: v6, notify: make(chan struct{}, 1), done: make(chan struct{})}
		tab[ufrag] = c
	}
	c.refs++
	return &muxHandle{c: c, done: make(chan struct{})}, nil
}

// RemoveConnByUfrag implements ice.UDPMux: closes ufrag's conns (both
// families) and forgets their addresses.
func (m *udpMux) RemoveConnByUfrag(ufrag string) {
	var gone []*muxConn
	m.mu.Lock()
	for _, tab := range m.conns {
		if c := tab[ufrag]; c != nil {
			delete(tab, ufrag)
			gone = append(gone, c)
		}
	}
	m.mu.Unlock()
	for _, c := range gone {
		c.close()
	}
}

// release drops a handle's reference to c; the last one closes it.
func (m *udpMux) release(c *muxConn) {
	m.mu.Lock()
	c.refs--
	last := c.refs <= 0
	if last {
		if tab := m.conns[famIndex(c.v6)]; tab[c.ufrag] == c {
			delete(tab, c.ufrag)
		}
	}
	m.mu.Unlock()
	if last {
		c.close()
	}
}

func (m *udpMux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Close implements ice.UDPMux: closes every conn and socket and waits for
// the readers. Idempotent.
func (m *udpMux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		var all []*muxConn
		for i, tab := range m.conns {
			for _, c := range tab {
				all = append(all, c)
			}
			m.conns[i] = map[string]*muxConn{}
		}
		m.mu.Unlock()
		for _, c := range all {
			c.close()
		}
		for _, s := range m.socks {
			_ = s.pc.Close()
		}
		m.wg.Wait()
	})
	return nil
}

// register makes c the conn of remote address ap (canonical) and returns
// the socket to write to it through.
func (m *udpMux) register(c *muxConn, ap netip.AddrPort) int {
	m.addrMu.Lock()
	defer m.addrMu.Unlock()
	if s, ok := c.sockFor(ap); ok { // another writer of c registered it
		return s
	}
	e := &muxAddr{ap: ap, conn: c}
	sock := c.lastSock.Load()
	e.sock.Store(sock)
	sh := m.shard(ap)
	sh.mu.Lock()
	prev := sh.m[ap]
	sh.m[ap] = e
	sh.mu.Unlock()
	if prev != nil {
		prev.conn.forget(prev) // the address moved to c, as in pion's mux
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		m.unmapLocked(e)
		return int(sock)
	}
	var old *muxAddr
	if len(c.addrs) >= muxMaxAddrs {
		old = c.addrs[0]
		copy(c.addrs, c.addrs[1:])
		c.addrs = c.addrs[:len(c.addrs)-1]
	}
	c.addrs = append(c.addrs, e)
	c.mu.Unlock()
	if old != nil {
		m.unmapLocked(old)
	}
	return int(sock)
}

// unmapLocked removes e from the address table if it is still there.
// Called with addrMu held.
func (m *udpMux) unmapLocked(e *muxAddr) {
	sh := m.shard(e.ap)
	sh.mu.Lock()
	if sh.m[e.ap] == e {
		delete(sh.m, e.ap)
	}
	sh.mu.Unlock()
}

// addrCount returns the address table's size (tests).
func (m *udpMux) addrCount() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// muxConn is one ufrag's (and family's) conn: the datagrams routed to it,
// the remote addresses it routes by.
type muxConn struct {
	m      *udpMux
	ufrag  string // static
	v6     bool   // static
	notify chan struct{}
	done   chan struct{} // closed by close

	refs int // handles; guarded by m.mu

	lastSock atomic.Int32 // the socket of the last datagram delivered
	waiting  atomic.Int32 // readers blocked on notify

	// mu guards the following fields.
	mu         sync.Mutex
	head, tail *muxBuf // queue, oldest first
	n          int
	closed     bool
	addrs      []*muxAddr // changed with m.addrMu held too
}

// Results of deliver.
const (
	deliverOK = iota
	deliverFull
	deliverClosed
)

// deliver queues b, read on socket sock.
func (c *muxConn) deliver(b *muxBuf, sock int) int {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return deliverClosed
	}
	if c.n >= muxQueueLen {
		c.mu.Unlock()
		return deliverFull
	}
	b.next = nil
	if c.tail != nil {
		c.tail.next = b
	} else {
		c.head = b
	}
	c.tail = b
	c.n++
	wake := c.waiting.Load() > 0
	c.mu.Unlock()
	if c.lastSock.Load() != int32(sock) {
		c.lastSock.Store(int32(sock))
	}
	if wake {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	return deliverOK
}

// sockFor returns the socket to write to ap through if c knows ap.
func (c *muxConn) sockFor(ap netip.AddrPort) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.addrs {
		if e.ap == ap {
			return int(e.sock.Load()), true
		}
	}
	return 0, false
}

// forget removes e from c's addresses (it moved to another conn). Called
// with m.addrMu held.
func (c *muxConn) forget(e *muxAddr) {
	c.mu.Lock()
	for i, x := range c.addrs {
		if x == e {
			c.addrs = append(c.addrs[:i], c.addrs[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
}

// close ends c: readers get io.EOF, queued datagrams go back to the pool,
// its addresses leave the table. Idempotent.
func (c *muxConn) close() {
	m := c.m
	m.addrMu.Lock()
	defer m.addrMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	for b := c.head; b != nil; {
		next := b.next
		b.next = nil
		muxBufPool.Put(b)
		b = next
	}
	c.head, c.tail, c.n = nil, nil, 0
	addrs := c.addrs
	c.addrs = nil
	c.mu.Unlock()
	for _, e := range addrs {
		m.unmapLocked(e)
	}
}

// muxHandle is what GetConn hands out: one reference to a conn, a
// net.PacketConn and ice.AddrPortReaderWriter. Closing it unblocks its
// reads; the conn closes with its last handle.
type muxHandle struct {
	c        *muxConn
	done     chan struct{}
	once     sync.Once
	deadline atomic.Pointer[time.Time]
}

var (
	_ net.PacketConn           = (*muxHandle)(nil)
	_ ice.AddrPortReaderWriter = (*muxHandle)(nil)
	_ ice.UDPMux               = (*udpMux)(nil)
)

// ReadFromAddrPort implements ice.AddrPortReaderWriter: the oldest queued
// datagram. It allocates nothing unless a read deadline is set.
func (h *muxHandle) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	c := h.c
	var timeout <-chan time.Time
	for {
		select {
		case <-h.done:
			return 0, netip.AddrPort{}, io.ErrClosedPipe
		default:
		}
		c.mu.Lock()
		if b := c.head; b != nil {
			c.head = b.next
			if c.head == nil {
				c.tail = nil
			}
			c.n--
			c.mu.Unlock()
			n, from := b.n, b.from
			var err error
			if len(p) < n {
				n, err = 0, io.ErrShortBuffer
			} else {
				copy(p, b.b[:n])
			}
			b.next = nil
			muxBufPool.Put(b)
			return n, from, err
		}
		if c.closed {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, io.EOF
		}
		c.waiting.Add(1)
		c.mu.Unlock()
		if timeout == nil {
			if d := h.deadline.Load(); d != nil && !d.IsZero() {
				wait := time.Until(*d)
				if wait <= 0 {
					c.waiting.Add(-1)
					return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
				}
				t := time.NewTimer(wait)
				defer t.Stop()
				timeout = t.C
			}
		}
		select {
		case <-c.notify:
		case <-c.done:
		case <-h.done:
		case <-timeout:
			c.waiting.Add(-1)
			return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
		}
		c.waiting.Add(-1)
	}
}

// ReadFrom implements net.PacketConn.
func (h *muxHandle) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := h.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort implements ice.AddrPortReaderWriter: through the socket
// to recently received from; the conn learns the address.
func (h *muxHandle) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	select {
	case <-h.done:
		return 0, io.ErrClosedPipe
	case <-h.c.done:
		return 0, io.ErrClosedPipe
	default:
	}
	if !to.IsValid() {
		return 0, errMuxAddress
	}
	c := h.c
	ap := muxCanonical(to)
	s, ok := c.sockFor(ap)
	if !ok {
		s = c.m.register(c, ap)
	}
	return c.m.socks[s].write(p, to)
}

// WriteTo implements net.PacketConn.
func (h *muxHandle) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errMuxAddress
	}
	return h.WriteToAddrPort(p, ua.AddrPort())
}

// Close implements net.PacketConn. Idempotent.
func (h *muxHandle) Close() error {
	h.once.Do(func() {
		close(h.done)
		h.c.m.release(h.c)
	})
	return nil
}

// LocalAddr implements net.PacketConn.
func (h *muxHandle) LocalAddr() net.Addr { return h.c.m.local }

// SetDeadline implements net.PacketConn (the read deadline; writes do not
// wait on the mux).
func (h *muxHandle) SetDeadline(t time.Time) error { return h.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn. It applies to reads that
// start after it.
func (h *muxHandle) SetReadDeadline(t time.Time) error {
	h.deadline.Store(&t)
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes do not wait on the
// mux (a full socket buffer blocks in the kernel's send path as with
// pion's mux).
func (h *muxHandle) SetWriteDeadline(time.Time) error { return nil }
