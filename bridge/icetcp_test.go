package bridge

import (
	"context"
	"net"
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// TestICETCP: a publisher that can only do ICE-TCP reaches the bridge's
// TCP listener; a UDP subscriber receives its tracks.
func TestICETCP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	before := goroutines()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{UDPConn: conn, TCPListener: ln, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	tcpAPI := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))

	r := b.NewRoom("room-tcp", RoomEvents{})
	pub := newClient(t, tcpAPI, r, "tcp-publisher")
	sub := newClient(t, clientAPI(t), r, "udp-subscriber")
	pub.kfEvery = 10
	pub.publish(nil)
	waitReceives(t, sub, r, 2)
	pair, err := pub.pub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	if pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("publisher's selected pair is %s, want TCP", pair.Local.Protocol)
	}
	pub.close()
	sub.close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, before)
}
