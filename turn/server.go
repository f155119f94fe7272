package turn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	pionturn "github.com/pion/turn/v5"
)

// Config configures a Server. The zero value of each limit means its
// default, written in its comment.
type Config struct {
	// PacketConns are the TURN/UDP listening sockets. Several sockets bound
	// to one address with SO_REUSEPORT give several read loops, so one
	// listener is not a one-core bottleneck. The server owns and closes them.
	PacketConns []net.PacketConn
	// Listeners are the TURN/TCP and TURN/TLS listeners (TLS already
	// wrapped). The server owns and closes them.
	Listeners []net.Listener

	// RelayIP is the address put in relayed candidates: the node's public
	// IP. Required.
	RelayIP netip.Addr
	// RelayListenIP is the address relay sockets bind to. Zero: RelayIP.
	RelayListenIP netip.Addr
	// RelayPortMin and RelayPortMax bound the relay ports (inclusive). Both
	// zero: ports chosen by the OS.
	RelayPortMin, RelayPortMax uint16
	// Net creates relay sockets. Nil: the operating system's network (pion
	// vnet in tests).
	Net transport.Net

	// Secrets authenticates credentials. Required.
	Secrets *Secrets
	// Realm is the TURN realm. Default "meshmeet".
	Realm string
	// CredentialTTL is the longest validity of a credential: an Allocate
	// whose username expires further ahead is refused. Default 10 minutes.
	// A minute of clock skew is tolerated on top.
	CredentialTTL time.Duration
	// RefreshGrace is how long after its username expired a live
	// allocation may still be refreshed and given permissions and channels.
	// Default 12 hours: meetings outlast credentials; a new allocation
	// always needs unexpired credentials.
	RefreshGrace time.Duration

	// Policy decides which peers may be relayed to. Nil: NewPolicy(nil,
	// nil, nil), the default deny list with nothing opened.
	Policy *Policy

	// MaxAllocationsPerUser caps the live allocations of one participant's
	// session (all credentials minted for it by CredentialsFor; any other
	// credential is a session of its own). Default 6: a browser makes one
	// per PeerConnection and TURN URL on its default interface, 4 to 6 for
	// meshmeet's two PeerConnections and two or three URLs.
	MaxAllocationsPerUser int
	// MaxAllocations caps live allocations in total. Default 10000.
	MaxAllocations int
	// MaxBitrate caps each allocation's relayed bits per second, in each
	// direction; excess packets are dropped. Default 10 Mbit/s; negative:
	// unlimited.
	MaxBitrate int64
	// UnauthRate and UnauthBurst limit the answers an unauthenticated
	// source can get — 401 and every other error answer, and Binding
	// answers — per source (an IPv4 address or an IPv6 /64; a token bucket,
	// the 100 000 most recently heard sources tracked); answers over the
	// limit are not sent. Defaults 20 per
	// second, burst 100: room for an office of participants behind one NAT
	// address joining at once (each starts several allocations with a 401),
	// while a spoofed source still gets at most ~2 KB/s of answers.
	// Negative rate: unlimited.
	UnauthRate  float64
	UnauthBurst int
	// MaxTCPConns caps concurrent TURN/TCP and TURN/TLS connections.
	// Default MaxAllocations.
	MaxTCPConns int

	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() {
	if c.Realm == "" {
		c.Realm = "meshmeet"
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	if c.RefreshGrace == 0 {
		c.RefreshGrace = 12 * time.Hour
	}
	if c.Policy == nil {
		c.Policy = NewPolicy(nil, nil, nil)
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = 6
	}
	if c.MaxAllocations == 0 {
		c.MaxAllocations = 10000
	}
	if c.MaxBitrate == 0 {
		c.MaxBitrate = 10_000_000
	}
	if c.UnauthRate == 0 {
		c.UnauthRate = 20
	}
	if c.UnauthBurst == 0 {
		c.UnauthBurst = 100
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = c.MaxAllocations
	}
	if !c.RelayListenIP.IsValid() {
		c.RelayListenIP = c.RelayIP
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case len(c.PacketConns) == 0 && len(c.Listeners) == 0:
		return errors.New("turn: no listener")
	case c.Secrets == nil || len(c.Secrets.Current()) == 0:
		return ErrNoSecret
	case !c.RelayIP.IsValid() || c.RelayIP.IsUnspecified():
		return errors.New("turn: RelayIP must be a specific address (the node's public IP)")
	case (c.RelayPortMin == 0) != (c.RelayPortMax == 0) || c.RelayPortMin > c.RelayPortMax:
		return fmt.Errorf("turn: relay port range %d-%d is invalid", c.RelayPortMin, c.RelayPortMax)
	case c.MaxAllocationsPerUser < 0 || c.MaxAllocations < 0 || c.MaxTCPConns < 0:
		return errors.New("turn: allocation limits must not be negative")
	case c.CredentialTTL < 0 || c.RefreshGrace < 0:
		return errors.New("turn: durations must not be negative")
	}
	return nil
}

// Server is the embedded TURN server of one node.
type Server struct {
	cfg         Config // Static after construction.
	log         *slog.Logger
	clock       clock
	quota       *quota
	unauth      *sourceLimiter
	ctr         counters
	tcpTimeouts tcpTimeouts // Static after New but in tests.
	issuer      string      // Static: names this server in the credentials it mints (Credentials).
	dp          *dataPlane  // nil where there is none; set by Run before pion starts

	mu      sync.Mutex // guards the following fields
	running bool
	closed  bool
	tcp     map[*tcpConn]struct{} // open TURN/TCP and TLS connections
	done    chan struct{}         // closed by Close
}

// New validates cfg and returns a server. It starts nothing.
func New(cfg Config) (*Server, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rate := cfg.UnauthRate
	if rate < 0 {
		rate = 0
	}
	return &Server{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "turn"),
		clock:       clock{start: time.Now()},
		quota:       newQuota(cfg.MaxAllocationsPerUser, cfg.MaxAllocations),
		unauth:      newSourceLimiter(rate, cfg.UnauthBurst),
		tcpTimeouts: tcpTimeouts{setup: tcpSetupTimeout, frame: tcpFrameTimeout, idle: tcpIdleTimeout},
		issuer:      newIssuer(),
		tcp:         map[*tcpConn]struct{}{},
		done:        make(chan struct{}),
	}, nil
}

// Run serves TURN until ctx is done or Close is called, then closes the
// listeners and every allocation and returns.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.running {
		s.mu.Unlock()
		return ErrClosed
	}
	s.running = true
	s.mu.Unlock()

	dp := newDataPlane(s)
	pcfg := pionturn.ServerConfig{
		LoggerFactory: pionLogger{log: s.log},
		Realm:         s.cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quotaOK,
		EventHandler:  pionturn.EventHandler{OnAuth: s.onAuth},
	}
	fast := 0
	for _, pc := range s.cfg.PacketConns {
		setBuffers(pc, listenerSocketBuffer)
		l := &udpListener{PacketConn: newFastUDP(pc), s: s}
		if dp != nil {
			ok, err := dp.addListener(l)
			if err != nil {
				s.log.Warn("turn data plane unavailable for a listener; pion relays its packets", "err", err)
			}
			if ok {
				fast++
			}
		}
		pcfg.PacketConnConfigs = append(pcfg.PacketConnConfigs, pionturn.PacketConnConfig{
			PacketConn:            l,
			RelayAddressGenerator: &relayGen{s: s, lis: l},
			PermissionHandler:     s.permit,
		})
	}
	s.mu.Lock()
	s.dp = dp // before pion starts the goroutines that read it
	s.mu.Unlock()
	if fast > 0 {
		pcfg.EventHandler.OnAllocationCreated = dp.onAllocationCreated
		pcfg.EventHandler.OnChannelCreated = dp.onChannelCreated
		pcfg.EventHandler.OnChannelDeleted = dp.onChannelDeleted
	}
	for _, ln := range s.cfg.Listeners {
		pcfg.ListenerConfigs = append(pcfg.ListenerConfigs, pionturn.ListenerConfig{
			Listener:              &tcpListener{Listener: ln, s: s},
			RelayAddressGenerator: &relayGen{s: s},
			PermissionHandler:     s.permit,
		})
	}
	srv, err := pionturn.NewServer(pcfg)
	if err != nil {
		if s.dp != nil {
			s.dp.stop()
		}
		return fmt.Errorf("turn: start: %w", err)
	}
	s.log.Info("turn server started", "udp", len(s.cfg.PacketConns), "tcp", len(s.cfg.Listeners), "data_plane_sockets", fast)

	select {
	case <-ctx.Done():
	case <-s.done:
	}
	srv.Close() // closes the listeners; pion then closes every allocation
	s.closeTCPConns()
	// Wait (briefly: pion closes allocations asynchronously) until every
	// relay socket is closed, so that Run owns what it started.
	if n, zero := s.quota.count(); n > 0 {
		select {
		case <-zero:
		case <-time.After(5 * time.Second):
			s.log.Warn("turn allocations still open at shutdown", "n", n)
		}
	}
	if s.dp != nil {
		s.dp.stop()
	}
	s.log.Info("turn server stopped")
	return nil
}

// Close stops Run. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := s.ctr.snapshot()
	st.Allocations, _ = s.quota.count()
	return st
}

// authenticate is pion's AuthHandler: it checks a TURN REST username and
// returns the long-term key of its password.
func (s *Server) authenticate(ra *pionturn.RequestAttributes) (string, []byte, bool) {
	now := time.Now()
	id, v := checkUsername(ra.Username, ra.Method == stun.MethodAllocate, now, s.cfg.CredentialTTL+time.Minute, s.cfg.RefreshGrace)
	switch v {
	case credMalformed:
		s.ctr.authMalformed.Add(1)
		return "", nil, false
	case credExpired:
		s.ctr.authExpired.Add(1)
		return "", nil, false
	case credFuture:
		s.ctr.authFuture.Add(1)
		return "", nil, false
	}
	issuer, session := parseSession(ra.Username)
	if issuer != "" && issuer != s.issuer {
		s.ctr.authOtherServer.Add(1)
		return "", nil, false
	}
	if s.quota.isEnded(session) {
		s.ctr.sessionEnded.Add(1)
		return "", nil, false
	}
	secret := s.cfg.Secrets.lookup(id, now)
	key := pionturn.GenerateAuthKey(ra.Username, ra.Realm, Password(secret, ra.Username))
	return ra.Username, key, true
}

func (s *Server) onAuth(_, _ net.Addr, _, _, _ string, _ string, ok bool) {
	if !ok {
		s.ctr.authFailed.Add(1)
	}
}

// quotaOK is pion's QuotaHandler: it answers 486 when a quota is reached.
// relayGen enforces the quota again, exactly, when it opens the socket.
func (s *Server) quotaOK(user, _ string, _ net.Addr) bool {
	switch s.quota.check(sessionOf(user)) {
	case quotaUser:
		s.ctr.quotaUser.Add(1)
		return false
	case quotaTotal:
		s.ctr.quotaTotal.Add(1)
		return false
	case quotaEnded:
		s.ctr.sessionEnded.Add(1)
		return false
	}
	return true
}

// Credentials mints TURN REST credentials of a participant's session (see
// CredentialsFor) that only this server accepts: the username names it
// ("expiry:kid.server.sessionID", the server's name random per process),
// so a participant cannot carry them to another node of the cluster,
// which would never learn that the session ended.
func (s *Server) Credentials(sessionID string, ttl time.Duration, now time.Time) (username, password string, err error) {
	return s.cfg.Secrets.mintFor(s.issuer, sessionID, ttl, now)
}

// EndSession ends a participant's session (the sessionID its credentials
// were minted for by CredentialsFor): its allocations close now, and its
// credentials are refused from now on, for every request (Allocate,
// Refresh, CreatePermission, ChannelBind), until they could no longer
// allocate anyway (CredentialTTL plus a minute of skew from now). Ending a
// session that has no allocation, or ending one twice, is harmless.
func (s *Server) EndSession(sessionID string) {
	if sessionID == "" {
		return
	}
	now := s.clock.now()
	for _, rc := range s.quota.end(sessionID, now, now+s.cfg.CredentialTTL+time.Minute) {
		rc.Close() // pion's read of the relay socket fails and it deletes the allocation
	}
}

// SetBridges replaces the media addresses of this cluster's bridges, the
// peers the server relays to besides the operator's allowed ranges (see
// Policy). Packets of live allocations to or from an address that left
// the set are dropped from their next packet on.
func (s *Server) SetBridges(addrs []netip.AddrPort) {
	if !s.cfg.Policy.SetBridges(addrs) {
		return
	}
	s.mu.Lock()
	dp := s.dp
	s.mu.Unlock()
	if dp != nil {
		dp.recheck()
	}
}

// permit is pion's PermissionHandler, called on CreatePermission,
// ChannelBind and Connect.
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok || s.cfg.Policy.CheckIP(ip) != nil {
		s.ctr.peerDenied.Add(1)
		return false
	}
	return true
}

// newIssuer returns a random server name for Credentials: 48 bits in
// base64url, new at every start.
func newIssuer() string {
	var b [6]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Socket buffer sizes. Go's read loops can stall for a few milliseconds on
// a busy machine; the default 208 KiB of a Linux UDP socket overflows
// within that at a few thousand packets per second. The kernel caps them
// at net.core.rmem_max / wmem_max; the memory is used only when filled.
const (
	listenerSocketBuffer = 4 << 20
	relaySocketBuffer    = 1 << 20
)

func setBuffers(pc net.PacketConn, n int) {
	if c, ok := pc.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		c.SetReadBuffer(n)
		c.SetWriteBuffer(n)
	}
}
