package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Forwarded requests (see the protocol flow in stream.go).
const (
	opApply  byte = 1 // payload: a raft command
	opLookup byte = 2 // payload: a RoomKey
	opRooms  byte = 3 // no payload
	opInfo   byte = 4 // no payload; answer: leader ID, then voter IDs, "\n"-separated
	opReport byte = 5 // payload: bridge name(str8) | count(4) | count RoomKeys (ghosts.go)

	stOK          byte = 0
	stUnavailable byte = 1
	stNotFound    byte = 2
	stBad         byte = 3
	stNotLeader   byte = 4 // payload: the leader's raft address, maybe empty

	maxForwardLen   = 1 << 20         // a live-rooms report of 32k rooms
	forwardIdle     = 5 * time.Minute // a server closes a connection idle this long
	poolIdleMax     = time.Minute     // a client drops a pooled connection idle this long
	poolConnsPerDst = 16
)

var (
	errNotLeader = errors.New("not the leader")
	// errNotSent: the peer could not be reached, so the request certainly
	// was not applied and may be retried elsewhere.
	errNotSent = errors.New("peer unreachable")
)

// forwardPool keeps authenticated connections to other nodes' raft ports.
type forwardPool struct {
	pki  *PKI
	dial dialFunc

	mu     sync.Mutex
	idle   map[string][]pooledConn // guarded by mu
	closed bool                    // guarded by mu
}

type pooledConn struct {
	c    net.Conn
	used time.Time
}

func newForwardPool(pki *PKI, dial dialFunc) *forwardPool {
	return &forwardPool{pki: pki, dial: dial, idle: map[string][]pooledConn{}}
}

func (p *forwardPool) get(addr string, timeout time.Duration) (net.Conn, bool, error) {
	p.mu.Lock()
	for l := p.idle[addr]; len(l) > 0; l = p.idle[addr] {
		pc := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		if time.Since(pc.used) < poolIdleMax {
			p.mu.Unlock()
			return pc.c, true, nil
		}
		pc.c.Close()
	}
	p.mu.Unlock()
	c, err := dialTLS(addr, timeout, p.pki, p.dial)
	if err != nil {
		return nil, false, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{streamForward}); err != nil {
		c.Close()
		return nil, false, err
	}
	return c, false, nil
}

func (p *forwardPool) put(addr string, c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= poolConnsPerDst {
		c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], pooledConn{c, time.Now()})
}

func (p *forwardPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, l := range p.idle {
		for _, pc := range l {
			pc.c.Close()
		}
	}
	clear(p.idle)
}

// call sends one request to addr and returns the status and payload. A
// pooled connection that turns out closed before any answer is retried once
// on a fresh one (the peer never read the request).
func (p *forwardPool) call(addr string, op byte, payload []byte, deadline time.Time) (byte, []byte, error) {
	for attempt := 0; ; attempt++ {
		timeout := time.Until(deadline)
		if timeout <= 0 {
			return 0, nil, ErrUnavailable
		}
		c, pooled, err := p.get(addr, timeout)
		if err != nil {
			return 0, nil, errNotSent
		}
		c.SetDeadline(deadline)
		st, resp, err := roundTrip(c, op, payload)
		if err != nil {
			c.Close()
			if pooled && attempt == 0 && errors.Is(err, io.EOF) {
				continue
			}
			return 0, nil, ErrUnavailable
		}
		c.SetDeadline(time.Time{})
		p.put(addr, c)
		return st, resp, nil
	}
}

func roundTrip(c net.Conn, op byte, payload []byte) (byte, []byte, error) {
	req := make([]byte, 5, 5+len(payload))
	req[0] = op
	binary.BigEndian.PutUint32(req[1:], uint32(len(payload)))
	if _, err := c.Write(append(req, payload...)); err != nil {
		return 0, nil, err
	}
	return readFrame(c)
}

// readFrame reads type(1) | len(4) | payload, bounded by maxForwardLen.
func readFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxForwardLen {
		return 0, nil, errMalformed
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

func writeFrame(c net.Conn, typ byte, payload []byte) error {
	b := make([]byte, 5, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Write(append(b, payload...))
	return err
}

// serveForward answers forwarded requests on an authenticated connection
// until it closes or idles out. Only the leader answers; other voters reply
// stNotLeader with the leader's address.
func (n *Node) serveForward(c net.Conn) {
	defer c.Close()
	connDone := make(chan struct{})
	defer close(connDone)
	go func() {
		select {
		case <-n.done:
			c.Close()
		case <-connDone:
		}
	}()
	for {
		c.SetReadDeadline(time.Now().Add(forwardIdle))
		op, payload, err := readFrame(c)
		if err != nil {
			return
		}
		st, resp := n.handleForward(op, payload)
		if err := writeFrame(c, st, resp); err != nil {
			return
		}
	}
}

// handleForward answers a forwarded request: on the leader by serveOp, on
// another voter with the leader's address.
func (n *Node) handleForward(op byte, payload []byte) (byte, []byte) {
	if n.raft.State() != raft.Leader {
		addr, _ := n.raft.LeaderWithID()
		return stNotLeader, []byte(addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	return n.serveOp(ctx, op, payload)
}

// serveOp runs one request on this node, which believes it leads: for this
// node's own calls (onLeader) and forwarded ones alike. Reads wait for a
// barrier first, so an answer never comes from a deposed leader.
func (n *Node) serveOp(ctx context.Context, op byte, payload []byte) (byte, []byte) {
	switch op {
	case opApply:
		c, err := decodeCommand(payload)
		if err != nil || c.typ == cmdBridgeDead && c.bridge == "" {
			return stBad, nil
		}
		res, err := n.applyLocal(ctx, payload)
		if err != nil {
			return errStatus(err), nil
		}
		if res.err != nil {
			return errStatus(res.err), nil
		}
		return stOK, encodeResult(res)
	case opLookup:
		var k RoomKey
		if len(payload) != len(k) {
			return stBad, nil
		}
		copy(k[:], payload)
		if err := n.barrier(ctx); err != nil {
			return errStatus(err), nil
		}
		r, ok := n.fsm.lookup(k)
		if !ok {
			return stNotFound, nil
		}
		return stOK, appendRoom(nil, &r)
	case opRooms:
		if err := n.barrier(ctx); err != nil {
			return errStatus(err), nil
		}
		return stOK, binary.BigEndian.AppendUint32(nil, uint32(n.fsm.count()))
	case opReport:
		bridge, held, err := decodeReport(payload)
		if err != nil {
			return stBad, nil
		}
		if err := n.liveReport(ctx, bridge, held); err != nil {
			return errStatus(err), nil
		}
		return stOK, nil
	case opInfo:
		leader, voters := n.raftInfo()
		b := []byte(leader)
		for _, v := range voters {
			b = append(append(b, '\n'), v...)
		}
		return stOK, b
	}
	return stBad, nil
}

func errStatus(err error) byte {
	switch {
	case errors.Is(err, ErrRoomNotFound):
		return stNotFound
	case errors.Is(err, errMalformed):
		return stBad
	case errors.Is(err, errNotLeader):
		return stNotLeader
	}
	return stUnavailable
}

func statusErr(st byte) error {
	switch st {
	case stOK:
		return nil
	case stNotFound:
		return ErrRoomNotFound
	case stBad:
		return errMalformed
	case stNotLeader:
		return errNotLeader
	}
	return ErrUnavailable
}

// encodeResult: created(1) | hasRoom(1) | room.
func encodeResult(r applyResult) []byte {
	b := []byte{0, 0}
	if r.created {
		b[0] = 1
	}
	if r.room.ConferenceID != "" {
		b[1] = 1
		b = appendRoom(b, &r.room)
	}
	return b
}

func decodeResult(b []byte) (applyResult, error) {
	rd := reader{b: b}
	var res applyResult
	res.created = rd.u8() == 1
	if rd.u8() == 1 {
		res.room = *rd.room()
	}
	if rd.err != nil || len(rd.b) != 0 {
		return res, errMalformed
	}
	return res, nil
}
