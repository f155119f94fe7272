package mesh

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist.Delegate: it hands memberlist this node's
// metadata. memberlist calls it from its own goroutines; it never blocks.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	b := d.meta.encode()
	d.mu.Unlock()
	if len(b) > limit {
		return nil
	}
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events implements memberlist.EventDelegate: it records and wakes the run
// loop, never blocking.
type events Node

func (e *events) record(nd *memberlist.Node, gone bool) {
	meta, err := decodeMeta(nd.Meta)
	if err != nil {
		meta = NodeMeta{}
	}
	st := MemberAlive
	if gone {
		st = MemberDead
		if meta.Leaving {
			st = MemberLeft
		}
	}
	e.mu.Lock()
	m, ok := e.members[nd.Name]
	if !ok {
		m = &memberState{}
		e.members[nd.Name] = m
	}
	if !ok || m.State != st {
		m.Since = time.Now()
	}
	m.Name, m.State, m.Meta = nd.Name, st, meta
	m.addr = nd.Address()
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *events) NotifyJoin(nd *memberlist.Node)   { e.record(nd, false) }
func (e *events) NotifyLeave(nd *memberlist.Node)  { e.record(nd, true) }
func (e *events) NotifyUpdate(nd *memberlist.Node) { e.record(nd, false) }
