//go:build !linux

package turn

import "net"

// The data plane (dataplane_linux.go) is Linux only; elsewhere pion/turn
// relays every packet.

type (
	dataPlane  struct{}
	dpListener struct{}
	dpRelay    struct{}
)

func newDataPlane(*Server) *dataPlane { return nil }

func (*dataPlane) addListener(*udpListener) (bool, error) { return false, nil }

func (*dataPlane) addRelay(*relayConn, *udpListener) error { return nil }

func (*dataPlane) removeListener(*udpListener) {}

func (*dataPlane) removeRelay(*relayConn) {}

func (*dataPlane) onAllocationCreated(net.Addr, net.Addr, string, string, string, net.Addr, int) {
}

func (*dataPlane) onChannelCreated(net.Addr, net.Addr, string, string, string, net.Addr, net.Addr, uint16) {
}

func (*dataPlane) onChannelDeleted(net.Addr, net.Addr, string, string, string, net.Addr, net.Addr, uint16) {
}

func (*dataPlane) recheck() {}

func (*dataPlane) stop() {}
