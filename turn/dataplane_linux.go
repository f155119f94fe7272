//go:build linux

package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The data plane relays ChannelData between UDP clients and their peers
// itself, for allocations made over UDP on the operating system's sockets;
// pion/turn keeps everything else: STUN requests and answers, Send and
// Data indications, TURN over TCP and TLS, and pion vnet sockets in tests.
//
// Why: with pion's design every relayed packet wakes a goroutine (the
// listener's read loop one way, the allocation's own read loop the other),
// and each wake-up costs the scheduler more than the relaying: the coturn
// comparison measured meshmeet at 1.3–1.6× coturn's CPU per relayed packet
// (docs/benchmarks.md, "TURN"). Here a few loops — one per listener
// socket — each wait on an epoll set of their own holding their listener
// socket and a share of the relay sockets, registered in Go's netpoller as
// one descriptor, and drain every ready socket on each wake-up, as coturn's
// event loops do. pion's goroutines stay parked but for the packets handed
// back to them. (Waiting in a blocking epoll_pwait instead of the
// netpoller was tried: sysmon then retakes the loop's P while it waits and
// polls every 20 µs, tripling the context switches.)
//
// What each packet gets on the fast path is what pion's path gives it:
// ChannelData from a client goes to its channel's peer, a peer's datagram
// goes to the client as ChannelData on its channel; the peer policy (port
// included) was checked when the channel was bound and is checked again on
// every datagram from a peer without a channel; the bandwidth buckets are
// taken per packet; every drop is counted by reason.
//
// Hot path: nothing allocated per packet, no lock held while writing (the
// table locks are read locks released before the send), sends never wait
// (a full socket buffer drops the packet, counted).

const (
	loopEvents  = 64  // epoll events per epoll_pwait
	drainBudget = 64  // datagrams read from one socket before the next
	slowQueue   = 512 // STUN messages queued for pion per listener socket
	relayQueue  = 64  // peers' datagrams without a channel queued per relay socket
	maxDatagram = 1<<16 - 1
)

// dataPlane is the set of loops of one Server, and the channel table.
type dataPlane struct {
	s     *Server
	loops []*loop
	wg    sync.WaitGroup

	mu     sync.RWMutex          // guards the following fields
	chans  map[chanKey]*binding  // by client, listener address, number
	relays map[uint16]*relayConn // data-plane relay sockets by port
}

// chanKey identifies a channel from the client's side: the 5-tuple (the
// protocol is UDP) and the channel number.
type chanKey struct {
	client, server netip.AddrPort
	num            uint16
}

// binding is one channel of a data-plane allocation. Static.
type binding struct {
	rc       *relayConn
	key      chanKey
	peer     netip.AddrPort
	denied   bool    // the policy refuses the peer's port: drop, counted
	badAddr  bool    // a socket address could not be built (family mismatch): denied
	clientSA rawAddr // the client, for the listener socket's family
	peerSA   rawAddr // the peer, for the relay socket's family
}

func newDataPlane(s *Server) *dataPlane {
	return &dataPlane{s: s, chans: map[chanKey]*binding{}, relays: map[uint16]*relayConn{}}
}

// addListener puts a listener socket on a loop of its own and starts it.
// It returns false, changing nothing, where the socket is not one of the
// operating system's (pion vnet): pion then reads it as before.
func (dp *dataPlane) addListener(l *udpListener) (bool, error) {
	fu, ok := l.PacketConn.(*fastUDP)
	if !ok {
		return false, nil
	}
	lp, err := newLoop(dp)
	if err != nil {
		return false, err
	}
	l.dpl.fast = fu
	l.dpl.local = addrPortOf(fu.LocalAddr())
	if l.dpl.id, err = lp.add(fu.rc, dpSocket{l: l}); err != nil {
		lp.file.Close()
		l.dpl = dpListener{}
		return false, err
	}
	l.dpl.lp = lp
	l.slow = make(chan slowPkt, slowQueue)
	l.done = make(chan struct{})
	dp.loops = append(dp.loops, lp)
	dp.wg.Add(1)
	go lp.run()
	return true, nil
}

// removeListener takes a closing listener socket off its loop.
func (dp *dataPlane) removeListener(l *udpListener) {
	l.dpl.lp.remove(l.dpl.fast.rc, l.dpl.id)
}

// addRelay puts a new relay socket of an allocation made through l on l's
// loop: a client's packets then cross the server on one loop both ways,
// and the kernel's SO_REUSEPORT hash of clients over the listener sockets
// spreads the load over the loops. (Spreading relay sockets round-robin
// instead woke both loops for every round trip: ~1.15× the CPU per
// packet, docs/benchmarks.md.)
// An error fails the allocation: every allocation of a data-plane
// listener is on the data plane, so a ChannelData without a binding in the
// table is one pion would drop as well.
func (dp *dataPlane) addRelay(rc *relayConn, l *udpListener) error {
	fu, ok := rc.PacketConn.(*fastUDP)
	if !ok {
		return errors.New("turn: relay socket is not a system socket")
	}
	lp := l.dpl.lp
	rc.dpr.fast, rc.dpr.lis = fu, l
	rc.slow = make(chan slowPkt, relayQueue)
	rc.done = make(chan struct{})
	port := addrPortOf(fu.LocalAddr()).Port()
	dp.mu.Lock()
	if _, dup := dp.relays[port]; dup {
		dp.mu.Unlock()
		return fmt.Errorf("turn: relay port %d registered twice", port)
	}
	dp.relays[port] = rc
	dp.mu.Unlock()
	id, err := lp.add(fu.rc, dpSocket{rc: rc})
	if err != nil {
		dp.mu.Lock()
		delete(dp.relays, port)
		dp.mu.Unlock()
		return err
	}
	rc.dpr.lp, rc.dpr.id = lp, id
	return nil
}

// removeRelay takes a closing relay socket off its loop and drops its
// channels.
func (dp *dataPlane) removeRelay(rc *relayConn) {
	rc.dpr.lp.remove(rc.dpr.fast.rc, rc.dpr.id)
	port := addrPortOf(rc.dpr.fast.LocalAddr()).Port()
	dp.mu.Lock()
	if dp.relays[port] == rc {
		delete(dp.relays, port)
	}
	if m := rc.dpr.peers.Load(); m != nil {
		for _, b := range *m {
			if dp.chans[b.key] == b {
				delete(dp.chans, b.key)
			}
		}
	}
	rc.dpr.peers.Store(nil)
	dp.mu.Unlock()
}

// onAllocationCreated is pion's OnAllocationCreated event: it ties a relay
// socket to its client, so that a channel event can be checked against
// the allocation it names (a relay port closed and reused by a new
// allocation while an old one's ChannelBind was in flight must not give
// the new relay socket the old client's channel). pion calls it before it
// answers the Allocate, so before any ChannelBind on that 5-tuple.
func (dp *dataPlane) onAllocationCreated(src, _ net.Addr, _, _, _ string, relay net.Addr, _ int) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if rc := dp.relays[addrPortOf(relay).Port()]; rc != nil && !rc.dpr.client.IsValid() {
		rc.dpr.client = addrPortOf(src)
	}
}

// onChannelCreated is pion's OnChannelCreated event: a channel of a
// data-plane allocation enters the table.
func (dp *dataPlane) onChannelCreated(src, dst net.Addr, _, _, _ string, relay, peer net.Addr, num uint16) {
	client, server, p, r := addrPortOf(src), addrPortOf(dst), addrPortOf(peer), addrPortOf(relay)
	if !client.IsValid() || !p.IsValid() {
		return
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	rc := dp.relays[r.Port()]
	if rc == nil || rc.dpr.client != client {
		return // not a data-plane allocation (TCP, TLS), closed, or another client's
	}
	b := &binding{rc: rc, key: chanKey{client: client, server: server, num: num}, peer: p}
	var ok1, ok2 bool
	b.clientSA, ok1 = makeRawAddr(client, rc.dpr.lis.dpl.fast.is6)
	b.peerSA, ok2 = makeRawAddr(p, rc.dpr.fast.is6)
	b.badAddr = !ok1 || !ok2
	b.denied = b.badAddr || dp.s.cfg.Policy.Check(p) != nil
	dp.chans[b.key] = b
	old := rc.dpr.peers.Load()
	m := make(map[netip.AddrPort]*binding, 1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	if !b.denied {
		m[p] = b
	}
	rc.dpr.peers.Store(&m)
}

// onChannelDeleted is pion's OnChannelDeleted event (the channel expired).
func (dp *dataPlane) onChannelDeleted(src, dst net.Addr, _, _, _ string, _, peer net.Addr, num uint16) {
	key := chanKey{client: addrPortOf(src), server: addrPortOf(dst), num: num}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	b := dp.chans[key]
	if b == nil {
		return
	}
	delete(dp.chans, key)
	old := b.rc.dpr.peers.Load()
	if old == nil || (*old)[b.peer] != b {
		return
	}
	m := make(map[netip.AddrPort]*binding, len(*old))
	for k, v := range *old {
		if v != b {
			m[k] = v
		}
	}
	b.rc.dpr.peers.Store(&m)
}

// recheck applies a changed policy (a new bridge set) to the channel
// table: a binding whose verdict changed is replaced by a copy with the
// new one (bindings are static, so the loops never see one change).
func (dp *dataPlane) recheck() {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	changed := map[*relayConn]bool{}
	for k, b := range dp.chans {
		denied := b.badAddr || dp.s.cfg.Policy.Check(b.peer) != nil
		if denied == b.denied {
			continue
		}
		nb := *b
		nb.denied = denied
		dp.chans[k] = &nb
		changed[b.rc] = true
	}
	for rc := range changed {
		m := make(map[netip.AddrPort]*binding)
		for _, b := range dp.chans {
			if b.rc == rc && !b.denied {
				m[b.peer] = b
			}
		}
		rc.dpr.peers.Store(&m)
	}
}

// stop ends the loops; the sockets are closed already.
func (dp *dataPlane) stop() {
	for _, lp := range dp.loops {
		lp.stopping.Store(true)
		lp.file.Close()
	}
	dp.wg.Wait()
}

// loop is one event loop: an epoll set, registered in Go's netpoller as
// one descriptor, and the goroutine that drains it.
type loop struct {
	dp       *dataPlane
	epfd     int
	file     *os.File // owns epfd
	raw      syscall.RawConn
	stopping atomic.Bool

	mu     sync.RWMutex // guards the following fields
	socks  map[uint64]dpSocket
	nextID uint64

	// Owned by the loop goroutine; the closures are built once so that
	// passing them to syscall.RawConn allocates nothing.
	events   [loopEvents]syscall.EpollEvent
	buf      []byte // 4 bytes of headroom for a ChannelData header, then a datagram
	sa       syscall.RawSockaddrInet6
	curL     *udpListener
	curRC    *relayConn
	out      []byte
	outSA    *rawAddr
	outErrno syscall.Errno
	drainL   func(fd uintptr)
	drainR   func(fd uintptr)
	send     func(fd uintptr)
}

// dpListener is the data-plane state of a listener socket. Static once
// set by addListener.
type dpListener struct {
	fast  *fastUDP
	lp    *loop
	id    uint64
	local netip.AddrPort
}

// dpRelay is the data-plane state of a relay socket: static once set by
// addRelay but for peers, its channels by peer, replaced whole (copy on
// write) under dataPlane.mu.
type dpRelay struct {
	fast  *fastUDP
	lp    *loop
	id    uint64
	lis   *udpListener // the listener the allocation was made on
	peers atomic.Pointer[map[netip.AddrPort]*binding]

	client netip.AddrPort // the allocation's client; guarded by dataPlane.mu
}

// dpSocket is what an epoll event points at: a listener socket or a relay
// socket.
type dpSocket struct {
	l  *udpListener
	rc *relayConn
}

func newLoop(dp *dataPlane) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "turn-epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	lp := &loop{dp: dp, epfd: epfd, file: f, raw: raw, socks: map[uint64]dpSocket{}, buf: make([]byte, 4+maxDatagram)}
	lp.drainL = lp.drainListener
	lp.drainR = lp.drainRelay
	lp.send = lp.sendOut
	return lp, nil
}

// add registers a socket; the id it returns is the epoll event's data.
func (lp *loop) add(rc syscall.RawConn, s dpSocket) (uint64, error) {
	lp.mu.Lock()
	lp.nextID++
	id := lp.nextID
	lp.socks[id] = s
	lp.mu.Unlock()
	var cerr error
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(lp.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil && cerr != nil {
		err = os.NewSyscallError("epoll_ctl", cerr)
	}
	if err != nil {
		lp.mu.Lock()
		delete(lp.socks, id)
		lp.mu.Unlock()
		return 0, err
	}
	return id, nil
}

// remove unregisters a socket before it is closed. An event for it already
// fetched finds no entry, or a socket whose Control fails once closed.
func (lp *loop) remove(rc syscall.RawConn, id uint64) {
	rc.Control(func(fd uintptr) {
		syscall.EpollCtl(lp.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	lp.mu.Lock()
	delete(lp.socks, id)
	lp.mu.Unlock()
}

func (lp *loop) run() {
	defer lp.dp.wg.Done()
	lp.raw.Read(func(uintptr) bool {
		for {
			if lp.stopping.Load() {
				return true
			}
			n, errno := epollWait(lp.epfd, lp.events[:])
			switch {
			case errno == syscall.EINTR:
				continue
			case errno != 0:
				lp.dp.s.log.Error("turn event loop stopped", "err", errno.Error())
				return true
			case n == 0:
				return false // park in the netpoller until a socket is ready
			}
			for i := range n {
				ev := &lp.events[i]
				lp.serve(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
			}
		}
	})
}

func (lp *loop) serve(id uint64) {
	lp.mu.RLock()
	sk, ok := lp.socks[id]
	lp.mu.RUnlock()
	switch {
	case !ok:
	case sk.l != nil:
		lp.curL = sk.l
		sk.l.dpl.fast.rc.Control(lp.drainL)
		lp.curL = nil
	default:
		lp.curRC = sk.rc
		sk.rc.dpr.fast.rc.Control(lp.drainR)
		lp.curRC = nil
	}
}

// drainListener reads datagrams from clients.
func (lp *loop) drainListener(fd uintptr) {
	l := lp.curL
	ctr := &lp.dp.s.ctr
	for range drainBudget {
		n, errno := recvfrom(fd, lp.buf, &lp.sa)
		if errno != 0 {
			return // EAGAIN: drained
		}
		b := lp.buf[:n]
		switch kind, num, payload := clientDatagram(b); kind {
		case dgramChannel:
			key := chanKey{client: sockaddrAddrPort(&lp.sa), server: l.dpl.local, num: num}
			lp.dp.mu.RLock()
			bd := lp.dp.chans[key]
			lp.dp.mu.RUnlock()
			switch {
			case bd == nil:
				ctr.noChannel.Add(1)
			case bd.denied:
				ctr.packetsDenied.Add(1)
			default:
				lp.toPeer(bd, payload)
			}
		case dgramSTUN: // pion's
			l.s.enqueue(l.slow, b, sockaddrUDP(&lp.sa))
		default:
			ctr.malformed.Add(1)
		}
	}
}

func (lp *loop) toPeer(bd *binding, payload []byte) {
	if bd.rc.take(bd.rc.out, len(payload)) {
		lp.sendVia(bd.rc.dpr.fast.rc, payload, &bd.peerSA, len(payload))
	}
}

// drainRelay reads datagrams from peers.
func (lp *loop) drainRelay(fd uintptr) {
	rc, s := lp.curRC, lp.dp.s
	for range drainBudget {
		n, errno := recvfrom(fd, lp.buf[4:], &lp.sa)
		if errno != 0 {
			return
		}
		peer := sockaddrAddrPort(&lp.sa)
		var bd *binding
		if m := rc.dpr.peers.Load(); m != nil {
			bd = (*m)[peer]
		}
		// A bound channel's peer passed the policy when it was bound.
		if bd == nil && !rc.allowedAP(peer) {
			s.ctr.packetsDenied.Add(1)
			continue
		}
		if !rc.take(rc.in, n) {
			continue
		}
		if bd == nil { // no channel: a Data indication, pion's
			s.enqueue(rc.slow, lp.buf[4:4+n], sockaddrUDP(&lp.sa))
			continue
		}
		putChannelHeader(lp.buf, bd.key.num, n)
		lp.sendVia(rc.dpr.lis.dpl.fast.rc, lp.buf[:4+n], &bd.clientSA, n)
	}
}

// sendVia sends p to `to` on the socket c and counts it as a relayed
// packet of payload bytes, or as a send error.
func (lp *loop) sendVia(c syscall.RawConn, p []byte, to *rawAddr, payload int) {
	lp.out, lp.outSA = p, to
	err := c.Control(lp.send)
	lp.out, lp.outSA = nil, nil
	if err != nil || lp.outErrno != 0 {
		lp.dp.s.ctr.sendErrors.Add(1)
		return
	}
	lp.dp.s.ctr.relayed(payload)
}

// sendOut sends lp.out to lp.outSA; it never waits: a full socket buffer
// (EAGAIN) is a drop.
func (lp *loop) sendOut(fd uintptr) {
	_, lp.outErrno = sendto(fd, lp.out, lp.outSA)
}

// epollWait returns the ready events without waiting (timeout 0, so the
// raw system call does not involve the scheduler).
func epollWait(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), e
}
