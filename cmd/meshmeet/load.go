package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
)

// nodeLoad reports this node's load for gossip. The control plane starts
// before the bridge and signaling exist, so they are set when ready.
type nodeLoad struct {
	sig atomic.Pointer[signaling.Server]
	br  atomic.Pointer[bridge.Bridge]

	mu        sync.Mutex
	lastBytes uint64    // guarded by mu
	lastAt    time.Time // guarded by mu
}

// load implements meshConfig.Load: participants and the forwarded bitrate
// since the previous call.
func (l *nodeLoad) load() mesh.Load {
	var out mesh.Load
	if s := l.sig.Load(); s != nil {
		out.Participants = s.Stats().Participants
	}
	if b := l.br.Load(); b != nil {
		bytes := b.Stats().ForwardedBytes
		now := time.Now()
		l.mu.Lock()
		if !l.lastAt.IsZero() && now.After(l.lastAt) && bytes >= l.lastBytes {
			out.BitrateBps = int64(float64(bytes-l.lastBytes) * 8 / now.Sub(l.lastAt).Seconds())
		}
		l.lastBytes, l.lastAt = bytes, now
		l.mu.Unlock()
	}
	return out
}
