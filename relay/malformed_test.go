package relay

import (
	"testing"
)

// linkTo returns n's current link to the named peer.
func linkTo(n *node, name string) *link {
	n.relay.mu.Lock()
	defer n.relay.mu.Unlock()
	if p := n.relay.peers[name]; p != nil {
		return p.link
	}
	return nil
}

// TestMalformedInput: malformed, truncated and oversized datagrams are
// dropped and counted by reason while media keeps flowing; a malformed
// control message closes only that link (the other link of the node stays
// up) and the link comes back by itself.
func TestMalformedInput(t *testing.T) {
	ca := newTestCA(t)
	a, b, c := startNode(t, ca, "a"), startNode(t, ca, "b"), startNode(t, ca, "c")
	// One node of each pair lists the other, so one node dials each link
	// (b attaches the room on a's link because a attached it). Were both
	// to dial, the link a test writes on could be the one the tie-break
	// replaces a moment later, taking the bad message with it unread (the
	// relay's own state is sent again on the new link; these raw writes
	// are not).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf", c)
	c.attach(t, "conf")
	o := publishAudio(t, a, "conf", ra, "mic")
	waitFor(t, "track imported on b", func() bool { return hasTrack(rb, "mic") })
	s := subscribe(t, rb, "mic")
	flowing(t, o, s)
	waitFor(t, "b linked to a and c", func() bool { return b.links() == 2 })

	la := linkTo(a, "b")
	before := b.relay.Stats().Drops
	bad := map[string][][]byte{
		"malformed": {
			{},                  // empty
			{FrameVersion << 6}, // header cut
			{0x00, 0x00},        // version 0
			{3 << 6, 0x00},      // version 3
			{FrameVersion << 6, 0x80, 0x80, 0x80, 0x80, 0x80},         // varint overlong
			append([]byte{FrameVersion << 6, 0}, make([]byte, 11)...), // RTP shorter than its header
		},
		"unknown_track": {append([]byte{FrameVersion << 6, 99}, make([]byte, 100)...)},
		"too_large":     {append([]byte{FrameVersion << 6, 0}, make([]byte, MaxRTPSize+1)...)},
	}
	want := map[string]uint64{}
	for reason, dgs := range bad {
		for _, d := range dgs {
			if err := la.conn.SendDatagram(d); err != nil {
				t.Logf("%s datagram of %d bytes not sendable: %v", reason, len(d), err)
				continue
			}
			want[reason]++
		}
	}
	waitFor(t, "bad datagrams counted", func() bool {
		now := b.relay.Stats().Drops
		for reason, n := range want {
			if now[reason]-before[reason] < n {
				return false
			}
		}
		return true
	})
	mark := o.write()
	waitFor(t, "media still flowing", func() bool { o.write(); return s.hasAfter(mark) })

	// The sender refuses an oversized RTP packet itself.
	la.sendRTP(0, 0, make([]byte, MaxRTPSize+1))
	if a.relay.Stats().Drops["too_large"] != 1 {
		t.Fatalf("sender drops: %v", a.relay.Stats().Drops)
	}

	// Malformed control messages: each closes the a-b link only.
	openedBC := linkTo(c, "b")
	for name, raw := range map[string][]byte{
		"unknown essential type": {0x42, 0, 0},
		"truncated body":         {byte(MsgRoomAttach), 0, 2, 5, 'x'},
		"oversized room message": append([]byte{byte(MsgRoomMessage), 0xea, 0x66, 1, 'c', 0xe1, 0xd4, 0x03}, make([]byte, 60001)...),
		"second hello":           {byte(MsgHello), 0, 3, 1, 1, 'a'},
	} {
		la := linkTo(a, "b")
		badBefore := b.relay.Stats().Drops["bad_control"]
		if _, err := la.out.Write(raw); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		waitFor(t, name+": link closed and counted", func() bool {
			return b.relay.Stats().Drops["bad_control"] == badBefore+1 && linkTo(a, "b") != la
		})
		waitFor(t, name+": link back", func() bool { return linkTo(a, "b") != nil && linkTo(b, "a") != nil })
	}
	if linkTo(c, "b") != openedBC {
		t.Fatal("the b-c link was closed by a's malformed control messages")
	}
	mark = o.write()
	waitFor(t, "media after the control errors", func() bool { o.write(); return s.hasAfter(mark) })
}
