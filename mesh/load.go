package mesh

import (
	"runtime"
	"time"
)

// refreshMeta re-reads the load and gossips the metadata when it changed.
func (n *Node) refreshMeta() {
	var l Load
	if f := n.loadFn.Load(); f != nil {
		l = (*f)()
	} else if n.cfg.Load != nil {
		l = n.cfg.Load()
	}
	cpu := n.cpu.sample()
	n.mu.Lock()
	old := n.meta
	n.meta.Participants = max(l.Participants, 0)
	n.meta.BitrateBps = max(l.BitrateBps, 0)
	n.meta.CPU = float64(int(cpu*100)) / 100
	n.meta.Cores = min(runtime.GOMAXPROCS(0), maxCores)
	changed := old != n.meta
	n.mu.Unlock()
	if changed {
		n.ml.UpdateNode(n.cfg.LoadInterval)
	}
}

// SetLoadFunc sets the function that reports this node's load, called every
// LoadInterval from the run loop (it must not block). It replaces
// Config.Load, for a caller that is built after the node.
func (n *Node) SetLoadFunc(f func() Load) {
	if f == nil {
		n.loadFn.Store(nil)
		return
	}
	n.loadFn.Store(&f)
}

// SetDraining sets the draining flag gossiped to the cluster.
func (n *Node) SetDraining(d bool) {
	n.mu.Lock()
	n.meta.Draining = d
	n.mu.Unlock()
	if n.ml != nil {
		n.ml.UpdateNode(time.Second)
	}
}
