package main

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// emulateRelayDelay is the hidden, bench-only --emulate-relay-delay value:
// "ADDR=DURATION,…" (relay UDP addresses of other nodes). meshmeet bench
// sets it on local nodes so that bridge↔bridge traffic between nodes of
// different regions crosses an emulated inter-region delay (this kernel
// has no netem). Empty in production: the relay's socket is not wrapped.
var emulateRelayDelay string

// parseRelayDelay parses the --emulate-relay-delay value.
func parseRelayDelay(v string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range strings.Split(v, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		a, d, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--emulate-relay-delay: %q is not ADDR=DURATION", kv)
		}
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			return nil, fmt.Errorf("--emulate-relay-delay: %w", err)
		}
		dur, err := time.ParseDuration(d)
		if err != nil || dur < 0 || dur > 10*time.Second {
			return nil, fmt.Errorf("--emulate-relay-delay: bad duration %q", d)
		}
		out[ua.String()] = dur
	}
	return out, nil
}

// delayedPacket is one write waiting for its time.
type delayedPacket struct {
	due time.Time
	b   []byte
}

// delayConn delays writes to the listed addresses by a fixed time each,
// one FIFO queue and goroutine per address (a constant delay keeps order).
// Bench only: it copies each delayed packet.
type delayConn struct {
	net.PacketConn
	queues  map[string]chan delayedPacket // fixed after newDelayConn
	addrs   map[string]net.Addr
	delays  map[string]time.Duration
	dropped atomic.Int64 // queue full
	done    chan struct{}
	closed  atomic.Bool
}

func newDelayConn(pc net.PacketConn, delays map[string]time.Duration) *delayConn {
	c := &delayConn{PacketConn: pc, queues: map[string]chan delayedPacket{}, addrs: map[string]net.Addr{},
		delays: delays, done: make(chan struct{})}
	for a := range delays {
		ua, _ := net.ResolveUDPAddr("udp", a)
		q := make(chan delayedPacket, 8192)
		c.queues[a], c.addrs[a] = q, ua
		go c.drain(q, ua)
	}
	return c
}

func (c *delayConn) drain(q chan delayedPacket, to net.Addr) {
	for {
		select {
		case <-c.done:
			return
		case p := <-q:
			if w := time.Until(p.due); w > 0 {
				t := time.NewTimer(w)
				select {
				case <-c.done:
					t.Stop()
					return
				case <-t.C:
				}
			}
			c.PacketConn.WriteTo(p.b, to)
		}
	}
}

// WriteTo queues a packet to a delayed address and writes any other now.
func (c *delayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	key := to.String()
	q, ok := c.queues[key]
	if !ok {
		return c.PacketConn.WriteTo(b, to)
	}
	p := delayedPacket{due: time.Now().Add(c.delays[key]), b: append([]byte(nil), b...)}
	select {
	case q <- p:
	default:
		c.dropped.Add(1)
	}
	return len(b), nil
}

// Close stops the queues and closes the socket.
func (c *delayConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		close(c.done)
	}
	return c.PacketConn.Close()
}
