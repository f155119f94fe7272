package bridge

import (
	"fmt"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// audioLevelURI is the RFC 6464 client-to-mixer audio level extension.
const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// codecs the bridge accepts and forwards. The same payload types are used on
// both PeerConnections so a downtrack can take its publisher's codec as is.
func codecs(fb []webrtc.RTCPFeedback) []struct {
	p    webrtc.RTPCodecParameters
	kind webrtc.RTPCodecType
} {
	v := func(pt uint8, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: fb,
			},
			PayloadType: webrtc.PayloadType(pt),
		}
	}
	type c = struct {
		p    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}
	return []c{
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
				SDPFmtpLine: "minptime=10;useinbandfec=1",
			},
			PayloadType: 111,
		}, webrtc.RTPCodecTypeAudio},
		{v(96, webrtc.MimeTypeVP8, ""), webrtc.RTPCodecTypeVideo},
		{v(98, webrtc.MimeTypeVP9, "profile-id=0"), webrtc.RTPCodecTypeVideo},
		{v(102, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"), webrtc.RTPCodecTypeVideo},
		{v(125, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"), webrtc.RTPCodecTypeVideo},
		{v(112, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"), webrtc.RTPCodecTypeVideo},
		{v(45, webrtc.MimeTypeAV1, ""), webrtc.RTPCodecTypeVideo},
	}
}

// newMediaEngine registers the codecs with the RTCP feedback of one side.
//
// Publisher side: transport-cc (the bridge sends TWCC feedback, the
// publisher's congestion control runs on it), NACK, PLI, FIR.
// Subscriber side: goog-remb (the subscriber estimates the bandwidth and
// sends REMB, which picks its simulcast layers; no per-packet work on the
// bridge), NACK, PLI, FIR.
func newMediaEngine(pub bool) (*webrtc.MediaEngine, error) {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if pub {
		fb = append(fb, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
	} else {
		fb = append(fb, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBGoogREMB})
	}
	m := &webrtc.MediaEngine{}
	for _, c := range codecs(fb) {
		p := c.p
		if c.kind == webrtc.RTPCodecTypeAudio {
			if pub {
				p.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
			} else {
				p.RTCPFeedback = nil
			}
		}
		if err := m.RegisterCodec(p, c.kind); err != nil {
			return nil, fmt.Errorf("register codec %s: %w", p.MimeType, err)
		}
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{audioLevelURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
	}
	if pub {
		exts = append(exts,
			struct {
				uri  string
				kind webrtc.RTPCodecType
			}{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
			struct {
				uri  string
				kind webrtc.RTPCodecType
			}{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
			struct {
				uri  string
				kind webrtc.RTPCodecType
			}{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo},
			struct {
				uri  string
				kind webrtc.RTPCodecType
			}{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio},
		)
	}
	for _, e := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, fmt.Errorf("register header extension %s: %w", e.uri, err)
		}
	}
	return m, nil
}

// newSettingEngine configures ICE and DTLS for every PeerConnection of the
// bridge: all media on the one UDP socket (and ICE-TCP), host candidates
// only (no STUN server is ever contacted), mDNS off, AES-GCM SRTP first.
//
// The bridge dials nobody (DESIGN.md section 3). Active ICE-TCP is off on
// both PeerConnections (pion dials a remote "tcptype passive" candidate
// otherwise, even in lite mode).
//
// With lite (the publisher PeerConnection, which the client offers and
// controls anyway) the bridge runs ICE-lite (RFC 8445 section 2.5): it
// answers the client's connectivity checks and sends none, so no remote
// candidate, whatever address it names, makes the node send a packet.
//
// Without lite (the subscriber PeerConnection, which the bridge offers) it
// is the full, controlling agent and sends checks to the remote candidates
// that Config.AllowRemoteCandidate lets through, relayed ones included
// (checkRemoteCandidate): an ICE-lite offerer left a browser that has no
// camera or microphone, and so only relayed and obfuscated candidates,
// without media in 2 of 3 runs of the e2e test, and pion clients connected
// 200–500 ms later (they nominate on their 200 ms tick instead of at the
// bridge's triggered check). pion waits 2 s before it nominates a pair
// with a relayed candidate, in case a direct one works; the subscriber
// agent waits nothing, and the participant holds the client's relayed
// candidates back instead, only while a direct path may still win
// (relayhold.go): a TURN-only participant gets its first frame without a
// wait, and a direct path that works still wins.
//
// With Config.PublicIPs, every host candidate's address is replaced by the
// public addresses of its family, and the families without one are not
// gathered; the participant's localCandidate filter drops anything else, so
// no interface address of the node goes out (see advertised).
func (b *Bridge) newSettingEngine(udpMux ice.UDPMux, tcpMux ice.TCPMux, lite bool) (webrtc.SettingEngine, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = b.lf
	se.SetLite(lite)
	if !lite {
		se.SetRelayAcceptanceMinWait(0) // relayhold.go waits instead
	}
	se.DisableActiveTCP(true)
	if !lite {
		// The subscriber side carries the forwarded media: its RTP
		// leaves in batches (batch.go).
		udpMux = b.batchUDPMux(udpMux)
	}
	se.SetICEUDPMux(udpMux)
	v4, v6 := true, true
	if len(b.public) > 0 {
		v4, v6 = false, false
		for _, ip := range b.public {
			v4, v6 = v4 || ip.Is4(), v6 || ip.Is6()
		}
		external := make([]string, len(b.public))
		for i, ip := range b.public {
			external[i] = ip.String()
		}
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        external,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return se, fmt.Errorf("public IPs: %w", err)
		}
	}
	var networks []webrtc.NetworkType
	if v4 {
		networks = append(networks, webrtc.NetworkTypeUDP4)
	}
	if v6 {
		networks = append(networks, webrtc.NetworkTypeUDP6)
	}
	if tcpMux != nil {
		se.SetICETCPMux(tcpMux)
		if v4 {
			networks = append(networks, webrtc.NetworkTypeTCP4)
		}
		if v6 {
			networks = append(networks, webrtc.NetworkTypeTCP6)
		}
	}
	se.SetNetworkTypes(networks)
	se.SetIncludeLoopbackCandidate(b.cfg.IncludeLoopback)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSRTPProtectionProfiles(
		dtls.SRTP_AEAD_AES_128_GCM,
		dtls.SRTP_AEAD_AES_256_GCM,
		dtls.SRTP_AES128_CM_HMAC_SHA1_80,
	)
	return se, nil
}

// subAPI makes the subscriber side's webrtc.API of one participant: the
// bridge's settings, and the participant's DTLS tap (thinwrite.go), which
// is why each participant has its own.
type subAPI struct {
	se webrtc.SettingEngine
	me *webrtc.MediaEngine // copied by every NewPeerConnection
}

// forTap returns an API whose DTLS handshakes report to t.
func (s *subAPI) forTap(t *dtlsTap) *webrtc.API {
	se := s.se
	se.SetDTLSKeyLogWriter(t)
	se.SetDTLSServerHelloMessageHook(t.serverHello)
	// No interceptor on the subscriber side: forwarded packets go from
	// the DownTrack to SRTP directly, and the bridge writes the sender
	// reports itself (senderreport.go).
	return webrtc.NewAPI(webrtc.WithMediaEngine(s.me), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// newAPIs builds the publisher-side webrtc.API and the subscriber side's
// maker of APIs.
func (b *Bridge) newAPIs(pubSE, subSE webrtc.SettingEngine) (pub *webrtc.API, sub *subAPI, err error) {
	pm, err := newMediaEngine(true)
	if err != nil {
		return nil, nil, err
	}
	pr := &interceptor.Registry{}
	pr.Add(attrReuserFactory{}) // first: innermost, so it sees each packet before the others
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(b.lf))
	if err != nil {
		return nil, nil, err
	}
	pr.Add(lazyFactory{gen}) // their tickers only where something is published (lazyrtcp.go)
	rr, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(b.lf))
	if err != nil {
		return nil, nil, err
	}
	pr.Add(lazyFactory{rr})
	tw, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(b.lf))
	if err != nil {
		return nil, nil, err
	}
	pr.Add(tw)
	pub = webrtc.NewAPI(webrtc.WithMediaEngine(pm), webrtc.WithSettingEngine(pubSE), webrtc.WithInterceptorRegistry(pr))

	sm, err := newMediaEngine(false)
	if err != nil {
		return nil, nil, err
	}
	return pub, &subAPI{se: subSE, me: sm}, nil
}
