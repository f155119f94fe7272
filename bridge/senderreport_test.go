package bridge

import (
	"testing"
	"time"
)

// TestSenderReportState: a report carries the packets and payload bytes
// noted, and the newest packet's RTP timestamp moved on by the time since
// it was written at the clock rate; retransmissions count but do not move
// the timestamp; nothing is reported before the first packet.
func TestSenderReportState(t *testing.T) {
	var s srState
	now := time.Now()
	if _, ok := s.report(7, 90000, now); ok {
		t.Fatal("a report before any packet")
	}
	s.note(1000, 100, true)
	s.note(1000, 200, true) // same frame: the time stays the first packet's
	s.note(500, 50, false)  // a retransmission
	at := now.Add(-100 * time.Millisecond)
	s.at = at // as if the frame was written 100 ms before now
	sr, ok := s.report(7, 90000, now)
	if !ok {
		t.Fatal("no report")
	}
	if sr.SSRC != 7 || sr.PacketCount != 3 || sr.OctetCount != 350 {
		t.Fatalf("report %+v: want SSRC 7, 3 packets, 350 octets", sr)
	}
	if want := uint32(1000 + 9000); sr.RTPTime != want {
		t.Fatalf("RTP time %d, want %d (1000 + 100 ms at 90 kHz)", sr.RTPTime, want)
	}
	if got, want := sr.NTPTime, ntpTime(now); got != want {
		t.Fatalf("NTP time %x, want %x", got, want)
	}
	// A new frame moves the timestamp and its time.
	s.note(4000, 10, true)
	if s.ts != 4000 || !s.at.After(at) {
		t.Fatalf("after a new frame: ts %d at %v", s.ts, s.at)
	}
}

// TestNTPTime: the Unix epoch is 2,208,988,800 s after NTP's; half a
// second is half of the 32-bit fraction.
func TestNTPTime(t *testing.T) {
	if got, want := ntpTime(time.Unix(0, 0)), uint64(2208988800)<<32; got != want {
		t.Fatalf("ntpTime(Unix 0) = %x, want %x", got, want)
	}
	if got, want := ntpTime(time.Unix(1, 5e8)), (uint64(2208988801)<<32)|(1<<31); got != want {
		t.Fatalf("ntpTime(1.5 s) = %x, want %x", got, want)
	}
}
