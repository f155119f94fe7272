package mesh

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Protocol flow on the raft port (TCP, one listener):
//
//	dialer                               listener
//	TLS 1.3 handshake, both sides present a cluster certificate
//	                                     verify the chain; else close: nothing
//	                                     of the peer is decoded
//	1 byte: raft RPC type (0x00–0x04) ->  hand the connection to raft
//	        0x46 'F' forward         ->  serve forwarded directory requests
//
// Forwarded requests then follow on the same connection, one at a time:
// request  = op(1) | len(4, big endian) | payload(len ≤ maxForwardLen)
// response = status(1) | len(4) | payload(len ≤ maxForwardLen)
const (
	streamForward    byte = 'F'
	handshakeTimeout      = 10 * time.Second
	maxPendingConns       = 64
)

// dialFunc opens a TCP connection (Config.Dial).
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// streamLayer is raft's StreamLayer over mutual TLS. It also accepts
// forwarded directory requests on the same port.
type streamLayer struct {
	ln      net.Listener // static after construction
	addr    net.Addr     // advertised address
	pki     *PKI
	dial    dialFunc
	forward func(net.Conn) // serves a forwarding connection; owns it

	raftCh   chan net.Conn
	done     chan struct{}
	closeMu  sync.Once
	wg       sync.WaitGroup
	rejected atomic.Uint64 // handshakes refused
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, adv net.Addr, pki *PKI, dial dialFunc, forward func(net.Conn)) *streamLayer {
	s := &streamLayer{ln: ln, addr: adv, pki: pki, dial: dial, forward: forward,
		raftCh: make(chan net.Conn, maxPendingConns), done: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	sem := make(chan struct{}, maxPendingConns)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case sem <- struct{}{}:
		default: // too many handshakes in flight: refuse
			s.rejected.Add(1)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			s.handshake(c)
		}()
	}
}

// handshake authenticates an accepted connection and routes it by its first
// byte. A connection that fails is closed before anything is decoded.
func (s *streamLayer) handshake(raw net.Conn) {
	tc := tls.Server(raw, s.pki.tlsConfig(true))
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		s.rejected.Add(1)
		tc.Close()
		return
	}
	br := bufio.NewReaderSize(tc, 4096)
	first, err := br.Peek(1)
	if err != nil {
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	conn := &bufConn{Conn: tc, r: br}
	switch {
	case first[0] == streamForward:
		br.Discard(1)
		s.forward(conn)
	default: // a raft RPC type; raft itself refuses types it does not know
		select {
		case s.raftCh <- conn:
		case <-s.done:
			tc.Close()
		}
	}
}

// Accept implements net.Listener for raft.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.raftCh:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	s.closeMu.Do(func() {
		close(s.done)
		s.ln.Close()
	})
	return nil
}

// Addr implements net.Listener: the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.addr }

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialTLS(string(address), timeout, s.pki, s.dial)
}

// dialTLS opens an authenticated connection to a node's raft port.
func dialTLS(addr string, timeout time.Duration, pki *PKI, dial dialFunc) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, pki.tlsConfig(false))
	tc.SetDeadline(time.Now().Add(max(timeout, time.Second)))
	if err := tc.Handshake(); err != nil {
		tc.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// bufConn is a connection whose first bytes were peeked.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }
