package main

import (
	"fmt"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/bridge"
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

// maxLastN is the largest --last-n: more video than that per participant
// is "all" in practice.
const maxLastN = 256

// lastNFlag is serve's --last-n: in a meeting with more video publishers
// than N, each participant receives the video of the N most recent
// speakers plus the tracks it pinned; 0 turns last-N off.
func lastNFlag(cfg *Config) cli.Flag {
	return &cli.IntFlag{Name: "last-n", Value: bridge.DefaultLastN, EnvVars: envVar("last-n"), Destination: &cfg.LastN,
		Usage: "video of the N most recent speakers per participant (plus its pins) when a meeting has more video; 0: all video",
		Action: func(_ *cli.Context, n int) error {
			if n < 0 || n > maxLastN {
				return fmt.Errorf("--last-n must be between 0 (off) and %d", maxLastN)
			}
			return nil
		}}
}

// bridgeLastN maps --last-n to bridge.Config.LastN (0 there is the
// default, negative forwards all video).
func bridgeLastN(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
