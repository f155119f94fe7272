package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Peer is another node that holds a room: its name and relay address.
type Peer struct {
	Node string
	Addr string // host:port (UDP)
}

// Relay runs the links of this node to the other bridges of its meetings.
type Relay struct {
	cfg Config       // static after New
	log *slog.Logger // static
	ctr counters

	serverTLS, clientTLS *tls.Config // static after New
	quicConf             *quic.Config

	// Set by Run.
	tr      *quic.Transport
	ln      *quic.Listener
	ctx     context.Context // ends when Run returns or Close is called
	stop    context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{} // closed when Close is called
	runDone chan struct{} // closed when Run returns
	once    sync.Once

	// mu guards the following fields. It is never held while calling into
	// quic-go streams or the bridge.
	mu      sync.Mutex
	running bool
	closed  bool
	peers   map[string]*peer // by node name
	rooms   map[string]*room // by conference ID
}

// New validates cfg. It starts nothing.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Relay{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "relay"),
		done:    make(chan struct{}),
		runDone: make(chan struct{}),
		peers:   map[string]*peer{},
		rooms:   map[string]*room{},
	}
	r.serverTLS = cfg.ServerTLS.Clone()
	r.serverTLS.NextProtos = []string{ProtoV1}
	r.serverTLS.MinVersion = tls.VersionTLS13
	r.clientTLS = cfg.ClientTLS.Clone()
	r.clientTLS.NextProtos = []string{ProtoV1}
	r.clientTLS.MinVersion = tls.VersionTLS13
	r.quicConf = &quic.Config{
		EnableDatagrams:       true,
		HandshakeIdleTimeout:  cfg.DialTimeout,
		MaxIdleTimeout:        cfg.LinkTimeout,
		KeepAlivePeriod:       cfg.LinkTimeout / 3,
		MaxIncomingStreams:    -1, // nothing uses bidirectional streams
		MaxIncomingUniStreams: 1,  // the peer's control stream
	}
	return r, nil
}

// Addr returns the local address of the relay socket.
func (r *Relay) Addr() net.Addr { return r.cfg.PacketConn.LocalAddr() }

// Run accepts and dials links until ctx ends or Close is called, then
// closes every link and returns after every goroutine it started exited.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed || r.running {
		r.mu.Unlock()
		return ErrClosed
	}
	r.running = true
	defer close(r.runDone)
	r.ctx, r.stop = context.WithCancel(ctx)
	r.tr = &quic.Transport{Conn: r.cfg.PacketConn}
	ln, err := r.tr.Listen(r.serverTLS, r.quicConf)
	if err != nil {
		r.mu.Unlock()
		r.stop()
		return fmt.Errorf("relay: listen: %w", err)
	}
	r.ln = ln
	// Rooms attached before Run wait for their peers' managers.
	for _, p := range r.peers {
		r.startPeerLocked(p)
	}
	r.mu.Unlock()
	r.log.Info("relay listening", "addr", r.Addr().String())

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.acceptLoop()
	}()
	select {
	case <-r.ctx.Done():
	case <-r.done:
	}
	r.shutdown()
	r.log.Info("relay stopped")
	return nil
}

// Close stops Run and waits for it. Idempotent.
func (r *Relay) Close() {
	r.once.Do(func() { close(r.done) })
	r.mu.Lock()
	running := r.running
	if !running {
		r.closed = true
	}
	r.mu.Unlock()
	if running {
		<-r.runDone
	}
}

// shutdown closes the listener, every link and waits for the goroutines.
func (r *Relay) shutdown() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.ln.Close()
	r.mu.Lock()
	var links []*link
	for _, p := range r.peers {
		if p.link != nil {
			links = append(links, p.link)
		}
	}
	r.mu.Unlock()
	for _, l := range links {
		l.close(errRelayClosed)
	}
	r.wg.Wait()
	r.tr.Close()
	// Imports and exports are gone with their links; close the
	// publications that waited for a reconnect.
	r.mu.Lock()
	var imps []*importTrack
	for _, p := range r.peers {
		for _, imp := range p.imports {
			imps = append(imps, imp)
		}
		p.imports = nil
	}
	r.mu.Unlock()
	for _, imp := range imps {
		imp.closePublication()
	}
}

// Application error codes on CONNECTION_CLOSE.
const (
	codeNormal    quic.ApplicationErrorCode = 0
	codeDuplicate quic.ApplicationErrorCode = 1 // the other connection of the pair wins
	codeProtocol  quic.ApplicationErrorCode = 2 // malformed control message or hello
	codeIdle      quic.ApplicationErrorCode = 3 // no shared room
)

var (
	errRelayClosed = errors.New("relay closed")
	errDuplicate   = errors.New("duplicate link")
	errIdle        = errors.New("no shared room")
)

// acceptLoop accepts incoming links; each is registered after its hello.
func (r *Relay) acceptLoop() {
	for {
		c, err := r.ln.Accept(r.ctx)
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.handshake(c, "", false)
		}()
	}
}

// handshake opens this side's control stream, reads the peer's hello and
// registers the link. want is the peer name expected when dialling.
func (r *Relay) handshake(c *quic.Conn, want string, dialled bool) *link {
	if !c.ConnectionState().SupportsDatagrams.Remote {
		r.ctr.linksRefused.Add(1)
		c.CloseWithError(codeProtocol, "datagrams required")
		return nil
	}
	l := newLink(r, c, dialled)
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	defer cancel()
	name, err := l.start(ctx)
	if err == nil && (name == r.cfg.NodeName || (want != "" && name != want) || !certNames(c, name)) {
		err = ErrPeerName
	}
	if err != nil {
		r.ctr.linksRefused.Add(1)
		lvl := slog.LevelDebug // the peer went away or refused us: seen by dial failures
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrPeerName) {
			lvl = slog.LevelWarn
		}
		r.log.Log(r.ctx, lvl, "relay link refused", "dialled", dialled, "err", err)
		l.close(err)
		l.wait()
		return nil
	}
	if !r.register(name, l) {
		l.close(errDuplicate)
		l.wait()
		return nil
	}
	return l
}

// certNames reports whether the peer's certificate names node name in its
// subject common name, as the cluster PKI issues node certificates: a node
// of the cluster cannot claim another node's name in its hello (and so
// take its rooms' tracks or messages).
func certNames(c *quic.Conn, name string) bool {
	certs := c.ConnectionState().TLS.PeerCertificates
	return len(certs) > 0 && certs[0].Subject.CommonName == name
}

// dialler returns the name of the node that dialled l.
func (r *Relay) dialler(l *link) string {
	if l.dialled {
		return r.cfg.NodeName
	}
	return l.peerName
}

// register makes l the link of its peer, unless the peer's current link
// wins the tie-break: the link dialled by the node whose name sorts lower
// stays. It returns false when l lost.
func (r *Relay) register(name string, l *link) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	p := r.peerLocked(name)
	old := p.link
	if old != nil {
		lower := min(r.cfg.NodeName, name)
		if r.dialler(old) == lower && r.dialler(l) != lower {
			r.mu.Unlock()
			return false
		}
	}
	p.link = l
	l.peer = p
	p.backoff = 0
	r.ctr.linksOpened.Add(1)
	r.mu.Unlock()
	if old != nil {
		old.close(errDuplicate)
	}
	r.log.Info("relay link up", "peer", name, "dialled", l.dialled)
	l.run()
	r.linkUp(l)
	p.kick()
	if r.cfg.OnLinkUp != nil {
		r.cfg.OnLinkUp(name)
	}
	return true
}

// unregister forgets l when its connection ended.
func (r *Relay) unregister(l *link) {
	r.mu.Lock()
	p := l.peer
	current := p != nil && p.link == l
	if current {
		p.link = nil
	}
	r.mu.Unlock()
	r.linkDown(l)
	if current {
		r.log.Info("relay link down", "peer", p.name, "err", l.err())
		p.kick()
		if r.cfg.OnLinkDown != nil {
			r.cfg.OnLinkDown(p.name)
		}
	}
}

// peer is another node this node shares rooms with, or did recently.
type peer struct {
	name string // static
	wake chan struct{}

	// Guarded by Relay.mu.
	addr    string
	link    *link
	started bool
	backoff time.Duration
	// rooms are the local rooms that list this peer.
	rooms map[string]*room
	// imports are the remote tracks of this peer published in local rooms,
	// by conference ID and track ID; they outlive a link for ImportGrace.
	imports map[importKey]*importTrack
}

func (p *peer) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// peerLocked returns the peer named name, creating it.
func (r *Relay) peerLocked(name string) *peer {
	p := r.peers[name]
	if p == nil {
		p = &peer{name: name, wake: make(chan struct{}, 1), rooms: map[string]*room{}, imports: map[importKey]*importTrack{}}
		r.peers[name] = p
		if r.running && !r.closed {
			r.startPeerLocked(p)
		}
	}
	return p
}

func (r *Relay) startPeerLocked(p *peer) {
	if p.started {
		return
	}
	p.started = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.manage(p)
	}()
}

// manage keeps p's link up while a local room lists p, redialling with
// backoff after a break, and closes it after IdleTimeout without a shared
// room.
func (r *Relay) manage(p *peer) {
	var idleSince time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
		now := time.Now()
		r.mu.Lock()
		want := len(p.rooms) > 0
		l, addr := p.link, p.addr
		if !want && l == nil && len(p.imports) == 0 && r.peers[p.name] == p {
			// Nothing left of this peer: forget it (a later room or
			// incoming link makes a new one).
			delete(r.peers, p.name)
			r.mu.Unlock()
			return
		}
		shared := want
		if l != nil && !shared {
			shared = l.sharesRoom()
		}
		r.mu.Unlock()
		r.expireImports(p, now)

		next := r.cfg.StatsInterval
		switch {
		case l != nil && !shared:
			if idleSince.IsZero() {
				idleSince = now
			}
			if now.Sub(idleSince) >= r.cfg.IdleTimeout {
				l.close(errIdle)
				idleSince = time.Time{}
			} else {
				next = min(next, r.cfg.IdleTimeout-now.Sub(idleSince))
			}
		case l != nil:
			idleSince = time.Time{}
		case want && addr != "":
			idleSince = time.Time{}
			if r.dial(p, addr) == nil {
				r.mu.Lock()
				p.backoff = min(max(2*p.backoff, r.cfg.ReconnectMin), r.cfg.ReconnectMax)
				next = p.backoff
				r.mu.Unlock()
			} else {
				next = 0
			}
		}
		if l != nil {
			l.tick(now)
		}
		if next <= 0 {
			next = time.Millisecond
		}
		timer.Reset(next)
	}
}

// dial connects to p and returns the registered link, or nil.
func (r *Relay) dial(p *peer, addr string) *link {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		// The error would name the address: the peer's name is enough.
		r.ctr.dialFailures.Add(1)
		r.log.Warn("relay peer address does not resolve", "peer", p.name)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
	c, err := r.tr.Dial(ctx, ua, r.clientTLS, r.quicConf)
	cancel()
	if err != nil {
		if r.ctx.Err() == nil {
			r.ctr.dialFailures.Add(1)
			r.log.Debug("relay dial failed", "peer", p.name, "err", err)
		}
		return nil
	}
	l := r.handshake(c, p.name, true)
	if l == nil {
		r.ctr.dialFailures.Add(1)
	}
	return l
}

// expireImports closes p's imported tracks whose link has been gone for
// longer than ImportGrace.
func (r *Relay) expireImports(p *peer, now time.Time) {
	var stale []*importTrack
	r.mu.Lock()
	for k, imp := range p.imports {
		if imp.orphanedAt.IsZero() || now.Sub(imp.orphanedAt) < r.cfg.ImportGrace {
			continue
		}
		delete(p.imports, k)
		if rm := r.rooms[k.conference]; rm != nil {
			delete(rm.imports, imp)
		}
		stale = append(stale, imp)
	}
	r.mu.Unlock()
	for _, imp := range stale {
		imp.closePublication()
	}
}

// Stats returns a snapshot of the counters and of every link.
func (r *Relay) Stats() Stats {
	s := Stats{
		LinksOpened:  r.ctr.linksOpened.Load(),
		LinksRefused: r.ctr.linksRefused.Load(),
		DialFailures: r.ctr.dialFailures.Load(),
		DatagramsOut: r.ctr.datagramsOut.Load(),
		DatagramsIn:  r.ctr.datagramsIn.Load(),
		BytesOut:     r.ctr.bytesOut.Load(),
		BytesIn:      r.ctr.bytesIn.Load(),
		ControlOut:   r.ctr.controlOut.Load(),
		ControlIn:    r.ctr.controlIn.Load(),
		KeyframesOut: r.ctr.keyframesOut.Load(),
		KeyframesIn:  r.ctr.keyframesIn.Load(),
		NACKedOut:    r.ctr.nackedOut.Load(),
		NACKedIn:     r.ctr.nackedIn.Load(),
		Drops:        make(map[string]uint64, numDropReasons),
	}
	for i := range r.ctr.drops {
		s.Drops[DropReason(i).String()] = r.ctr.drops[i].Load()
	}
	r.mu.Lock()
	var links []*link
	for _, p := range r.peers {
		if p.link != nil {
			links = append(links, p.link)
		}
		for _, imp := range p.imports {
			if imp.pub != nil {
				s.ImportedTrack++
			}
		}
	}
	r.mu.Unlock()
	s.Links = len(links)
	for _, l := range links {
		ls := l.stats()
		s.ExportedTrack += ls.exports
		s.Subscribed += ls.subscribed
		s.PerLink = append(s.PerLink, ls.LinkStats)
	}
	return s
}
