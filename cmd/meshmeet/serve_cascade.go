package main

import (
	"sync/atomic"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/relay"
	"github.com/meshmeet/meshmeet/signaling"
)

// cascadeHooks hands the relay's callbacks to signaling, which is made
// after the relay: until it is set, callbacks are dropped (no room is
// attached before signaling exists).
type cascadeHooks struct {
	sig atomic.Pointer[signaling.Server]
}

// wire sets the relay's signaling callbacks in c.
func (h *cascadeHooks) wire(c *relay.Config) {
	c.OnRoomMessage = func(conf, node string, data []byte) {
		if s := h.sig.Load(); s != nil {
			s.RoomMessage(conf, node, data)
		}
	}
	c.OnRoomAttach = func(conf, node string) {
		if s := h.sig.Load(); s != nil {
			s.RoomAttached(conf, node)
		}
	}
	c.OnRoomDetach = func(conf, node string) {
		if s := h.sig.Load(); s != nil {
			s.RoomDetached(conf, node)
		}
	}
	c.OnLinkUp = func(node string) {
		if s := h.sig.Load(); s != nil {
			s.LinkUp(node)
		}
	}
	c.OnLinkDown = func(node string) {
		if s := h.sig.Load(); s != nil {
			s.LinkDown(node)
		}
	}
}

// relayAddrs returns signaling's Config.RelayAddr: a node's gossiped
// relay address, "" when the node is unknown or advertises none.
func relayAddrs(members func() []mesh.Member) func(string) string {
	return func(node string) string {
		for _, m := range members() {
			if m.Name == node {
				return m.Meta.RelayAddr
			}
		}
		return ""
	}
}
