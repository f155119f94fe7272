package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// clock is the bridge's monotonic clock, in nanoseconds since its epoch.
//
// It was a coarse clock kept by a 10 ms ticker, so that the packet path
// read an atomic instead of the time. On an idle node that ticker was a
// hundred wake-ups a second of the node's one thread, each a context
// switch (about as much CPU as the clock reads it spared); the monotonic
// clock is read from the vDSO in some tens of nanoseconds, once per
// received packet and once per forwarded one.
type clock struct {
	epoch  time.Time    // static
	frozen atomic.Int64 // nonzero: the clock reads this (tests, Freeze)
}

// Load returns the time since the epoch, in nanoseconds (at least 1).
func (c *clock) Load() int64 {
	if f := c.frozen.Load(); f != 0 {
		return f
	}
	return max(int64(time.Since(c.epoch)), 1)
}

// Freeze stops the clock at t, and Advance moves a frozen clock on by d:
// for tests that drive time themselves.
func (c *clock) Freeze(t int64)  { c.frozen.Store(t) }
func (c *clock) Advance(d int64) { c.frozen.Add(d) }

// Bridge is the SFU of one node. It owns the ICE muxes on Config.UDPConn and
// Config.TCPListener and every room created by NewRoom.
type Bridge struct {
	cfg Config       // static after New
	log *slog.Logger // static after New
	lf  pionLoggerFactory

	stats counters
	now   clock
	// loopback are the loopback addresses the bridge listens on or
	// advertises: the only loopback addresses a remote candidate may name.
	// Static after New.
	loopback []netip.Addr
	// public are Config.PublicIPs, parsed and unmapped. Static after New.
	public []netip.Addr

	// egressSock is the socket of the egress batch (batch.go), or nil
	// where there is none; set once when the bridge starts.
	egressSock *egressSock

	// done is closed when the bridge shuts down.
	done chan struct{}
	wg   sync.WaitGroup // goroutines started by the bridge itself

	// mu guards the following fields.
	mu      sync.Mutex
	started bool
	closed  bool
	pubAPI  *webrtc.API
	subAPI  *subAPI
	udpMux  ice.UDPMux // pion's, or udpMux with Config.UDPConns
	tcpMux  *ice.TCPMuxDefault
	rooms   map[*Room]struct{}
}

// maxTracksLimit bounds Config.MaxTracksPerParticipant: each track costs
// a reader goroutine and a packet cache per layer.
const maxTracksLimit = 64

// withDefaults fills the zero fields of c with their defaults.
func (c Config) withDefaults() Config {
	if c.MaxTracksPerParticipant == 0 {
		c.MaxTracksPerParticipant = DefaultMaxTracksPerParticipant
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field of c that is missing or out of range,
// as ErrNoUDPConn or an error wrapping ErrInvalidConfig that names it.
func (c Config) Validate() error {
	if c.UDPConn == nil {
		return ErrNoUDPConn
	}
	for _, s := range c.PublicIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.IsUnspecified() || ip.Zone() != "" {
			return fmt.Errorf("%w: PublicIPs: not an IP address", ErrInvalidConfig)
		}
	}
	if c.MaxTracksPerParticipant < 0 || c.MaxTracksPerParticipant > maxTracksLimit {
		return fmt.Errorf("%w: MaxTracksPerParticipant must be between 1 and %d", ErrInvalidConfig, maxTracksLimit)
	}
	if len(c.UDPConns) >= MaxUDPConns {
		return fmt.Errorf("%w: UDPConns: more than %d sockets", ErrInvalidConfig, MaxUDPConns-1)
	}
	for _, pc := range c.UDPConns {
		if pc == nil || pc.LocalAddr() == nil || pc.LocalAddr().String() != c.UDPConn.LocalAddr().String() {
			return fmt.Errorf("%w: UDPConns: a socket not bound to UDPConn's address", ErrInvalidConfig)
		}
	}
	return nil
}

// New validates cfg and returns a bridge. It starts nothing: the ICE muxes
// are created by Run or by the first Join, whichever comes first.
//
// New takes ownership of cfg.UDPConn and cfg.TCPListener: if it fails it
// closes them, and Close (or the end of Run) closes them.
func New(cfg Config) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		closeSockets(cfg)
		return nil, err
	}
	log := cfg.Logger.With("component", "bridge")
	b := &Bridge{
		cfg:   cfg,
		log:   log,
		lf:    pionLoggerFactory{log: log},
		now:   clock{epoch: time.Now()},
		done:  make(chan struct{}),
		rooms: map[*Room]struct{}{},
	}
	for _, s := range cfg.PublicIPs {
		b.public = append(b.public, netip.MustParseAddr(s).Unmap()) // checked by Validate
	}
	b.loopback = ownLoopback(cfg)
	return b, nil
}

// closeSockets closes the sockets a Config hands to New. A second close
// (after the ICE mux closed a socket) fails harmlessly.
func closeSockets(cfg Config) {
	if cfg.UDPConn != nil {
		_ = cfg.UDPConn.Close()
	}
	for _, pc := range cfg.UDPConns {
		if pc != nil {
			_ = pc.Close()
		}
	}
	if cfg.TCPListener != nil {
		_ = cfg.TCPListener.Close()
	}
}

// advertised reports whether a local candidate's address may go to a
// participant: with Config.PublicIPs, only those addresses do, whatever
// pion gathered (an interface of a family no rewrite rule covers, an
// address it failed to map).
func (b *Bridge) advertised(addr string) bool {
	if len(b.public) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(addr)
	return err == nil && slices.Contains(b.public, ip.Unmap())
}

// filterLocalSDP removes from a description the bridge sends the candidate
// lines that advertised refuses.
func (b *Bridge) filterLocalSDP(sdp string) string {
	if len(b.public) == 0 {
		return sdp
	}
	return filterCandidateLines(sdp, func(value string) bool {
		c, err := ice.UnmarshalCandidate(value)
		return err == nil && b.advertised(c.Address())
	})
}

// filterCandidateLines returns sdp without the "a=candidate:" lines whose
// value (after "a=") keep refuses; every other line is kept byte for byte.
func filterCandidateLines(sdp string, keep func(value string) bool) string {
	const attr = "a=candidate:"
	if !strings.Contains(sdp, attr) {
		return sdp
	}
	var out strings.Builder
	out.Grow(len(sdp))
	for rest := sdp; rest != ""; {
		line, tail, nl := strings.Cut(rest, "\n")
		rest = tail
		if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "a="); ok && strings.HasPrefix(v, "candidate:") && !keep(v) {
			continue
		}
		out.WriteString(line)
		if nl {
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// ownLoopback returns the loopback addresses of cfg's sockets and public
// IPs; an unspecified socket address with IncludeLoopback advertises the
// loopback interface's 127.0.0.1 and ::1.
func ownLoopback(cfg Config) []netip.Addr {
	var out []netip.Addr
	add := func(ip netip.Addr) {
		ip = ip.Unmap().WithZone("")
		if ip.IsUnspecified() && cfg.IncludeLoopback {
			add4, add6 := netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()
			for _, l := range []netip.Addr{add4, add6} {
				if !slices.Contains(out, l) {
					out = append(out, l)
				}
			}
			return
		}
		if ip.IsLoopback() && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	addrOf := func(a net.Addr) {
		if a == nil {
			return
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			add(ap.Addr())
		}
	}
	addrOf(cfg.UDPConn.LocalAddr())
	if cfg.TCPListener != nil {
		addrOf(cfg.TCPListener.Addr())
	}
	for _, s := range cfg.PublicIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			add(ip)
		}
	}
	return out
}

// Reasons a remote candidate is refused, for counting.
const (
	candOK = iota
	candDenied
	candMalformed
)

// checkRemoteCandidate applies the remote candidate policy (see
// Config.AllowRemoteCandidate) to c, a candidate for a PeerConnection that
// runs ICE-lite or not (newSettingEngine).
func (b *Bridge) checkRemoteCandidate(c ice.Candidate, lite bool) int {
	if c.Type() == ice.CandidateTypeRelay && lite {
		return candOK // a TURN server's address, where ICE-lite sends nothing
	}
	ip, err := netip.ParseAddr(c.Address())
	if err != nil {
		return candMalformed // a hostname (mDNS is off): nothing to check
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() && slices.Contains(b.loopback, ip) {
		return candOK
	}
	if b.cfg.AllowRemoteCandidate != nil && b.cfg.AllowRemoteCandidate(ip) {
		return candOK
	}
	return candDenied
}

// start creates the muxes and APIs on first use (from Run or the first
// Join). Called with b.mu held.
func (b *Bridge) startLocked() error {
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return nil
	}
	if len(b.cfg.UDPConns) > 0 {
		socks := []net.PacketConn{rawUDPConn(b.cfg.UDPConn)}
		for _, pc := range b.cfg.UDPConns {
			socks = append(socks, rawUDPConn(pc)) // each read by its own goroutine: raw reads as below
		}
		m := newUDPMux(socks, b.cfg.IncludeLoopback, &b.stats, b.log)
		m.start()
		b.udpMux = m
	} else {
		b.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{
			UDPConn: rawUDPConn(b.cfg.UDPConn), // reads that do not wake sysmon (rawudp_linux.go)
			Logger:  b.lf.NewLogger("ice"),
		})
	}
	if b.cfg.TCPListener != nil {
		b.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:       b.cfg.TCPListener,
			Logger:         b.lf.NewLogger("ice"),
			ReadBufferSize: 64,
		})
	}
	var tcp ice.TCPMux
	if b.tcpMux != nil {
		tcp = b.tcpMux
	}
	pubSE, err := b.newSettingEngine(b.udpMux, tcp, true)
	var subSE webrtc.SettingEngine
	if err == nil {
		subSE, err = b.newSettingEngine(b.udpMux, tcp, false)
	}
	var pub *webrtc.API
	var sub *subAPI
	if err == nil {
		pub, sub, err = b.newAPIs(pubSE, subSE)
	}
	if err != nil {
		_ = b.udpMux.Close()
		if b.tcpMux != nil {
			_ = b.tcpMux.Close()
		}
		return err
	}
	b.pubAPI, b.subAPI = pub, sub
	b.started = true
	b.log.Info("bridge started", "udp", b.cfg.UDPConn.LocalAddr().String(), "udp_sockets", 1+len(b.cfg.UDPConns))
	return nil
}

// Run serves media until ctx is done, then closes the bridge (see Close)
// and returns after every goroutine the bridge started has exited.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	err := b.startLocked()
	b.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	b.Close()
	return nil
}

// Close closes every room, the ICE muxes and Config.UDPConn and
// Config.TCPListener (whether or not the bridge ever started) and waits for
// every goroutine the bridge started. Run calls it when its context ends.
// Idempotent.
func (b *Bridge) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return
	}
	b.closed = true
	close(b.done)
	rooms := make([]*Room, 0, len(b.rooms))
	for r := range b.rooms {
		rooms = append(rooms, r)
	}
	b.mu.Unlock()

	for _, r := range rooms {
		r.Close()
	}
	if b.udpMux != nil {
		_ = b.udpMux.Close()
	}
	if b.tcpMux != nil {
		_ = b.tcpMux.Close()
	}
	closeSockets(b.cfg)
	b.wg.Wait()
	b.log.Info("bridge stopped")
}

// Stats returns the forwarding counters.
func (b *Bridge) Stats() Stats { return b.stats.snapshot() }

func (b *Bridge) removeRoom(r *Room) {
	b.mu.Lock()
	delete(b.rooms, r)
	b.mu.Unlock()
}

// apis starts the bridge if needed and returns its APIs.
func (b *Bridge) apis() (pub *webrtc.API, sub *subAPI, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startLocked(); err != nil {
		return nil, nil, err
	}
	return b.pubAPI, b.subAPI, nil
}
