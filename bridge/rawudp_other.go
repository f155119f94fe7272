//go:build !linux

package bridge

import "net"

// rawUDPConn returns c as is: raw reads are Linux only (rawudp_linux.go).
func rawUDPConn(c net.PacketConn) net.PacketConn { return c }
