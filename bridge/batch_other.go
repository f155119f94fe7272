//go:build !linux

package bridge

import (
	"net"
	"net/netip"
)

// Batched egress is Linux only (sendmmsg); elsewhere every datagram is
// written at once.

type sockSys struct{}

func newEgressSock(net.PacketConn, *counters) *egressSock { return nil }

func (s *egressSock) canSend(netip.AddrPort) bool { return false }

type sendBatch struct{ n int }

func newSendBatch() *sendBatch                               { return &sendBatch{} }
func (b *sendBatch) add(*egressSock, []byte, netip.AddrPort) { b.n++ }
func (b *sendBatch) send()                                   { b.n = 0 }
