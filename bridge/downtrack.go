package bridge

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	// queueLen bounds a subscriber's queue: ~100 ms of a 2.5 Mb/s layer.
	// A writer further behind than that is not catching up.
	queueLen = 128
	// batchLen is how many entries the writer takes per lock.
	batchLen = 16
	// baseWindow is how far behind the newest forwarded packet the switch
	// point is kept: a packet older than that is not forwarded anyway.
	baseWindow = 4096
)

// rtpWriter is where a DownTrack writes: the negotiated RTP sender's
// webrtc.TrackLocalWriter (SRTP, then the ICE mux).
type rtpWriter interface {
	WriteRTP(header *rtp.Header, payload []byte) (int, error)
}

// binding is a DownTrack's negotiated sender, set by Bind.
type binding struct {
	w       rtpWriter
	ssrc    uint32
	pt      uint8
	levelID uint8 // the subscriber's RFC 6464 extension ID, or 0
}

// qEntry is one queued packet: which layer's cache and which sequence
// number (the packet itself stays in the cache), or a NACKed output
// sequence number.
type qEntry struct {
	seq   uint16
	layer uint8
	flags uint8
}

// DownTrack forwards one UpTrack to one subscriber: a participant's pion
// track (SFU→subscriber), or a TrackSink added with Room.Subscribe. For a
// participant it is a webrtc.TrackLocal on the subscriber's PeerConnection
// with stream ID = publisher participant ID and track ID = TrackInfo.ID.
//
// Readers enqueue (never blocking); one writer goroutine picks the layer
// (switching at a keyframe of the target) and writes: to pion after
// rewriting SSRC, sequence number and timestamp so that the subscriber sees
// one continuous stream across layer switches, or to the sink unchanged.
type DownTrack struct {
	up        *UpTrack        // static
	sub       *Participant    // static; nil for a sink
	sink      TrackSink       // static; nil for a participant
	subn      *Subscription   // static; the sink's handle, nil for a participant
	ready     *atomic.Bool    // static; the subscriber's connection is up
	wg        *sync.WaitGroup // static; counts the writer (the owner's)
	stats     *counters       // static
	now       *clock          // static
	video     bool            // static
	clockRate uint32          // static

	sender *webrtc.RTPSender // set once by Participant.addDownTrack under its mu

	bound atomic.Pointer[binding]
	// target is the layer the selector wants (-1: paused); cur is the layer
	// being forwarded (-1: none yet), written only by the writer.
	target    atomic.Int32
	cur       atomic.Int32
	maxHeight atomic.Int32 // from SetMaxHeight; -1: no limit, 0: paused
	pinned    atomic.Bool  // Participant.Pin: forwarded whatever last-N says
	lastNOff  atomic.Bool  // outside the room's last-N (set by the room loop)

	wake chan struct{} // capacity 1; the own writer's (sinks, tests)
	done chan struct{} // closed by stop
	once sync.Once

	// A participant's DownTrack is written by a writer group
	// (batch_writers.go): grp is set from startWriter until it leaves
	// the group after stop; sched is set while it is in the group's ready
	// list (or about to be); wmu is held by the group's writer while it
	// writes, and gone, under wmu, tells the writer that the DownTrack
	// stopped.
	grp   atomic.Pointer[wgroup]
	sched atomic.Bool
	wmu   sync.Mutex
	gone  bool

	// qmu guards the queue.
	qmu    sync.Mutex
	q      [queueLen]qEntry
	qHead  int
	qLen   int
	waitKF bool // after an overflow: drop video until a keyframe

	// Owned by the writer. buf is the writer's packet buffer: its
	// group's (one per writer, not one per subscription: 1.5 KB less per
	// subscribed track), or a sink writer's own.
	buf       *[slotSize]byte
	hdr       rtp.Header
	batch     [batchLen]qEntry
	started   bool
	m         mapping // current source→output mapping
	prev      mapping // the one before the last rebase, for NACKs
	prevOK    bool
	lastSeq   uint16
	lastTS    uint32
	lastWrite int64

	// sr is what the subscriber's next sender report says (senderreport.go).
	sr srState
}

// mapping turns one layer's sequence numbers and timestamps into the
// subscriber's: out = src + offset. It holds from source sequence number
// srcStart on (kept within baseWindow of the newest packet).
type mapping struct {
	layer    int32
	seqOff   uint16
	tsOff    uint32
	srcStart uint16
}

// outStart is the first output sequence number of the mapping.
func (m *mapping) outStart() uint16 { return m.srcStart + m.seqOff }

// alwaysReady is the ready flag of sinks: no connection to wait for.
var alwaysReady = func() *atomic.Bool {
	var b atomic.Bool
	b.Store(true)
	return &b
}()

// newDownTrack subscribes participant sub to up.
func newDownTrack(up *UpTrack, sub *Participant) *DownTrack {
	dt := newSubscriber(up)
	dt.sub = sub
	dt.ready = &sub.subReady
	dt.wg = &sub.wg
	return dt
}

// newSinkTrack subscribes sink to up; its writer is counted by wg.
func newSinkTrack(up *UpTrack, sink TrackSink, wg *sync.WaitGroup) *DownTrack {
	dt := newSubscriber(up)
	dt.sink = sink
	dt.ready = alwaysReady
	dt.wg = wg
	return dt
}

func newSubscriber(up *UpTrack) *DownTrack {
	dt := &DownTrack{
		up:        up,
		stats:     up.stats,
		now:       up.now,
		video:     up.info.Kind == webrtc.RTPCodecTypeVideo,
		clockRate: up.codec.ClockRate,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if dt.clockRate == 0 {
		dt.clockRate = 90000
	}
	dt.cur.Store(-1)
	dt.maxHeight.Store(-1)
	dt.target.Store(int32(len(up.layers) - 1))
	return dt
}

// Bind implements webrtc.TrackLocal: the subscriber accepted the track.
func (dt *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := matchCodec(dt.up.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	bd := &binding{w: ctx.WriteStream(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType)}
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == audioLevelURI && e.ID > 0 && e.ID < 15 {
			bd.levelID = uint8(e.ID)
		}
	}
	dt.bound.Store(bd)
	if dt.up.addSub(dt) {
		dt.startVideo()
	}
	return c, nil
}

// Unbind implements webrtc.TrackLocal.
func (dt *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	dt.bound.Store(nil)
	return nil
}

// ID implements webrtc.TrackLocal: the published track's ID.
func (dt *DownTrack) ID() string { return dt.up.info.ID }

// RID implements webrtc.TrackLocal.
func (dt *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal: the publisher's participant ID.
func (dt *DownTrack) StreamID() string { return dt.up.info.Participant }

// Kind implements webrtc.TrackLocal.
func (dt *DownTrack) Kind() webrtc.RTPCodecType { return dt.up.info.Kind }

// matchCodec finds want among the negotiated codecs: same MIME type and,
// for H.264, the same packetization mode and profile.
func matchCodec(want webrtc.RTPCodecParameters, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var fallback *webrtc.RTPCodecParameters
	for i, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if c.SDPFmtpLine == want.SDPFmtpLine || !strings.EqualFold(want.MimeType, webrtc.MimeTypeH264) {
			return c, true
		}
		if fallback == nil {
			fallback = &have[i]
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return webrtc.RTPCodecParameters{}, false
}

const (
	// maxReplay bounds how many cached packets a keyframe replay queues: a
	// keyframe further back than that is too old to show (and would fill
	// the queue); a PLI is sent instead.
	maxReplay = queueLen / 2
	// replayLive: a layer is replayed only if its newest packet arrived
	// within this. A layer not flowing (paused upstream, an imported
	// track nobody here wanted, a simulcast layer the browser switched
	// off) holds only packets from before it stopped: replaying them
	// shows an old picture, and no live packet follows it soon.
	replayLive = 500 * time.Millisecond
	// replayMaxAge: a keyframe that arrived longer ago than this is not
	// replayed. The replay sends every frame from the keyframe to now in
	// one burst, so the subscriber's first second of video would lag by
	// the keyframe's age; a PLI costs one round trip to the publisher
	// (plus the keyframe's transmission), well under a second on a
	// working path. Up to 1 s the replay still saves that round trip
	// (e.g. after another subscriber's PLI); beyond it asking is better.
	// With maxReplay it matters for slow layers: 64 packets of a
	// 150 kb/s layer span several seconds.
	replayMaxAge = time.Second
)

// startVideo gets a keyframe to a subscriber that has none yet: the last
// one from the cache when it is recent and its layer is live (galene's
// keyframe replay: no round trip to the publisher), otherwise by asking the
// track's source. Called
// when the track is bound, when the subscriber's connection comes up, and
// when a sink subscribes.
func (dt *DownTrack) startVideo() {
	if !dt.video || dt.cur.Load() >= 0 || (dt.sink == nil && dt.bound.Load() == nil) {
		return // Bind calls again
	}
	tgt := dt.target.Load()
	if tgt < 0 {
		return
	}
	if !dt.ready.Load() || !dt.replayKeyframe(int(tgt)) {
		dt.up.requestKeyframe(int(tgt))
	}
}

// replayKeyframe queues layer li's packets from its last keyframe to its
// newest one; the writer reads them from the layer's packet cache, as it
// reads live packets. It refuses (false: the caller asks for a keyframe) a
// layer whose newest packet is older than replayLive or whose keyframe is
// older than replayMaxAge. The queue lock is held while reading the newest
// sequence number, so that the reader's next packets queue after the replay
// (at worst one is queued twice, and the writer sends it twice).
func (dt *DownTrack) replayKeyframe(li int) bool {
	l := dt.up.layers[li]
	dt.qmu.Lock()
	defer dt.qmu.Unlock()
	now := dt.now.Load()
	kfAt := l.lastKFAt.Load() // before lastKF: see lastKFAt
	kf, newest := l.lastKF.Load(), l.newest.Load()
	if kf == 0 || newest == 0 {
		return false
	}
	if now-l.lastPacket.Load() > int64(replayLive) || now-kfAt > int64(replayMaxAge) {
		return false
	}
	first, last := uint16(kf), uint16(newest)
	n := int(last-first) + 1
	if int16(last-first) < 0 || n > maxReplay || n > queueLen-dt.qLen || dt.waitKF {
		return false
	}
	for i := 0; i < n; i++ {
		var flags uint8
		if i == 0 {
			flags = flagKeyframe
		}
		dt.q[(dt.qHead+dt.qLen)%queueLen] = qEntry{seq: first + uint16(i), layer: uint8(li), flags: flags}
		dt.qLen++
	}
	dt.signal()
	return true
}

// stop ends the writer. Idempotent; it never waits for the writer.
func (dt *DownTrack) stop() {
	dt.once.Do(func() {
		close(dt.done)
		if dt.sink == nil {
			go dt.leaveGroup()
		}
	})
}

// detach unsubscribes dt from its track: the participant renegotiates, a
// sink's subscription ends. Idempotent.
func (dt *DownTrack) detach() {
	if dt.sub != nil {
		dt.sub.removeDownTrack(dt)
		return
	}
	dt.up.removeSub(dt)
	dt.stop()
	dt.up.room.forgetSubscription(dt.subn)
}

// enqueue offers packet seq of layer li. Called by the layer's reader; it
// never blocks and allocates nothing. Video drops to the next keyframe on
// overflow; audio drops the oldest packet.
func (dt *DownTrack) enqueue(li uint8, seq uint16, flags uint8) {
	if dt.video {
		if l := int32(li); l != dt.cur.Load() && l != dt.target.Load() {
			return // a layer this subscriber does not get
		}
	} else if dt.lastNOff.Load() && !dt.pinned.Load() {
		return // audio outside the room's loudest few (last-N)
	}
	dt.qmu.Lock()
	if dt.waitKF {
		if flags&flagKeyframe == 0 || int32(li) != dt.target.Load() {
			dt.qmu.Unlock()
			dt.stats.dropWaitKeyframe.Add(1)
			return
		}
		dt.waitKF = false
		flags |= flagResync
	}
	if dt.qLen == queueLen {
		if dt.video {
			dt.stats.dropQueueFull.Add(uint64(dt.qLen))
			dt.qLen = 0
			if flags&flagKeyframe == 0 {
				dt.waitKF = true
				dt.qmu.Unlock()
				dt.stats.dropQueueFull.Add(1)
				dt.up.requestKeyframe(int(dt.target.Load()))
				return
			}
			flags |= flagResync
		} else {
			dt.qHead = (dt.qHead + 1) % queueLen
			dt.qLen--
			dt.stats.dropQueueFull.Add(1)
		}
	}
	dt.q[(dt.qHead+dt.qLen)%queueLen] = qEntry{seq: seq, layer: li, flags: flags}
	dt.qLen++
	dt.qmu.Unlock()
	dt.signal()
}

// enqueueNACK queues a retransmission of output sequence number seq (a
// participant's NACK).
func (dt *DownTrack) enqueueNACK(seq uint16) { dt.enqueueRetransmit(0, seq) }

// enqueueRetransmit queues a retransmission: of output sequence number seq
// for a participant, of sequence number seq of layer li for a sink. A full
// queue drops it (counted).
func (dt *DownTrack) enqueueRetransmit(li uint8, seq uint16) {
	dt.qmu.Lock()
	if dt.qLen == queueLen {
		dt.qmu.Unlock()
		dt.stats.dropNACKQueueFull.Add(1)
		return
	}
	dt.q[(dt.qHead+dt.qLen)%queueLen] = qEntry{seq: seq, layer: li, flags: flagNACK}
	dt.qLen++
	dt.qmu.Unlock()
	dt.signal()
}

// dequeue moves up to len(dst) entries into dst.
func (dt *DownTrack) dequeue(dst []qEntry) int {
	dt.qmu.Lock()
	n := 0
	for n < len(dst) && dt.qLen > 0 {
		dst[n] = dt.q[dt.qHead]
		dt.qHead = (dt.qHead + 1) % queueLen
		dt.qLen--
		n++
	}
	dt.qmu.Unlock()
	return n
}

// signal tells the writer that entries are queued: the group's writer
// (scheduling dt once until it is served), or the own one. Never blocks;
// allocates nothing (but when a group's ready list grows past its largest
// size so far).
func (dt *DownTrack) signal() {
	if g := dt.grp.Load(); g != nil {
		if !dt.sched.Swap(true) {
			g.schedule(dt)
		}
		return
	}
	select {
	case dt.wake <- struct{}{}:
	default:
	}
}

// serve is dt's turn in its group's writer, which lends its packet
// buffer: at most groupDrainMax entries, the rest at its next turn.
func (dt *DownTrack) serve(buf *[slotSize]byte) {
	dt.sched.Store(false) // an entry queued from now on schedules dt again
	dt.wmu.Lock()
	defer dt.wmu.Unlock()
	if dt.gone {
		return
	}
	dt.buf = buf
	for done := 0; done < groupDrainMax; {
		n := dt.dequeue(dt.batch[:])
		if n == 0 {
			return
		}
		for i := 0; i < n; i++ {
			dt.writeEntry(dt.batch[i])
		}
		done += n
	}
	dt.signal() // more queued than one turn takes
}

// startWriter starts writing what is queued; the caller has counted the
// writer in dt.wg, and dt.wg is done once the writer no longer touches dt
// after stop. A participant's DownTrack joins a writer group: no goroutine
// of its own waits while the subscription lasts (stop leaves the group). A
// sink's DownTrack gets its own writer goroutine (writeLoop).
func (dt *DownTrack) startWriter() {
	if dt.sink != nil {
		go dt.writeLoop()
		return
	}
	dt.wmu.Lock()
	if dt.gone { // stopped already
		dt.wmu.Unlock()
		dt.wg.Done()
		return
	}
	g := pickGroup()
	g.attach()
	dt.grp.Store(g)
	dt.wmu.Unlock()
	dt.signal() // what was queued before
}

// leaveGroup ends a participant DownTrack's writing after stop: once it
// returns, the group's writer no longer touches dt. It waits for a turn
// being served, so stop runs it in a goroutine of its own.
func (dt *DownTrack) leaveGroup() {
	dt.wmu.Lock()
	dt.gone = true
	g := dt.grp.Swap(nil)
	dt.wmu.Unlock()
	if g != nil {
		g.detach()
		dt.wg.Done()
	}
}

// writeLoop is a sink's writer: it runs while the subscription lasts,
// woken per packet. Run by the owner's wait group.
func (dt *DownTrack) writeLoop() {
	defer dt.wg.Done()
	dt.buf = new([slotSize]byte)
	for {
		select {
		case <-dt.done:
			return
		case <-dt.wake:
		}
		out.begin()
		dt.drain()
		out.end()
	}
}

// drain writes every queued entry (a sink's writer; tests).
func (dt *DownTrack) drain() {
	if dt.buf == nil {
		dt.buf = new([slotSize]byte)
	}
	for {
		n := dt.dequeue(dt.batch[:])
		if n == 0 {
			return
		}
		for i := 0; i < n; i++ {
			dt.writeEntry(dt.batch[i])
		}
	}
}

// writeEntry forwards one queued packet: layer choice, rewrite, write.
// Owned by the writer; allocates nothing.
func (dt *DownTrack) writeEntry(e qEntry) {
	if dt.sink != nil {
		dt.writeSink(e)
		return
	}
	b := dt.bound.Load()
	if b == nil || !dt.ready.Load() {
		dt.stats.dropUnbound.Add(1)
		return
	}
	if e.flags&flagNACK != 0 {
		dt.retransmit(b, e.seq)
		return
	}
	li := int32(e.layer)
	n, cflags := dt.up.layers[li].cache.get(e.seq, dt.buf[:])
	if n == 0 {
		dt.stats.dropEvicted.Add(1)
		return
	}
	hl, err := dt.hdr.Unmarshal(dt.buf[:n])
	if err != nil {
		dt.stats.dropMalformed.Add(1)
		return
	}
	kf := cflags&flagKeyframe != 0
	if dt.video {
		cur, tgt := dt.cur.Load(), dt.target.Load()
		switch {
		case tgt < 0:
			dt.setCur(-1) // paused: resume on a keyframe
			return
		case li == tgt && li != cur:
			if !kf {
				return
			}
			dt.rebase(li)
			dt.setCur(li)
		case li == cur:
			if e.flags&flagResync != 0 {
				dt.rebase(li)
			}
		default:
			return
		}
		if d := int16(dt.hdr.SequenceNumber - dt.m.srcStart); d < 0 {
			return // older than the switch point
		} else if d > baseWindow {
			// Keep the switch point within int16 reach of new packets.
			dt.m.srcStart = dt.hdr.SequenceNumber - baseWindow
		}
	} else if !dt.started {
		dt.rebase(0)
		dt.cur.Store(0)
	}
	dt.write(b, hl, n, false, &dt.m)
}

// writeSink forwards one queued packet to a sink as the publisher sent it:
// layer choice (switch at a keyframe of the target), no rewrite. Owned by
// the writer; allocates nothing.
func (dt *DownTrack) writeSink(e qEntry) {
	if int(e.layer) >= len(dt.up.layers) {
		return
	}
	n, cflags := dt.up.layers[e.layer].cache.get(e.seq, dt.buf[:])
	if e.flags&flagNACK != 0 {
		if n == 0 {
			dt.stats.dropNACKMiss.Add(1)
			return
		}
		dt.stats.retransmits.Add(1)
	} else {
		if n == 0 {
			dt.stats.dropEvicted.Add(1)
			return
		}
		li := int32(e.layer)
		if dt.video {
			cur, tgt := dt.cur.Load(), dt.target.Load()
			switch {
			case tgt < 0:
				dt.setCur(-1) // paused: resume on a keyframe
				return
			case li == tgt && li != cur:
				if cflags&flagKeyframe == 0 {
					return
				}
				dt.setCur(li)
			case li != cur:
				return
			}
		} else if dt.cur.Load() < 0 {
			dt.setCur(li)
		}
	}
	dt.sink.WriteRTP(int(e.layer), dt.buf[:n])
	dt.stats.fwdPackets.Add(1)
	dt.stats.fwdBytes.Add(uint64(n))
}

// setCur records the layer being forwarded; a change may change the
// track's demand.
func (dt *DownTrack) setCur(li int32) {
	if dt.cur.Swap(li) != li {
		dt.up.demandChanged()
	}
}

// rebase maps the packet in dt.hdr to the output sequence number after the
// last one written, and its timestamp to the last one plus the time elapsed,
// so that a layer switch or a resume looks like a continuous stream.
func (dt *DownTrack) rebase(li int32) {
	now := dt.now.Load()
	seq, ts := dt.hdr.SequenceNumber, dt.hdr.Timestamp
	m := mapping{layer: li, srcStart: seq}
	if dt.started {
		dt.prev, dt.prevOK = dt.m, true
		m.seqOff = dt.lastSeq + 1 - seq
		ticks := uint32(uint64(max(now-dt.lastWrite, 0)) * uint64(dt.clockRate) / 1e9)
		if ticks == 0 {
			ticks = 1
		}
		m.tsOff = dt.lastTS + ticks - ts
	}
	dt.m = m
	dt.started = true
}

// write rewrites dt.hdr for the subscriber and writes header and payload
// (dt.buf[hl:n]). Header extensions carry the publisher's IDs: all are
// dropped but the audio level, which is renumbered for the subscriber.
func (dt *DownTrack) write(b *binding, hl, n int, rtx bool, m *mapping) {
	h := &dt.hdr
	var level []byte
	if b.levelID != 0 && dt.up.levelExtID != 0 && h.Extension {
		level = h.GetExtension(dt.up.levelExtID)
	}
	h.SequenceNumber += m.seqOff
	h.Timestamp += m.tsOff
	h.SSRC = b.ssrc
	h.PayloadType = b.pt
	h.Extension = false
	h.ExtensionProfile = 0
	h.Extensions = h.Extensions[:0]
	if len(level) == 1 {
		_ = h.SetExtension(b.levelID, level) // reuses Extensions' capacity
	}
	newest := false
	if !rtx {
		if int16(h.SequenceNumber-dt.lastSeq) > 0 || dt.lastWrite == 0 {
			dt.lastSeq = h.SequenceNumber
			dt.lastTS = h.Timestamp
			newest = true
		}
		dt.lastWrite = dt.now.Load()
		if dt.lastWrite == 0 {
			dt.lastWrite = 1
		}
	}
	if taken, sent := dt.writeThin(hl, n); taken {
		if !sent {
			return
		}
	} else if written, err := b.w.WriteRTP(h, dt.buf[hl:n]); err != nil {
		dt.stats.dropWriteError.Add(1)
		return
	} else if written == 0 && n > hl {
		// pion's SRTP writer drops packets, returning 0 and no error,
		// until its session starts, which is a moment after the
		// connection state turns "connected" (and subReady with it). A
		// keyframe lost that way would leave the subscriber decoding
		// nothing until the next one: wait for a keyframe again, and ask.
		dt.stats.dropUnbound.Add(1)
		if dt.video && !rtx {
			dt.setCur(-1)
			dt.up.requestKeyframe(int(dt.target.Load()))
		}
		return
	}
	dt.sr.note(h.Timestamp, n-hl, newest)
	dt.stats.fwdPackets.Add(1)
	dt.stats.fwdBytes.Add(uint64(n))
	if rtx {
		dt.stats.retransmits.Add(1)
	}
}

// retransmit resends output sequence number seq from the cache, through
// the mapping that produced it: the current one, or the one before the last
// layer switch. Older packets are counted as misses; the subscriber then
// asks for a keyframe.
func (dt *DownTrack) retransmit(b *binding, seq uint16) {
	if !dt.started {
		dt.stats.dropNACKMiss.Add(1)
		return
	}
	m := &dt.m
	if int16(seq-m.outStart()) < 0 {
		m = &dt.prev
		if !dt.prevOK || int16(seq-m.outStart()) < 0 || int16(seq-dt.m.outStart()) < -baseWindow {
			dt.stats.dropNACKMiss.Add(1)
			return
		}
	}
	src := seq - m.seqOff
	n, _ := dt.up.layers[m.layer].cache.get(src, dt.buf[:])
	if n == 0 {
		dt.stats.dropNACKMiss.Add(1)
		return
	}
	hl, err := dt.hdr.Unmarshal(dt.buf[:n])
	if err != nil || dt.hdr.SequenceNumber != src {
		dt.stats.dropNACKMiss.Add(1)
		return
	}
	dt.write(b, hl, n, true, m)
}

// needsKeyframe reports whether the subscriber waits for a keyframe: a
// layer switch pending or video dropped after an overflow.
func (dt *DownTrack) needsKeyframe() bool {
	if !dt.video || (dt.sink == nil && dt.bound.Load() == nil) {
		return false
	}
	tgt := dt.target.Load()
	if tgt >= 0 && dt.cur.Load() != tgt {
		return true
	}
	dt.qmu.Lock()
	defer dt.qmu.Unlock()
	return dt.waitKF
}

// selectLayer picks the target layer from the subscriber's max height and
// its bandwidth share (bits/s; 0: unknown, no limit), and asks the
// publisher for a keyframe when the target changes. Called by the room loop
// and by SetMaxHeight.
func (dt *DownTrack) selectLayer(budget int64) {
	if !dt.video {
		return
	}
	up := dt.up
	mh := dt.maxHeight.Load()
	if dt.lastNOff.Load() && !dt.pinned.Load() {
		mh = 0 // outside last-N and not pinned: paused
	}
	tgt := int32(-1)
	if mh != 0 {
		lowestActive := int32(-1)
		for i := len(up.layers) - 1; i >= 0; i-- {
			if len(up.layers) > 1 && !up.layerActive(i) {
				continue
			}
			lowestActive = int32(i)
			if mh > 0 && up.layerHeight(i) > int(mh) {
				continue
			}
			if rate := up.layerBitrate(i); budget > 0 && rate > budget {
				continue
			} else if budget > 0 && i > int(dt.target.Load()) && rate+rate/4 > budget {
				continue // going up needs 25 % headroom, against flapping
			}
			tgt = int32(i)
			break
		}
		if tgt < 0 {
			tgt = lowestActive
		}
		if tgt < 0 {
			tgt = dt.target.Load() // nothing active yet: keep
			if tgt < 0 {
				tgt = int32(len(up.layers) - 1)
			}
		}
	}
	dt.setTarget(tgt)
}

// setTarget changes the layer the subscriber should get; when it changes,
// the track's demand may too, and a keyframe of the new layer is needed
// (from the cache when resuming, else from the source).
func (dt *DownTrack) setTarget(tgt int32) {
	old := dt.target.Swap(tgt)
	if old == tgt {
		return
	}
	dt.up.demandChanged()
	if tgt < 0 {
		return
	}
	if dt.cur.Load() < 0 {
		dt.startVideo() // resuming: a cached keyframe will do
	} else {
		dt.up.requestKeyframe(int(tgt))
	}
}
