//go:build !linux

package turn

import "net"

// newFastUDP returns pc: the direct system calls of fastudp_linux.go are
// Linux only.
func newFastUDP(pc net.PacketConn) net.PacketConn { return pc }
