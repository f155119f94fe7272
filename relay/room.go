package relay

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// importKey names a track of a room across links and reconnects.
type importKey struct{ conference, trackID string }

// room is a local bridge room attached to the relay.
type room struct {
	conf string       // static
	br   *bridge.Room // static

	// Guarded by Relay.mu.
	peers   map[string]*peer      // peers the caller listed
	local   map[string]bool       // IDs of the room's own (not remote) tracks
	imports map[*importTrack]bool // remote tracks published in br
}

// AttachRoom exchanges room's media with the given peers (the other nodes
// that hold the meeting, from the directory) under the opaque conference
// ID, never the room's name. Calling it again for the same conference
// updates the peer set. The room's own tracks present now are exported;
// later ones must be reported with TrackPublished and TrackUnpublished.
func (r *Relay) AttachRoom(conferenceID string, br *bridge.Room, peers []Peer) error {
	if conferenceID == "" || len(conferenceID) > MaxConferenceID || br == nil {
		return fmt.Errorf("relay: attach: %w: conference ID or room", ErrMalformed)
	}
	for _, p := range peers {
		if p.Node == "" || len(p.Node) > MaxNodeName {
			return fmt.Errorf("relay: attach: %w: peer name", ErrMalformed)
		}
	}
	tracks := br.Tracks()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	rm := r.rooms[conferenceID]
	if rm == nil || rm.br != br {
		rm = &room{conf: conferenceID, br: br, peers: map[string]*peer{}, local: map[string]bool{}, imports: map[*importTrack]bool{}}
		r.rooms[conferenceID] = rm
	}
	for _, t := range tracks {
		if !t.Remote {
			rm.local[t.ID] = true
		}
	}
	want := map[string]bool{}
	var kick []*peer
	for _, pp := range peers {
		if pp.Node == r.cfg.NodeName {
			continue
		}
		want[pp.Node] = true
		p := r.peerLocked(pp.Node)
		if pp.Addr != "" {
			p.addr = pp.Addr
		}
		p.rooms[conferenceID] = rm
		rm.peers[pp.Node] = p
		kick = append(kick, p)
	}
	for name, p := range rm.peers {
		if !want[name] {
			delete(rm.peers, name)
			delete(p.rooms, conferenceID)
			kick = append(kick, p)
		}
	}
	links := r.linksLocked()
	r.mu.Unlock()
	for _, l := range links {
		l.announce(rm)
	}
	for _, p := range kick {
		p.kick()
	}
	return nil
}

// DetachRoom stops exchanging the room: its exports end, its imported
// tracks are unpublished and peers are told.
func (r *Relay) DetachRoom(conferenceID string) {
	r.mu.Lock()
	rm := r.rooms[conferenceID]
	if rm == nil {
		r.mu.Unlock()
		return
	}
	delete(r.rooms, conferenceID)
	var kick []*peer
	for _, p := range rm.peers {
		delete(p.rooms, conferenceID)
		kick = append(kick, p)
	}
	var imps []*importTrack
	for imp := range rm.imports {
		delete(imp.peer.imports, imp.key)
		imps = append(imps, imp)
	}
	links := r.linksLocked()
	r.mu.Unlock()
	for _, l := range links {
		l.detach(conferenceID, true)
	}
	for _, imp := range imps {
		imp.unbind()
		imp.closePublication()
	}
	for _, p := range kick {
		p.kick()
	}
}

// TrackPublished reports a track of an attached room (the room's
// RoomEvents.TrackPublished); tracks with Remote set are ignored, so a
// track never goes back where it came from. It does not block.
func (r *Relay) TrackPublished(conferenceID string, info bridge.TrackInfo) {
	if info.Remote {
		return
	}
	r.mu.Lock()
	rm := r.rooms[conferenceID]
	if rm == nil || rm.local[info.ID] {
		r.mu.Unlock()
		return
	}
	rm.local[info.ID] = true
	links := r.linksLocked()
	r.mu.Unlock()
	for _, l := range links {
		if l.attached(conferenceID) {
			l.export(rm, info.ID)
		}
	}
}

// TrackUnpublished reports that a track of an attached room is gone.
func (r *Relay) TrackUnpublished(conferenceID string, info bridge.TrackInfo) {
	if info.Remote {
		return
	}
	r.mu.Lock()
	rm := r.rooms[conferenceID]
	if rm == nil || !rm.local[info.ID] {
		r.mu.Unlock()
		return
	}
	delete(rm.local, info.ID)
	links := r.linksLocked()
	r.mu.Unlock()
	for _, l := range links {
		l.unexport(importKey{conferenceID, info.ID}, true)
	}
}

// SendRoomMessage sends data (at most MaxRoomMessage bytes, defined by the
// caller) to every peer of the room with a link up. It does not block;
// peers without a link miss it and are counted as no_link drops.
func (r *Relay) SendRoomMessage(conferenceID string, data []byte) error {
	if len(data) > MaxRoomMessage {
		return ErrTooLarge
	}
	r.mu.Lock()
	rm := r.rooms[conferenceID]
	if rm == nil {
		r.mu.Unlock()
		return ErrUnknownRoom
	}
	var links []*link
	missing := 0
	for _, p := range r.peers {
		listed := rm.peers[p.name] != nil
		switch {
		case p.link != nil && (listed || p.link.attached(conferenceID)):
			links = append(links, p.link)
		case listed:
			missing++
		}
	}
	r.mu.Unlock()
	for range missing {
		r.ctr.drop(DropNoLink)
	}
	m := &Message{Type: MsgRoomMessage, Conference: conferenceID, Data: data}
	for _, l := range links {
		l.send(m)
	}
	return nil
}

// linksLocked returns the links up now. Caller holds mu.
func (r *Relay) linksLocked() []*link {
	var ls []*link
	for _, p := range r.peers {
		if p.link != nil {
			ls = append(ls, p.link)
		}
	}
	return ls
}

// linkUp announces the rooms shared with the link's peer.
func (r *Relay) linkUp(l *link) {
	r.mu.Lock()
	var rooms []*room
	for _, rm := range l.peer.rooms {
		rooms = append(rooms, rm)
	}
	r.mu.Unlock()
	for _, rm := range rooms {
		l.announce(rm)
	}
}

// linkDown ends the link's exports and orphans its imports: they stay
// published for ImportGrace, waiting for the next link.
func (r *Relay) linkDown(l *link) {
	l.mu.Lock()
	l.down = true
	exps := l.exports
	imps := l.importsW
	l.exports, l.exportByKey, l.importsW = map[uint32]*exportTrack{}, map[importKey]*exportTrack{}, map[uint32]*importTrack{}
	l.imports.Store(&map[uint32]*importTrack{})
	l.mu.Unlock()
	for _, e := range exps {
		e.unsubscribe()
	}
	now := time.Now()
	r.mu.Lock()
	for _, imp := range imps {
		if imp.linkp.Load() == l {
			imp.linkp.Store(nil)
			imp.orphanedAt = now
		}
	}
	r.mu.Unlock()
}

// announce attaches rm on the link if its peer is listed for it or
// attached it, and exports its tracks if the peer attached it.
func (l *link) announce(rm *room) {
	r := l.r
	r.mu.Lock()
	listed := rm.peers[l.peerName] != nil && r.rooms[rm.conf] == rm
	var ids []string
	for id := range rm.local {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	l.mu.Lock()
	remote := l.remoteRooms[rm.conf]
	send := (listed || remote) && !l.sentAttach[rm.conf] && !l.down
	if send {
		l.sentAttach[rm.conf] = true
	}
	l.mu.Unlock()
	if send {
		l.send(&Message{Type: MsgRoomAttach, Conference: rm.conf})
	}
	if remote {
		for _, id := range ids {
			l.export(rm, id)
		}
	}
}

// attached reports whether the peer attached the conference on l.
func (l *link) attached(conf string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.remoteRooms[conf]
}

// detach ends the conference on l: exports end, and with tell the peer
// is sent RoomDetach.
func (l *link) detach(conf string, tell bool) {
	l.mu.Lock()
	sent := l.sentAttach[conf]
	delete(l.sentAttach, conf)
	var exps []*exportTrack
	for k, e := range l.exportByKey {
		if k.conference == conf {
			exps = append(exps, e)
			delete(l.exportByKey, k)
			delete(l.exports, e.num)
		}
	}
	l.mu.Unlock()
	if tell && sent {
		l.send(&Message{Type: MsgRoomDetach, Conference: conf})
	}
	for _, e := range exps {
		e.unsubscribe()
	}
}

// export publishes a local track on the link, once.
func (l *link) export(rm *room, trackID string) {
	params, err := rm.br.TrackParams(trackID)
	if err != nil {
		return // gone meanwhile
	}
	key := importKey{rm.conf, trackID}
	l.mu.Lock()
	if l.down || l.exportByKey[key] != nil || len(l.exports) >= maxTracksPerLink {
		l.mu.Unlock()
		return
	}
	num := l.nextNum
	l.nextNum++
	e := &exportTrack{l: l, num: num, key: key, br: rm.br, video: params.Kind == webrtc.RTPCodecTypeVideo, layers: max(1, len(params.Layers))}
	e.inactive.Store(inactiveMask(params.Layers))
	l.exports[num] = e
	l.exportByKey[key] = e
	l.mu.Unlock()
	m := &Message{
		Type: MsgTrackPublished, Conference: rm.conf, Track: num,
		TrackID: params.TrackID, Participant: params.Participant, Kind: KindAudio,
		Mime: params.Codec.MimeType, ClockRate: params.Codec.ClockRate, Channels: uint8(params.Codec.Channels),
		Fmtp: params.Codec.SDPFmtpLine, PayloadType: uint8(params.Codec.PayloadType), AudioLevel: params.AudioLevelID,
	}
	if e.video {
		m.Kind = KindVideo
	}
	for _, ly := range params.Layers {
		m.Layers = append(m.Layers, Layer{RID: ly.RID, Height: uint32(max(0, ly.Height)), Bitrate: uint64(max(0, ly.Bitrate)), Inactive: ly.Inactive})
	}
	if len(m.Layers) > 1 {
		m.Flags |= TrackSimulcast
	}
	if params.E2EE {
		m.Flags |= TrackE2EE
	}
	l.send(m)
}

// unexport ends the export of key on l.
func (l *link) unexport(key importKey, tell bool) {
	l.mu.Lock()
	e := l.exportByKey[key]
	if e != nil {
		delete(l.exportByKey, key)
		delete(l.exports, e.num)
	}
	l.mu.Unlock()
	if e == nil {
		return
	}
	if tell {
		l.send(&Message{Type: MsgTrackUnpublished, Track: e.num})
	}
	e.unsubscribe()
}

// exportTrack is a local track sent to one peer: one bridge subscription
// per layer the peer wants, whose sink is the link. It exists from
// TrackPublished on; the subscriptions only while the peer subscribes.
type exportTrack struct {
	l      *link        // static
	num    uint32       // static: this node's track number on l
	key    importKey    // static
	br     *bridge.Room // static
	video  bool         // static
	layers int          // static: simulcast layers of the track (1 without)

	// mu guards the following fields; bridge calls under it never call
	// back into the export.
	mu   sync.Mutex
	subs [MaxLayers]*bridge.Subscription // by layer sent
	want bridge.Demand                   // layers the peer asked for; 0 none

	// inactive are the layers last told inactive to the peer (bit i:
	// layer i), in TrackPublished or TrackLayers. Only the link's
	// layerLoop changes it after the export.
	inactive atomic.Uint32
}

// inactiveMask returns the inactive layers of ls as a bit set.
func inactiveMask(ls []bridge.LayerInfo) uint32 {
	var m uint32
	for i, l := range ls {
		if l.Inactive && i < MaxLayers {
			m |= 1 << i
		}
	}
	return m
}

// layerPollInterval is how often a link compares the activity of the
// simulcast layers it exports with what it told the peer (the bridge
// measures layers every 250 ms; a layer is idle after 1 s without packets).
const layerPollInterval = 250 * time.Millisecond

// layerLoop tells the peer when layers of an exported simulcast track
// start or stop flowing here (TrackLayers), so that its layer choice
// neither holds subscribers on a layer that does not come (a browser
// starts its upper layers seconds after the first) nor keeps them below
// one that does. Runs until the link ends.
func (l *link) layerLoop() {
	t := time.NewTicker(layerPollInterval)
	defer t.Stop()
	var exps []*exportTrack
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		exps = exps[:0]
		l.mu.Lock()
		for _, e := range l.exports {
			if e.video && e.layers > 1 {
				exps = append(exps, e)
			}
		}
		l.mu.Unlock()
		for _, e := range exps {
			params, err := e.br.TrackParams(e.key.trackID)
			if err != nil || len(params.Layers) != e.layers {
				continue // unpublished meanwhile
			}
			m := inactiveMask(params.Layers)
			if e.inactive.Swap(m) == m {
				continue
			}
			msg := &Message{Type: MsgTrackLayers, Track: e.num, Layers: make([]Layer, len(params.Layers))}
			for i, ly := range params.Layers {
				msg.Layers[i] = Layer{Height: uint32(min(max(0, ly.Height), 1<<16)), Bitrate: uint64(min(max(0, ly.Bitrate), 1<<40)), Inactive: ly.Inactive}
			}
			l.send(msg)
		}
	}
}

var _ bridge.TrackSink = (*exportTrack)(nil)

// WriteRTP queues the packet on the link; called by the subscriptions'
// writer goroutines, each with its own layer.
func (e *exportTrack) WriteRTP(layer int, pkt []byte) { e.l.sendRTP(e.num, layer, pkt) }

// setWant records the layers the peer wants (0: none) and applies them.
func (e *exportTrack) setWant(d bridge.Demand) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.want = d & (1<<MaxLayers - 1)
	e.applyLocked()
}

// sendSet returns the layers sent for want under the link's layer cap: a
// wanted layer above the cap (or above the track's layers) is replaced by
// the highest allowed one, so lower layers are chosen before any is
// dropped, and each layer is sent once however many wanted layers map to
// it. Audio and single-layer video send layer 0.
func sendSet(want bridge.Demand, layers int, video bool, layerCap int) bridge.Demand {
	if want == 0 {
		return 0
	}
	if !video || layers <= 1 {
		return 1
	}
	top := max(0, min(layerCap, layers-1))
	var d bridge.Demand
	for i := 0; i < MaxLayers; i++ {
		if want.Has(i) {
			d |= 1 << min(i, top)
		}
	}
	return d
}

// applyLocked opens a subscription for each layer to send and closes the
// others. Closing waits for the subscription's writer, which never takes
// e.mu. Caller holds e.mu.
func (e *exportTrack) applyLocked() {
	send := sendSet(e.want, e.layers, e.video, int(e.l.layerCap.Load()))
	for i := range e.subs {
		s := e.subs[i]
		if s != nil {
			select {
			case <-s.Done():
				s, e.subs[i] = nil, nil
			default:
			}
		}
		switch {
		case send.Has(i) && s == nil:
			sub, err := e.br.Subscribe(e.key.trackID, i, e)
			if err != nil {
				return // unpublished meanwhile
			}
			e.subs[i] = sub
		case !send.Has(i) && s != nil:
			e.subs[i] = nil
			s.Close()
		}
	}
}

// applyCap re-applies the link's layer cap to a video export.
func (e *exportTrack) applyCap() {
	if !e.video || e.layers <= 1 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.want != 0 {
		e.applyLocked()
	}
}

func (e *exportTrack) unsubscribe() {
	e.mu.Lock()
	subs := e.subs
	e.subs, e.want = [MaxLayers]*bridge.Subscription{}, 0
	e.mu.Unlock()
	for _, s := range subs {
		if s != nil {
			s.Close()
		}
	}
}

// subscription returns the subscription that sends layer, or nil.
func (e *exportTrack) subscription(layer int) *bridge.Subscription {
	if layer < 0 || layer >= MaxLayers {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.subs[layer]
}

// sending returns the layers sent on the link now.
func (e *exportTrack) sending() bridge.Demand {
	e.mu.Lock()
	defer e.mu.Unlock()
	var d bridge.Demand
	for i, s := range e.subs {
		if s != nil {
			d |= 1 << i
		}
	}
	return d
}

// applyLayerCap re-applies l's layer cap to its video exports.
func (r *Relay) applyLayerCap(l *link) {
	l.mu.Lock()
	exps := make([]*exportTrack, 0, len(l.exports))
	for _, e := range l.exports {
		exps = append(exps, e)
	}
	l.mu.Unlock()
	c := l.layerCap.Load()
	for _, e := range exps {
		e.applyCap()
	}
	// Tell the peer, so that its subscribers of layers above the cap
	// move down to one that crosses.
	l.send(&Message{Type: MsgLayerCap, Layer: uint8(max(0, min(c, MaxLayer)))})
	r.log.Debug("relay layer cap", "peer", l.peerName, "cap", c)
}

// keyframeInterval is the least time between two keyframe requests sent
// upstream for one layer of an imported track, however many subscribers
// ask (the bridge already merges its subscribers' requests).
const keyframeInterval = 200 * time.Millisecond

// importTrack is a remote track published in a local room. It is the
// bridge's TrackSource: demand, keyframe and retransmission requests go
// upstream on the link it is bound to.
type importTrack struct {
	r    *Relay    // static
	key  importKey // static
	peer *peer     // static
	rm   *room     // static

	pub     *bridge.Publication // set before binding, static afterwards
	closeMu sync.Once

	linkp  atomic.Pointer[link] // the link feeding it; nil while orphaned
	num    atomic.Uint32        // the peer's track number on linkp
	demand atomic.Uint32        // bridge.Demand

	// declared are the layers as the publisher's bridge described them
	// in TrackPublished; the link's layer cap marks those above it
	// inactive in pub. Guarded by capMu.
	capMu    sync.Mutex
	declared []bridge.LayerInfo
	capped   int // layer cap applied to pub; MaxLayer: none

	feedMu sync.Mutex // WriteRTP calls must not overlap across links

	orphanedAt time.Time // guarded by Relay.mu

	kfMu   sync.Mutex
	kfLast [MaxLayers]time.Time
	// kfPending are the layers whose keyframe was asked while no link
	// was bound (published but not bound yet, or orphaned): sent after
	// the demand on the next bind. Guarded by kfMu.
	kfPending uint8
}

var _ bridge.TrackSource = (*importTrack)(nil)

// write feeds one packet from link l. Called by l's datagram loop.
func (imp *importTrack) write(l *link, layer int, pkt []byte) {
	if layer >= 0 && layer < MaxLayers {
		l.layerIn[layer].Add(1)
	}
	if imp.linkp.Load() != l {
		imp.r.ctr.drop(DropUnknownTrack)
		return
	}
	// A layer below a wanted one may stand in for it (the link's layer
	// cap); a layer above every wanted one is not wanted any more.
	if imp.demand.Load()>>uint(layer) == 0 {
		imp.r.ctr.drop(DropNotWanted)
		return
	}
	imp.feedMu.Lock()
	imp.pub.WriteRTP(layer, pkt)
	imp.feedMu.Unlock()
}

// SetDemand subscribes upstream to every layer wanted here, or
// unsubscribes when nobody here wants the track.
func (imp *importTrack) SetDemand(d bridge.Demand) {
	imp.demand.Store(uint32(d))
	imp.sendDemand()
}

func (imp *importTrack) sendDemand() {
	l := imp.linkp.Load()
	if l == nil {
		return
	}
	d := bridge.Demand(imp.demand.Load()) & (1<<MaxLayers - 1)
	if h := d.Highest(); h >= 0 {
		// Subscribe with the highest layer for a peer that does not know
		// layer sets, then the set (see "Layer sets" in control.go).
		num := imp.num.Load()
		l.send(&Message{Type: MsgSubscribe, Track: num, Layer: uint8(h)})
		l.send(&Message{Type: MsgSubscribeLayers, Track: num, LayerSet: uint8(d)})
	} else {
		l.send(&Message{Type: MsgUnsubscribe, Track: imp.num.Load()})
	}
}

// RequestKeyframe asks upstream for a keyframe, at most once per
// keyframeInterval per layer. Asked while no link is bound, the request
// waits for the next bind (sendPendingKeyframes): the bridge asks once,
// and a request dropped here would leave its subscriber waiting.
func (imp *importTrack) RequestKeyframe(layer int) {
	if layer < 0 || layer > MaxLayer {
		return
	}
	now := time.Now()
	imp.kfMu.Lock()
	// linkp is read under kfMu: a bind stores linkp before it takes kfMu
	// in sendPendingKeyframes, so a request either sees the link or is
	// pending when the bind looks.
	l := imp.linkp.Load()
	if l == nil {
		imp.kfPending |= 1 << layer
		imp.kfMu.Unlock()
		return
	}
	if now.Sub(imp.kfLast[layer]) < keyframeInterval {
		imp.kfMu.Unlock()
		return
	}
	imp.kfLast[layer] = now
	imp.kfMu.Unlock()
	imp.r.ctr.keyframesOut.Add(1)
	l.send(&Message{Type: MsgKeyframeRequest, Track: imp.num.Load(), Layer: uint8(layer)})
}

// sendPendingKeyframes sends the keyframe requests asked while no link was
// bound. Called after a bind sent the demand: the peer ignores a request
// for a track it does not send. Without demand they are forgotten.
func (imp *importTrack) sendPendingKeyframes() {
	imp.kfMu.Lock()
	pending := imp.kfPending
	imp.kfPending = 0
	imp.kfMu.Unlock()
	if pending == 0 || imp.demand.Load() == 0 {
		return
	}
	for layer := range MaxLayers {
		if pending&(1<<layer) != 0 {
			imp.RequestKeyframe(layer)
		}
	}
}

// RequestRetransmit sends NACKs upstream, MaxNACKs sequence numbers per
// message.
func (imp *importTrack) RequestRetransmit(layer int, seqs []uint16) {
	l := imp.linkp.Load()
	if l == nil || layer < 0 || layer > MaxLayer {
		return
	}
	for len(seqs) > 0 {
		n := min(len(seqs), MaxNACKs)
		imp.r.ctr.nackedOut.Add(uint64(n))
		l.send(&Message{Type: MsgNACK, Track: imp.num.Load(), Layer: uint8(layer), Seqs: seqs[:n]})
		seqs = seqs[n:]
	}
}

// applyCap marks the layers above layerCap inactive in the publication
// (the peer does not send them on the link now), and restores what the
// publisher's bridge declared for the others, so that the bridge's layer
// choice moves subscribers to a layer that crosses.
func (imp *importTrack) applyCap(layerCap int) {
	imp.capMu.Lock()
	defer imp.capMu.Unlock()
	if imp.pub == nil || len(imp.declared) <= 1 || imp.capped == layerCap {
		return
	}
	imp.capped = layerCap
	for i, info := range imp.declared {
		if i > layerCap {
			info.Inactive = true
		}
		imp.pub.SetLayerInfo(i, info)
	}
}

// redeclare takes the layers' height, bitrate and activity from a
// TrackLayers message and applies them under the link's layer cap. A
// message whose layer count is not the track's is ignored.
func (imp *importTrack) redeclare(ls []Layer) {
	imp.capMu.Lock()
	defer imp.capMu.Unlock()
	if imp.pub == nil || len(ls) != len(imp.declared) || len(ls) <= 1 {
		return
	}
	for i, ly := range ls {
		d := &imp.declared[i]
		d.Height, d.Bitrate, d.Inactive = int(ly.Height), int64(ly.Bitrate), ly.Inactive
		info := *d
		if imp.capped >= 0 && i > imp.capped {
			info.Inactive = true
		}
		imp.pub.SetLayerInfo(i, info)
	}
}

// unbind removes the import from its link's table.
func (imp *importTrack) unbind() {
	l := imp.linkp.Swap(nil)
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.importsW[imp.num.Load()] == imp {
		delete(l.importsW, imp.num.Load())
		l.publishImportsLocked()
	}
	l.mu.Unlock()
}

func (imp *importTrack) closePublication() {
	imp.closeMu.Do(func() {
		if imp.pub != nil {
			imp.pub.Close()
		}
	})
}

// publishImportsLocked publishes a copy of importsW for the datagram
// loop. Caller holds l.mu.
func (l *link) publishImportsLocked() {
	m := make(map[uint32]*importTrack, len(l.importsW))
	for k, v := range l.importsW {
		m[k] = v
	}
	l.imports.Store(&m)
}

// handleControl applies one control message from l's peer. An error closes
// the link.
func (r *Relay) handleControl(l *link, m *Message) error {
	switch m.Type {
	case MsgHello:
		return fmt.Errorf("%w: second hello", ErrMalformed)
	case MsgRoomAttach:
		l.mu.Lock()
		if !l.remoteRooms[m.Conference] && len(l.remoteRooms) >= maxRemoteRooms {
			l.mu.Unlock()
			return fmt.Errorf("%w: more than %d rooms", ErrTooLarge, maxRemoteRooms)
		}
		l.remoteRooms[m.Conference] = true
		l.mu.Unlock()
		r.mu.Lock()
		rm := r.rooms[m.Conference]
		r.mu.Unlock()
		if rm != nil {
			l.announce(rm)
			if r.cfg.OnRoomAttach != nil {
				r.cfg.OnRoomAttach(m.Conference, l.peerName)
			}
		}
		l.peer.kick()
	case MsgRoomDetach:
		l.mu.Lock()
		delete(l.remoteRooms, m.Conference)
		l.mu.Unlock()
		l.detach(m.Conference, false)
		r.dropImports(l, func(imp *importTrack) bool { return imp.key.conference == m.Conference })
		l.peer.kick()
		if r.cfg.OnRoomDetach != nil {
			r.cfg.OnRoomDetach(m.Conference, l.peerName)
		}
	case MsgTrackPublished:
		return r.importTrack(l, m)
	case MsgTrackUnpublished:
		r.dropImports(l, func(imp *importTrack) bool { return imp.num.Load() == m.Track })
	case MsgSubscribe, MsgSubscribeLayers, MsgUnsubscribe, MsgKeyframeRequest, MsgNACK:
		if m.Type == MsgSubscribeLayers {
			l.layerSets.Store(true)
		}
		l.mu.Lock()
		e := l.exports[m.Track]
		l.mu.Unlock()
		if e == nil {
			return nil // unpublished meanwhile
		}
		switch m.Type {
		case MsgSubscribe:
			// A peer that sends layer sets follows each Subscribe
			// with its set; one that does not wants this layer only.
			if !l.layerSets.Load() {
				e.setWant(1 << m.Layer)
			}
		case MsgSubscribeLayers:
			e.setWant(bridge.Demand(m.LayerSet))
		case MsgUnsubscribe:
			e.unsubscribe()
		case MsgKeyframeRequest:
			r.ctr.keyframesIn.Add(1)
			if s := e.subscription(int(m.Layer)); s != nil {
				s.RequestKeyframe()
			}
		case MsgNACK:
			r.ctr.nackedIn.Add(uint64(len(m.Seqs)))
			if s := e.subscription(int(m.Layer)); s != nil {
				s.Retransmit(int(m.Layer), m.Seqs)
			}
		}
	case MsgTrackLayers:
		l.mu.Lock()
		imp := l.importsW[m.Track]
		l.mu.Unlock()
		if imp != nil {
			imp.redeclare(m.Layers)
		}
	case MsgLayerCap:
		l.peerCap.Store(int32(m.Layer))
		l.mu.Lock()
		imps := make([]*importTrack, 0, len(l.importsW))
		for _, imp := range l.importsW {
			imps = append(imps, imp)
		}
		l.mu.Unlock()
		for _, imp := range imps {
			imp.applyCap(int(m.Layer))
		}
	case MsgLinkStats:
		l.peerStats(m)
	case MsgRoomMessage:
		r.mu.Lock()
		rm := r.rooms[m.Conference]
		r.mu.Unlock()
		if rm != nil && r.cfg.OnRoomMessage != nil {
			r.cfg.OnRoomMessage(m.Conference, l.peerName, m.Data)
		}
	}
	return nil
}

// importTrack publishes a remote track in the local room, or binds the
// import that survived the previous link to l.
func (r *Relay) importTrack(l *link, m *Message) error {
	l.mu.Lock()
	dup := l.importsW[m.Track] != nil
	n := len(l.importsW)
	l.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: track number %d published twice", ErrMalformed, m.Track)
	}
	if n >= maxTracksPerLink {
		return fmt.Errorf("%w: more than %d tracks", ErrTooLarge, maxTracksPerLink)
	}
	key := importKey{m.Conference, m.TrackID}
	p := l.peer
	r.mu.Lock()
	rm := r.rooms[m.Conference]
	if rm == nil {
		r.mu.Unlock()
		return nil // not held here (any more)
	}
	imp := p.imports[key]
	r.mu.Unlock()
	if imp == nil {
		imp = &importTrack{r: r, key: key, peer: p, rm: rm, capped: MaxLayer}
		pub, err := rm.br.Publish(publishParams(m), imp)
		if err != nil {
			r.log.Debug("relay import refused by the room", "peer", p.name, "err", err)
			return nil
		}
		imp.pub = pub
		r.mu.Lock()
		if r.rooms[m.Conference] != rm || p.imports[key] != nil || r.closed {
			r.mu.Unlock()
			imp.closePublication()
			return nil
		}
		p.imports[key] = imp
		rm.imports[imp] = true
		r.mu.Unlock()
	}
	if old := imp.linkp.Load(); old != nil && old != l {
		imp.unbind()
	}
	imp.num.Store(m.Track)
	imp.linkp.Store(l)
	r.mu.Lock()
	imp.orphanedAt = time.Time{}
	r.mu.Unlock()
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		if imp.linkp.CompareAndSwap(l, nil) {
			r.mu.Lock()
			imp.orphanedAt = time.Now()
			r.mu.Unlock()
		}
		return nil
	}
	l.importsW[m.Track] = imp
	l.publishImportsLocked()
	l.mu.Unlock()
	// The layers as declared now, under this link's cap.
	imp.capMu.Lock()
	imp.declared = publishParams(m).Layers
	imp.capped = -1
	imp.capMu.Unlock()
	imp.applyCap(int(l.peerCap.Load()))
	if imp.demand.Load() != 0 {
		imp.sendDemand()
	}
	imp.sendPendingKeyframes()
	return nil
}

// dropImports unpublishes l's imports that match.
func (r *Relay) dropImports(l *link, match func(*importTrack) bool) {
	l.mu.Lock()
	var imps []*importTrack
	for _, imp := range l.importsW {
		if match(imp) {
			imps = append(imps, imp)
		}
	}
	l.mu.Unlock()
	r.mu.Lock()
	for _, imp := range imps {
		delete(imp.peer.imports, imp.key)
		delete(imp.rm.imports, imp)
	}
	r.mu.Unlock()
	for _, imp := range imps {
		imp.unbind()
		imp.closePublication()
	}
}

// publishParams converts TrackPublished into the bridge's terms.
func publishParams(m *Message) bridge.PublishParams {
	p := bridge.PublishParams{
		TrackID:     m.TrackID,
		Participant: m.Participant,
		Kind:        webrtc.RTPCodecTypeAudio,
		Codec: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: m.Mime, ClockRate: m.ClockRate, Channels: uint16(m.Channels), SDPFmtpLine: m.Fmtp},
			PayloadType:        webrtc.PayloadType(m.PayloadType),
		},
		AudioLevelID: m.AudioLevel,
		E2EE:         m.Flags&TrackE2EE != 0,
	}
	if m.Kind == KindVideo {
		p.Kind = webrtc.RTPCodecTypeVideo
	}
	if m.Flags&TrackSimulcast != 0 {
		for _, ly := range m.Layers {
			p.Layers = append(p.Layers, bridge.LayerInfo{RID: ly.RID, Height: int(ly.Height), Bitrate: int64(ly.Bitrate), Inactive: ly.Inactive})
		}
	}
	return p
}
