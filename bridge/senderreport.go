package bridge

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// RTCP sender reports (RFC 3550 section 6.4.1) for what the bridge forwards
// to participants. The bridge writes them itself instead of through pion's
// report.SenderInterceptor: that interceptor sat in every forwarded
// packet's write path (a wrapper call, a lock and time.Now per packet:
// about 5 % of a node's CPU in the audio fan-out profile,
// docs/benchmarks.md "Write path"). Here a DownTrack's writer notes each
// packet it wrote (a lock it alone takes but once a second, and the clock
// read only when the RTP timestamp changes), and the room loop writes one
// compound RTCP packet per subscriber every srInterval.

// srInterval is how often a subscriber gets sender reports, pion's
// interceptor's default.
const srInterval = time.Second

// srState is what a DownTrack's next sender report says.
type srState struct {
	mu      sync.Mutex
	ts      uint32    // RTP timestamp of the newest packet written
	at      time.Time // when the first packet with ts was written
	packets uint32    // RTP packets written, retransmissions included (wraps)
	octets  uint32    // their payload bytes (wraps)
}

// note records a packet of payload bytes written on the subscriber's SSRC;
// newest: it is the newest of the stream (not a retransmission or late).
func (s *srState) note(ts uint32, payload int, newest bool) {
	s.mu.Lock()
	if newest && (ts != s.ts || s.packets == 0) {
		s.ts = ts
		s.at = time.Now()
	}
	s.packets++
	s.octets += uint32(payload)
	s.mu.Unlock()
}

// report is the sender report for ssrc at now, or false before any packet
// with a timestamp. The RTP time is the newest packet's, moved on by the
// time since it was written at the track's clock rate.
func (s *srState) report(ssrc, clockRate uint32, now time.Time) (rtcp.SenderReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packets == 0 || s.at.IsZero() {
		return rtcp.SenderReport{}, false
	}
	elapsed := now.Sub(s.at)
	return rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     s.ts + uint32(elapsed.Seconds()*float64(clockRate)),
		PacketCount: s.packets,
		OctetCount:  s.octets,
	}, true
}

// ntpTime is t as a 64-bit NTP timestamp (seconds since 1900 in the high
// 32 bits, the fraction in the low 32).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900-01-01 to 1970-01-01, in seconds
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

// sendSenderReports writes one RTCP packet with a sender report for every
// track p receives that has forwarded something. Called by the room loop,
// never with a lock held.
func (p *Participant) sendSenderReports(now time.Time) {
	if !p.subReady.Load() {
		return
	}
	p.mu.Lock()
	dts := make([]*DownTrack, 0, len(p.downtracks))
	for _, dt := range p.downtracks {
		dts = append(dts, dt)
	}
	p.mu.Unlock()
	var pkts []rtcp.Packet
	for _, dt := range dts {
		b := dt.bound.Load()
		if b == nil {
			continue
		}
		if sr, ok := dt.sr.report(b.ssrc, dt.clockRate, now); ok {
			pkts = append(pkts, &sr)
		}
	}
	if len(pkts) == 0 {
		return
	}
	// An RTCP packet must fit a datagram: a compound packet per ~40
	// reports (28 bytes each with its header).
	for len(pkts) > 0 {
		n := min(len(pkts), 40)
		_ = p.subPC.WriteRTCP(pkts[:n]) // a closed or unconnected PC: nothing to report to
		pkts = pkts[n:]
	}
}
