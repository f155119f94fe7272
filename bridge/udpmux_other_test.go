//go:build !linux

package bridge

import (
	"net"
	"testing"
)

// envTestSockets: SO_REUSEPORT sockets are Linux only (udpmux_linux_test.go).
func envTestSockets(testing.TB) []net.PacketConn { return nil }
