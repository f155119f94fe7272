package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// maxRemoteRooms bounds the rooms one peer may attach on a link.
const maxRemoteRooms = 4096

// maxTracksPerLink bounds the tracks one peer may publish on a link.
const maxTracksPerLink = 1 << 16

// controlQueue is the number of control messages queued per link. State
// messages that do not fit close the link (it redials and resynchronises);
// NACKs, keyframe requests and statistics are dropped and counted.
const controlQueue = 1024

// controlWriteTimeout bounds one control message write: a peer that does
// not read its control stream loses the link.
const controlWriteTimeout = 5 * time.Second

// link is one QUIC connection to a peer, carrying every room the two
// nodes share.
type link struct {
	r       *Relay
	conn    *quic.Conn // static
	dialled bool       // static: this node dialled
	ctx     context.Context
	cancel  context.CancelCauseFunc

	// Set by start, static afterwards.
	peerName string
	out      *quic.SendStream
	in       *quic.ReceiveStream
	inReader *ControlReader

	peer *peer // set by register under Relay.mu

	ctrlQ chan []byte // to controlWriter
	sq    *sendQueue
	wg    sync.WaitGroup

	// imports maps the peer's track numbers to imported tracks. Rebuilt
	// under mu and published; read by the datagram loop without a lock.
	imports atomic.Pointer[map[uint32]*importTrack]

	// mu guards the following fields.
	mu          sync.Mutex
	importsW    map[uint32]*importTrack // writer copy of imports
	exports     map[uint32]*exportTrack // by this node's track number
	exportByKey map[importKey]*exportTrack
	nextNum     uint32
	remoteRooms map[string]bool // rooms the peer attached
	sentAttach  map[string]bool // rooms this node attached on the link
	down        bool            // linkDown ran: no new exports

	// Measured by tick (manage goroutine), read by stats.
	statsMu   sync.Mutex
	last      quic.ConnectionStats
	lastAt    time.Time
	lastOut   uint64
	lastIn    uint64
	cur       LinkStats
	layerCap  atomic.Int32 // highest layer sent on this link
	peerCap   atomic.Int32 // highest layer the peer sends on it (LayerCap)
	layerSets atomic.Bool  // the peer sends SubscribeLayers
	calm      int          // ticks without pressure, owned by tick
	dropsSeen uint64       // queue drops at the last tick, owned by tick

	bytesOut, bytesIn atomic.Uint64 // datagram bytes on this link
	datagrams         atomic.Uint64
	queueDrops        atomic.Uint64
	layerIn           [MaxLayers]atomic.Uint64 // datagrams received per layer for an import
}

func newLink(r *Relay, c *quic.Conn, dialled bool) *link {
	ctx, cancel := context.WithCancelCause(r.ctx)
	l := &link{
		r: r, conn: c, dialled: dialled, ctx: ctx, cancel: cancel,
		ctrlQ:       make(chan []byte, controlQueue),
		sq:          newSendQueue(r.cfg.SendQueue),
		importsW:    map[uint32]*importTrack{},
		exports:     map[uint32]*exportTrack{},
		exportByKey: map[importKey]*exportTrack{},
		remoteRooms: map[string]bool{},
		sentAttach:  map[string]bool{},
	}
	l.imports.Store(&map[uint32]*importTrack{})
	l.layerCap.Store(MaxLayer)
	l.peerCap.Store(MaxLayer)
	return l
}

// start exchanges hellos on the two control streams and returns the
// peer's node name.
func (l *link) start(ctx context.Context) (string, error) {
	out, err := l.conn.OpenUniStream()
	if err != nil {
		return "", fmt.Errorf("open control stream: %w", err)
	}
	l.out = out
	hello, _ := (&Message{Type: MsgHello, Version: protocolVersion, Node: l.r.cfg.NodeName}).Append(nil)
	out.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if _, err := out.Write(hello); err != nil {
		return "", fmt.Errorf("write hello: %w", err)
	}
	out.SetWriteDeadline(time.Time{})
	in, err := l.conn.AcceptUniStream(ctx)
	if err != nil {
		return "", fmt.Errorf("accept control stream: %w", err)
	}
	l.in = in
	l.inReader = NewControlReader(in)
	if dl, ok := ctx.Deadline(); ok {
		in.SetReadDeadline(dl)
	}
	var m Message
	if err := l.inReader.Read(&m); err != nil {
		return "", fmt.Errorf("read hello: %w", err)
	}
	in.SetReadDeadline(time.Time{})
	if m.Type != MsgHello || m.Node == "" {
		return "", fmt.Errorf("%w: first control message is not a hello", ErrMalformed)
	}
	if m.Version < protocolVersion {
		return "", fmt.Errorf("%w: hello version %d", ErrMalformed, m.Version)
	}
	l.peerName = m.Node
	return m.Node, nil
}

// run starts the link's goroutines; when the connection ends they exit
// and the link is unregistered.
func (l *link) run() {
	l.wg.Add(4)
	go func() {
		defer l.wg.Done()
		l.datagramLoop()
	}()
	go func() {
		defer l.wg.Done()
		l.layerLoop()
	}()
	go func() {
		defer l.wg.Done()
		l.sendLoop()
	}()
	go func() {
		defer l.wg.Done()
		l.controlWriter()
	}()
	l.r.wg.Add(1)
	go func() {
		defer l.r.wg.Done()
		l.controlReader() // returns when the connection ends
		l.close(nil)
		l.wg.Wait()
		l.r.unregister(l)
	}()
}

// close ends the connection. err nil: the peer closed it or it broke.
func (l *link) close(err error) {
	code, msg := codeNormal, "bye"
	switch {
	case errors.Is(err, errDuplicate):
		code, msg = codeDuplicate, "duplicate"
	case errors.Is(err, errIdle):
		code, msg = codeIdle, "idle"
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge), errors.Is(err, ErrPeerName):
		code, msg = codeProtocol, "protocol error"
	}
	if err == nil {
		err = context.Canceled
	}
	l.cancel(err)
	l.conn.CloseWithError(code, msg)
	l.sq.close()
}

// wait waits for the goroutines of a link that was never registered.
func (l *link) wait() { l.wg.Wait() }

// err returns why the link ended.
func (l *link) err() error {
	if err := context.Cause(l.ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return context.Cause(l.conn.Context())
}

// datagramLoop receives datagrams and hands each to its imported track:
// one goroutine drains quic-go, another feeds the bridge (perf_recv.go).
func (l *link) datagramLoop() { l.receiveDatagrams() }

// sendRTP queues one RTP packet of track num for the send loop. It never
// blocks; a full queue drops the packet.
func (l *link) sendRTP(num uint32, layer int, pkt []byte) {
	ctr := &l.r.ctr
	if len(pkt) > MaxRTPSize || layer < 0 || layer > MaxLayer {
		ctr.drop(DropTooLarge)
		return
	}
	switch l.sq.push(FrameHeader{Track: num, Layer: uint8(layer)}, pkt) {
	case pushFull:
		ctr.drop(DropQueueFull)
		l.queueDrops.Add(1)
	case pushClosed:
		ctr.drop(DropNoLink)
	}
}

// sendLoop drains the send queue into QUIC datagrams. SendDatagram blocks
// while quic-go holds 32 unsent datagrams; only this goroutine waits.
func (l *link) sendLoop() {
	ctr := &l.r.ctr
	for {
		b, ok := l.sq.next(l.ctx)
		if !ok {
			return
		}
		err := l.conn.SendDatagram(b)
		l.sq.pop()
		if err != nil {
			var tl *quic.DatagramTooLargeError
			if errors.As(err, &tl) {
				ctr.drop(DropTooLarge)
				continue
			}
			ctr.drop(DropNoLink)
			return
		}
		ctr.datagramsOut.Add(1)
		ctr.bytesOut.Add(uint64(len(b)))
		l.bytesOut.Add(uint64(len(b)))
		l.datagrams.Add(1)
	}
}

// lossy reports whether a control message may be dropped when the queue
// is full.
func lossy(t MsgType) bool {
	return t == MsgNACK || t == MsgKeyframeRequest || t == MsgLinkStats
}

// send queues a control message. It never blocks: a state message that
// does not fit closes the link, which then resynchronises on reconnect.
func (l *link) send(m *Message) {
	b, err := m.Append(nil)
	if err != nil {
		l.r.log.Warn("relay control message not sent", "type", m.Type, "err", err)
		return
	}
	select {
	case l.ctrlQ <- b:
	default:
		l.r.ctr.drop(DropControl)
		if !lossy(m.Type) {
			l.close(errors.New("control queue overflow"))
		}
	}
}

func (l *link) controlWriter() {
	for {
		select {
		case <-l.ctx.Done():
			return
		case b := <-l.ctrlQ:
			l.out.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
			if _, err := l.out.Write(b); err != nil {
				l.close(fmt.Errorf("write control: %w", err))
				return
			}
			l.r.ctr.controlOut.Add(1)
		}
	}
}

// controlReader reads the peer's control messages until the link ends or
// one is malformed.
func (l *link) controlReader() {
	var m Message
	for {
		err := l.inReader.Read(&m)
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
				l.r.ctr.drop(DropBadControl)
				l.r.log.Warn("relay control message malformed: closing link", "peer", l.peerName, "err", err)
				l.close(err)
			}
			return
		}
		l.r.ctr.controlIn.Add(1)
		if err := l.r.handleControl(l, &m); err != nil {
			l.r.ctr.drop(DropBadControl)
			l.r.log.Warn("relay control message refused: closing link", "peer", l.peerName, "type", m.Type, "err", err)
			l.close(err)
			return
		}
	}
}

// linkState is what stats returns of a link.
type linkState struct {
	LinkStats
	exports, subscribed int
}

func (l *link) stats() linkState {
	l.statsMu.Lock()
	s := l.cur
	l.statsMu.Unlock()
	s.Peer = l.peerName
	s.Dialled = l.dialled
	s.LayerCap = int(l.layerCap.Load())
	s.Datagrams = l.datagrams.Load()
	l.mu.Lock()
	exps := make([]*exportTrack, 0, len(l.exports))
	for _, e := range l.exports {
		exps = append(exps, e)
	}
	s.Rooms = len(l.remoteRooms)
	l.mu.Unlock()
	st := linkState{LinkStats: s, exports: len(exps)}
	for _, e := range exps {
		if e.sending() != 0 {
			st.subscribed++
		}
	}
	return st
}

// tick measures the link, reports it to the peer and adapts the layer cap
// to the link's bandwidth. Called from the peer's manage goroutine.
func (l *link) tick(now time.Time) {
	qs := l.conn.ConnectionStats()
	out, in := l.bytesOut.Load(), l.bytesIn.Load()
	l.statsMu.Lock()
	dt := now.Sub(l.lastAt).Seconds()
	first := l.lastAt.IsZero()
	if !first && dt >= l.r.cfg.StatsInterval.Seconds()/2 {
		l.cur.RTT = qs.SmoothedRTT
		if sent := qs.PacketsSent - l.last.PacketsSent; sent > 0 && qs.PacketsLost >= l.last.PacketsLost {
			l.cur.Loss = float64(qs.PacketsLost-l.last.PacketsLost) / float64(sent)
		}
		l.cur.SendBPS = uint64(float64(out-l.lastOut) * 8 / dt)
		l.cur.RecvBPS = uint64(float64(in-l.lastIn) * 8 / dt)
	} else if !first {
		l.statsMu.Unlock()
		return
	}
	l.last, l.lastAt, l.lastOut, l.lastIn = qs, now, out, in
	cur := l.cur
	l.statsMu.Unlock()
	if first {
		return
	}
	l.send(&Message{Type: MsgLinkStats, RTT: cur.RTT, LossPermille: uint32(min(1000, cur.Loss*1000)), Bitrate: cur.SendBPS})

	// Bandwidth: QUIC's congestion window per RTT is what the path
	// carries now. Sending near it, or dropping at the send queue, lowers
	// the simulcast layer on this link; three calm intervals raise it.
	var capacity float64
	if qs.SmoothedRTT > 0 {
		capacity = float64(qs.CongestionWindow) * 8 / qs.SmoothedRTT.Seconds()
	}
	drops := l.queueDrops.Load()
	pressure := drops != l.dropsSeen || (capacity > 0 && float64(cur.SendBPS) > 0.85*capacity)
	l.dropsSeen = drops
	c := l.layerCap.Load()
	switch {
	case pressure && c > 0:
		l.calm = 0
		l.layerCap.Store(c - 1)
		l.r.applyLayerCap(l)
	case !pressure && c < MaxLayer:
		l.calm++
		if l.calm >= 3 {
			l.calm = 0
			l.layerCap.Store(c + 1)
			l.r.applyLayerCap(l)
		}
	}
}

// peerStats records the peer's view of the link.
func (l *link) peerStats(m *Message) {
	l.statsMu.Lock()
	l.cur.PeerRTT = m.RTT
	l.cur.PeerLoss = float64(m.LossPermille) / 1000
	l.statsMu.Unlock()
}

// sharesRoom reports whether the peer attached a room that is attached
// here. Caller holds Relay.mu.
func (l *link) sharesRoom() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for conf := range l.remoteRooms {
		if l.r.rooms[conf] != nil {
			return true
		}
	}
	return false
}
