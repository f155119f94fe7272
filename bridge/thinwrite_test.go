package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// dtlsPair runs one real DTLS handshake over loopback UDP, the server
// tapped as the bridge's subscriber side is, and returns the tap and the
// client's view of the session.
func dtlsPair(t *testing.T, suite dtls.CipherSuiteID, profile dtls.SRTPProtectionProfile) (*dtlsTap, dtls.State) {
	t.Helper()
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tap := &dtlsTap{}
	opts := []dtls.ServerOption{
		dtls.WithCertificates(cert),
		dtls.WithSRTPProtectionProfiles(profile),
		dtls.WithCipherSuites(suite),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithKeyLogWriter(tap),
		dtls.WithServerHelloMessageHook(tap.serverHello),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srvDone := make(chan error, 1)
	var srv *dtls.Conn
	go func() {
		var err error
		srv, err = dtls.ServerWithOptions(&connectedUDP{UDPConn: ln, peer: cl.LocalAddr()}, cl.LocalAddr(), opts...)
		if err == nil {
			err = srv.HandshakeContext(ctx)
		}
		srvDone <- err
	}()
	cli, err := dtls.ClientWithOptions(&connectedUDP{UDPConn: cl, peer: ln.LocalAddr()}, ln.LocalAddr(),
		dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithCipherSuites(suite))
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-srvDone; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close(); _ = srv.Close() })
	st, ok := cli.ConnectionState()
	if !ok {
		t.Fatal("no client state")
	}
	// The tap's exporter equals the server's own.
	sst, _ := srv.ConnectionState()
	want, err := sst.ExportKeyingMaterial(srtpExporterLabel, nil, 60)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tap.ExportKeyingMaterial(srtpExporterLabel, nil, 60)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("tap exports %x (%v), the DTLS state %x", got, err, want)
	}
	return tap, st
}

// connectedUDP is a UDP socket that sends to one peer, as pion's ICE conn
// hands DTLS one.
type connectedUDP struct {
	*net.UDPConn
	peer net.Addr
}

func (c *connectedUDP) WriteTo(p []byte, _ net.Addr) (int, error) {
	return c.UDPConn.WriteTo(p, c.peer)
}

// TestDTLSTapKeys: from what pion's key log and ServerHello hook tell it,
// the tap derives the keys the DTLS state exports, for each SRTP profile
// the bridge offers and the cipher suites WebRTC peers use (SHA-256 and
// SHA-384 PRFs); a packet the bridge's context protects is opened by the
// peer's context, derived by srtp from the peer's own DTLS state.
func TestDTLSTapKeys(t *testing.T) {
	for _, tc := range []struct {
		suite   dtls.CipherSuiteID
		profile dtls.SRTPProtectionProfile
	}{
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AEAD_AES_128_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.SRTP_AEAD_AES_256_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	} {
		t.Run(fmt.Sprintf("%s/%#04x", tls.CipherSuiteName(uint16(tc.suite)), uint16(tc.profile)), func(t *testing.T) {
			tap, st := dtlsPair(t, tc.suite, tc.profile)
			local, err := tap.localContext()
			if err != nil {
				t.Fatal(err)
			}
			prof, _ := srtpProfile(tc.profile)
			peer := srtp.Config{Profile: prof}
			if err := peer.ExtractSessionKeysFromDTLS(&st, true); err != nil {
				t.Fatal(err)
			}
			remote, err := srtp.CreateContext(peer.Keys.RemoteMasterKey, peer.Keys.RemoteMasterSalt, prof)
			if err != nil {
				t.Fatal(err)
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 7, Timestamp: 960, SSRC: 42},
				Payload: []byte("forwarded by the thin write path")}
			plain, _ := pkt.Marshal()
			ct, err := local.EncryptRTP(nil, plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(ct, pkt.Payload) {
				t.Fatal("payload not encrypted")
			}
			dec, err := remote.DecryptRTP(nil, ct, nil)
			if err != nil || !bytes.Equal(dec, plain) {
				t.Fatalf("the peer opens %x (%v), want %x", dec, err, plain)
			}
		})
	}
}

// TestDTLSTapWithoutServerHello: a tap that did not see the bridge act as
// the DTLS server has no keys, and says so instead of deriving wrong ones.
func TestDTLSTapWithoutServerHello(t *testing.T) {
	tap := &dtlsTap{}
	_, _ = tap.Write([]byte("CLIENT_RANDOM " + string(bytes.Repeat([]byte("ab"), 32)) + " " + string(bytes.Repeat([]byte("cd"), 48)) + "\n"))
	if _, err := tap.localContext(); err == nil {
		t.Fatal("keys without a ServerHello")
	}
	if _, err := tap.ExportKeyingMaterial(srtpExporterLabel, nil, 56); err == nil {
		t.Fatal("exported without a ServerHello")
	}
}

// TestThinWritePath: with pion clients (which answer as the DTLS client)
// every forwarded packet takes the thin write path and arrives intact;
// a subscriber that makes the bridge the DTLS client still gets
// everything, through pion.
func TestThinWritePath(t *testing.T) {
	b := startBridge(t)
	r := b.NewRoom("thin", RoomEvents{})
	api := clientAPI(t)
	pub := newClient(t, api, r, "alice")
	thin := newClient(t, api, r, "bob")
	viaPion := newClient(t, clientAPI(t, func(se *webrtc.SettingEngine) {
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			t.Fatal(err)
		}
	}), r, "cy")
	pub.publish(nil)
	waitReceives(t, thin, r, 2)
	waitReceives(t, viaPion, r, 2)
	if thin.p.thin.Load() == nil {
		t.Fatal("bob (bridge is the DTLS server) has no thin writer")
	}
	if viaPion.p.thin.Load() != nil {
		t.Fatal("cy (bridge is the DTLS client) has a thin writer")
	}
	for _, c := range []*client{pub, thin, viaPion} {
		c.p.tap.mu.Lock()
		kept := c.p.tap.master != nil || c.p.tap.clientRandom != nil
		c.p.tap.mu.Unlock()
		if kept {
			t.Errorf("%s: the DTLS master secret outlived the key derivation", c.id)
		}
	}
	for _, c := range []*client{thin, viaPion} {
		for _, ti := range r.Tracks() {
			pk, _, bad, _ := c.track(ti.ID).snapshot()
			if pk == 0 || bad != 0 {
				t.Errorf("%s, track %s: %d packets, %d bad", c.id, ti.ID, pk, bad)
			}
		}
	}
	st := b.Stats()
	if st.ThinWrites == 0 || st.ThinWrites >= st.ForwardedPackets {
		t.Errorf("thin writes %d of %d forwarded packets: want some, not all (cy's go through pion)", st.ThinWrites, st.ForwardedPackets)
	}
	if st.Drops.WriteError != 0 {
		t.Errorf("write errors: %+v", st.Drops)
	}
}

// TestThinWriteNoAlloc: the thin path rewrites, protects and batches a
// forwarded packet without allocating, and what leaves the socket is the
// rewritten packet under the subscriber's keys: the subscriber's SSRC and
// payload type, the audio level renumbered, the payload intact.
func TestThinWriteNoAlloc(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var stats counters
	sock := newEgressSock(tx, &stats)
	if sock == nil {
		t.Skip("no batched egress on this platform")
	}
	key, salt := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{9}, 12)
	enc, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	u := testUpTrack(webrtc.RTPCodecTypeAudio, 1)
	var w countingWriter
	dt := testDownTrack(u, &w)
	tw := &thinWriter{sock: sock, stats: &stats, ctx: enc}
	ap := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	tw.dst.Store(&ap)
	dt.sub.thin.Store(tw)

	pb := &packetBuilder{buf: make([]byte, 1500)}
	pb.build(100, 0, audioPayload(7), true)
	pkt := append([]byte(nil), pb.buf[:pb.pkt.MarshalSize()]...)
	var hdr rtp.Header
	seq := uint16(100)
	forward := func() {
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		seq++
		u.handlePacket(0, pkt, &hdr)
		out.begin()
		dt.drain()
		out.end()
	}
	forward()
	allocs := testing.AllocsPerRun(200, forward)
	if allocs != 0 {
		t.Errorf("%.1f allocations per forwarded packet, want 0", allocs)
	}
	if w.packets != 0 {
		t.Errorf("%d packets went through pion's writer", w.packets)
	}
	if got := stats.thinWrites.Load(); got != 202 {
		t.Errorf("%d thin writes, want 202", got)
	}
	buf := make([]byte, 1500)
	_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	var prev uint16
	for i := 0; i < 202; i++ {
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		plain, err := dec.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(plain); err != nil {
			t.Fatal(err)
		}
		if p.SSRC != 0xdeadbeef || p.PayloadType != 100 || !checkAudioPayload(p.Payload) {
			t.Fatalf("packet %d: %+v", i, p.Header)
		}
		if lv := p.GetExtension(3); len(lv) != 1 || lv[0] != 0x80|30 || p.GetExtension(1) != nil {
			t.Fatalf("packet %d: extensions %+v, want only the level as ID 3", i, p.Extensions)
		}
		if i > 0 && p.SequenceNumber != prev+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.SequenceNumber, prev)
		}
		prev = p.SequenceNumber
	}
}
