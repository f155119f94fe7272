package bridge

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// sockets opens a UDP socket and a TCP listener on loopback.
func sockets(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
	})
	return udp, tcp
}

// closed reports whether both sockets are closed.
func closed(udp net.PacketConn, tcp net.Listener) bool {
	_ = udp.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, _, uerr := udp.ReadFrom(make([]byte, 1))
	if tl, ok := tcp.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(time.Millisecond))
	}
	_, terr := tcp.Accept()
	return errors.Is(uerr, net.ErrClosed) && errors.Is(terr, net.ErrClosed)
}

func TestConfigValidate(t *testing.T) {
	udp, _ := sockets(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"zero value", Config{}, ErrNoUDPConn},
		{"defaults", Config{UDPConn: udp}, nil},
		{"public IPs", Config{UDPConn: udp, PublicIPs: []string{"203.0.113.7", "2001:db8::7"}}, nil},
		{"public hostname", Config{UDPConn: udp, PublicIPs: []string{"example.com"}}, ErrInvalidConfig},
		{"public unspecified", Config{UDPConn: udp, PublicIPs: []string{"0.0.0.0"}}, ErrInvalidConfig},
		{"public with zone", Config{UDPConn: udp, PublicIPs: []string{"fe80::1%eth0"}}, ErrInvalidConfig},
		{"negative track cap", Config{UDPConn: udp, MaxTracksPerParticipant: -1}, ErrInvalidConfig},
		{"huge track cap", Config{UDPConn: udp, MaxTracksPerParticipant: 1000}, ErrInvalidConfig},
	} {
		err := tc.cfg.withDefaults().Validate()
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: Validate: %v, want %v", tc.name, err, tc.want)
		}
	}
	if c := (Config{}).withDefaults(); c.MaxTracksPerParticipant != DefaultMaxTracksPerParticipant || c.Logger == nil {
		t.Errorf("withDefaults: %+v", c)
	}
}

// TestNewOwnsSockets: New closes the sockets it was given when it fails,
// and Close closes them whether or not the bridge ever started; Run's end
// closes them too.
func TestNewOwnsSockets(t *testing.T) {
	udp, tcp := sockets(t)
	if _, err := New(Config{UDPConn: udp, TCPListener: tcp, PublicIPs: []string{"not an address"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New: %v, want ErrInvalidConfig", err)
	}
	if !closed(udp, tcp) {
		t.Error("New failed and left the sockets open")
	}

	udp, tcp = sockets(t)
	b, err := New(Config{UDPConn: udp, TCPListener: tcp, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if !closed(udp, tcp) {
		t.Error("Close of a bridge that never started left the sockets open")
	}

	udp, tcp = sockets(t)
	b, err = New(Config{UDPConn: udp, TCPListener: tcp, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	if _, err := b.NewRoom("room-sockets", RoomEvents{}).Join("p", ParticipantEvents{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !closed(udp, tcp) {
		t.Error("Run ended and left the sockets open")
	}
}
