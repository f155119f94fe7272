package bridge

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The thin write path: a forwarded packet goes from the DownTrack to SRTP
// and into the egress batch, and nothing else.
//
// Through pion, each forwarded packet passed the RTPSender's writer, the
// SRTP session's write stream and its bookkeeping, a copy into the
// session's buffer, the PeerConnection's mux endpoint and the ICE conn
// (which reads the clock per packet) before it reached the batch: about a
// seventh of the node's CPU in the livestream profile. pion keeps ICE,
// DTLS, RTCP and everything else; only forwarded RTP takes the thin path.
//
// It needs the subscriber PeerConnection's SRTP keys, which pion derives
// from the DTLS handshake and does not expose. Each subscriber
// PeerConnection gets its own webrtc.API whose DTLS settings carry a tap
// (dtlsTap): pion's key-log writer hands it the client random and the
// master secret, and the ServerHello hook the server random, the cipher
// suite and the SRTP protection profile. With those the keys are derived
// exactly as pion derives them (RFC 5764 section 4.2, the TLS exporter of
// RFC 5705). The secrets stay in the participant's memory; nothing is
// logged or written anywhere.
//
// The tap sees the ServerHello only when the bridge is the DTLS server,
// which it is with browsers and pion clients (they answer the bridge's
// offer with a=setup:active). When it is the client, or the selected
// candidate pair is not a UDP one, or its remote address is not an IP
// address, the participant's packets go through pion as before.

// srtpExporterLabel is the exporter label of DTLS-SRTP (RFC 5764).
const srtpExporterLabel = "EXTRACTOR-dtls_srtp"

// dtlsTap collects, from one subscriber PeerConnection's DTLS handshake,
// what the SRTP keys are derived from.
type dtlsTap struct {
	mu           sync.Mutex
	clientRandom []byte // from the key log
	master       []byte
	serverRandom []byte // from the ServerHello: the bridge is the server
	suite        dtls.CipherSuiteID
	profile      dtls.SRTPProtectionProfile
}

// Write takes pion's key log: one line "CLIENT_RANDOM <hex> <hex>" per
// handshake. It is an io.Writer only for pion's sake.
func (t *dtlsTap) Write(p []byte) (int, error) {
	f := strings.Fields(string(p))
	if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
		return len(p), nil
	}
	cr, err1 := hex.DecodeString(f[1])
	ms, err2 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil || len(cr) != 32 || len(ms) != 48 {
		return len(p), nil
	}
	t.mu.Lock()
	t.clientRandom, t.master = cr, ms
	t.mu.Unlock()
	return len(p), nil
}

// serverHello is the DTLS ServerHello hook: it notes what the bridge, as
// the DTLS server, chose, and returns the message unchanged.
func (t *dtlsTap) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.serverRandom = append(t.serverRandom[:0], r[:]...)
	t.suite = 0
	if m.CipherSuiteID != nil {
		t.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	t.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			t.profile = dtls.SRTPProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	return &m
}

var errNoKeys = errors.New("no DTLS-SRTP keys: the bridge was not the DTLS server, or the handshake is not done")

// prfHash returns the PRF hash of a cipher suite a WebRTC peer negotiates,
// or nil for one the tap does not know.
func prfHash(id dtls.CipherSuiteID) func() hash.Hash {
	switch id { //nolint:exhaustive
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, dtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return sha256.New
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	}
	return nil
}

// ExportKeyingMaterial is the TLS 1.2 exporter (RFC 5705) without a
// context, as pion's dtls.State computes it: srtp.Config takes it to
// derive the session's keys.
func (t *dtlsTap) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := prfHash(t.suite)
	if len(context) != 0 || h == nil || t.master == nil || t.serverRandom == nil {
		return nil, errNoKeys
	}
	seed := make([]byte, 0, len(label)+64)
	seed = append(append(append(seed, label...), t.clientRandom...), t.serverRandom...)
	return prf.PHash(t.master, seed, length, h)
}

// forget wipes the handshake's secrets: called once the keys are derived
// (or cannot be), so that the master secret does not outlive its use.
func (t *dtlsTap) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.master)
	clear(t.clientRandom)
	clear(t.serverRandom)
	t.master, t.clientRandom, t.serverRandom = nil, nil, nil
}

// srtpProfile maps the negotiated DTLS-SRTP profile to srtp's; false for
// none or one the bridge does not offer.
func srtpProfile(p dtls.SRTPProtectionProfile) (srtp.ProtectionProfile, bool) {
	switch p { //nolint:exhaustive
	case dtls.SRTP_AEAD_AES_128_GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, true
	case dtls.SRTP_AEAD_AES_256_GCM:
		return srtp.ProtectionProfileAeadAes256Gcm, true
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, true
	}
	return 0, false
}

// localContext returns the SRTP context the bridge encrypts with, the
// server's side of the keys: once the handshake is done, with the bridge as
// the DTLS server.
func (t *dtlsTap) localContext(opts ...srtp.ContextOption) (*srtp.Context, error) {
	t.mu.Lock()
	dp := t.profile
	t.mu.Unlock()
	prof, ok := srtpProfile(dp)
	if !ok {
		return nil, errNoKeys
	}
	cfg := srtp.Config{Profile: prof}
	if err := cfg.ExtractSessionKeysFromDTLS(t, false); err != nil {
		return nil, err
	}
	return srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, prof, opts...)
}

// maxSRTPOverhead is the most SRTP adds to a packet: the AES-GCM tag,
// and an empty extension header that RFC 9335 may insert.
const maxSRTPOverhead = 16 + 4

// thinWriter is a subscriber's thin write path: its SRTP context, the
// socket of the egress batch and the remote address of the selected
// candidate pair.
type thinWriter struct {
	sock  *egressSock
	stats *counters
	dst   atomic.Pointer[netip.AddrPort] // nil: no UDP pair, write through pion

	// mu serializes encryption: a subscriber's DownTracks may be written
	// by several writer groups at once, and the context keeps per-SSRC
	// rollover state. Never held while writing to the network.
	mu  sync.Mutex
	ctx *srtp.Context
	hdr rtp.Header // the context's scratch header, under mu
}

// write protects the RTP packet plain (a marshalled header and its
// payload, with room for the tag behind it in its array) in place and
// hands it to the egress batch. taken false: the writer cannot send it (no
// usable address), and the caller writes it through pion; sent false: it
// was taken and dropped, counted as a write error.
func (w *thinWriter) write(plain []byte) (taken, sent bool) {
	ap := w.dst.Load()
	if ap == nil || len(plain)+maxSRTPOverhead > cap(plain) || len(plain)+maxSRTPOverhead > slotSize {
		return false, false
	}
	w.mu.Lock()
	ct, err := w.ctx.EncryptRTP(plain[:0], plain, &w.hdr)
	w.mu.Unlock()
	if err != nil {
		w.stats.dropWriteError.Add(1)
		return true, false
	}
	if !out.offer(w.sock, ct, *ap) {
		// No writer round open (a test's drain): send it now.
		if err := w.sock.sendNow(ct, *ap); err != nil {
			w.stats.dropWriteError.Add(1)
			return true, false
		}
	}
	w.stats.thinWrites.Add(1)
	return true, true
}

// setPair points the writer at the selected candidate pair's remote
// address, or back at pion when the pair is not one it can send to: not
// UDP, or an address that is not an IP address.
func (w *thinWriter) setPair(pair *webrtc.ICECandidatePair) {
	w.dst.Store(w.pairAddr(pair))
}

// pairAddr is the remote address of pair if the writer can send to it,
// else nil.
func (w *thinWriter) pairAddr(pair *webrtc.ICECandidatePair) *netip.AddrPort {
	if pair == nil || pair.Local == nil || pair.Remote == nil ||
		pair.Local.Protocol != webrtc.ICEProtocolUDP || pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		return nil
	}
	a, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return nil
	}
	ap := netip.AddrPortFrom(a, pair.Remote.Port)
	if !w.sock.canSend(ap) {
		return nil
	}
	return &ap
}

// startThin sets up the subscriber PeerConnection's thin write path once it
// is connected (the DTLS handshake is done). Where it cannot, the
// participant's packets keep going through pion. Either way the tap's
// secrets are wiped.
func (p *Participant) startThin() {
	b := p.room.b
	if p.tap == nil {
		return
	}
	if b.egressSock == nil {
		p.tap.forget()
		return
	}
	var opts []srtp.ContextOption
	if rd := p.subPC.CurrentRemoteDescription(); rd != nil && strings.Contains(rd.SDP, "a=cryptex") {
		// The subscriber takes RFC 9335 header encryption: pion would
		// use it too.
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	ctx, err := p.tap.localContext(opts...)
	p.tap.forget()
	if err != nil {
		p.log.Debug("thin write path off", "err", err)
		return
	}
	w := &thinWriter{sock: b.egressSock, stats: &b.stats, ctx: ctx}
	ice := p.subPC.SCTP().Transport().ICETransport()
	ice.OnSelectedCandidatePairChange(w.setPair)
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil {
		return
	}
	w.setPair(pair)
	if !p.closing.Load() {
		p.thin.Store(w)
	}
}

// writeThin writes the packet in dt.buf[:n], whose header dt.hdr has been
// rewritten for the subscriber (hl: the length of the header it came
// with), through the subscriber's thin writer: the new header goes right
// before the payload and the packet is protected in place. taken false:
// the subscriber has no thin writer or it cannot send this packet, and
// dt.buf[hl:n] is untouched for pion.
func (dt *DownTrack) writeThin(hl, n int) (taken, sent bool) {
	if dt.sub == nil {
		return false, false
	}
	tw := dt.sub.thin.Load()
	if tw == nil {
		return false, false
	}
	start := hl - dt.hdr.MarshalSize()
	if start < 0 {
		return false, false
	}
	if _, err := dt.hdr.MarshalTo(dt.buf[start:hl]); err != nil {
		return false, false
	}
	return tw.write(dt.buf[start:n])
}
