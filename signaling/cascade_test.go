package signaling_test

import (
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestCascadePeerLost: participants another bridge reported stay in the
// roster while that bridge's link is down for less than PeerGrace (the
// link came back), and leave it once the link stays down for PeerGrace. The
// relay's callbacks are called directly here; TestMeetingAcrossNodes in
// cmd/meshmeet runs them over a real relay.
func TestCascadePeerLost(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) { c.PeerGrace = 300 * time.Millisecond })
	room := roomname.New()
	a := join(t, n, room, client.Options{Name: "A"})
	conf := conferenceID(t, n, room)

	n.Srv.RoomMessage(conf, "other", []byte(`{"v":1,"t":"roster","g":1,"l":true,"p":[{"id":"remote1","name":"R","muted":{"audio":false,"video":false}}]}`))
	m := nextEvent(t, a, wire.TypeParticipantJoined)
	if len(m.Participants) != 1 || m.Participants[0].ID != "remote1" || m.Participants[0].Name != "R" {
		t.Fatalf("joined: %+v", m.Participants)
	}
	// A bad message is refused without effect.
	n.Srv.RoomMessage(conf, "other", []byte(`{"v":1,"t":"left","id":"remote1","x":1}`))

	// Down, then up within the grace: nothing happens. Then a second remote
	// participant proves the events that follow were handled.
	n.Srv.LinkDown("other")
	n.Srv.LinkUp("other")
	time.Sleep(600 * time.Millisecond) // past PeerGrace: a timer not stopped would fire
	n.Srv.RoomMessage(conf, "other", []byte(`{"v":1,"t":"upsert","p":[{"id":"remote2","name":"S","muted":{"audio":true,"video":false}}]}`))
	m = nextEvent(t, a, wire.TypeParticipantJoined, wire.TypeParticipantLeft)
	if m.Type != wire.TypeParticipantJoined || m.Participants[0].ID != "remote2" {
		t.Fatalf("after a short link break: %s %+v %s", m.Type, m.Participants, m.Participant)
	}

	// Down for good: both leave.
	n.Srv.LinkDown("other")
	gone := map[string]bool{}
	for len(gone) < 2 {
		m := nextEvent(t, a, wire.TypeParticipantLeft)
		gone[m.Participant] = true
	}
	if !gone["remote1"] || !gone["remote2"] {
		t.Fatalf("left: %v", gone)
	}
}
