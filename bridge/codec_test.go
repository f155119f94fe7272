package bridge

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// codecCase is a video codec with the first payload byte(s) of a keyframe
// and of a delta frame as the bridge's detector reads them.
type codecCase struct {
	mime, fmtp string
	key, delta []byte
}

var codecCases = []codecCase{
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", []byte{0x65}, []byte{0x41}},
	{webrtc.MimeTypeVP9, "profile-id=0", []byte{0x08}, []byte{0x48}},
	{webrtc.MimeTypeAV1, "", []byte{0x18}, []byte{0x10}},
}

// codecPayload is prefix, then 0xcd, frame (4 bytes), 200 bytes frame+i.
func codecPayload(prefix []byte, frame uint32) []byte {
	p := append([]byte(nil), prefix...)
	body := make([]byte, 205)
	body[0] = 0xcd
	binary.BigEndian.PutUint32(body[1:], frame)
	for i := 5; i < len(body); i++ {
		body[i] = byte(frame) + byte(i)
	}
	return append(p, body...)
}

func checkCodecPayload(c codecCase) func([]byte) (bool, bool) {
	return func(p []byte) (bool, bool) {
		n := len(c.key)
		if len(p) != n+205 || p[n] != 0xcd {
			return false, false
		}
		frame := binary.BigEndian.Uint32(p[n+1:])
		for i := 5; i < 205; i++ {
			if p[n+i] != byte(frame)+byte(i) {
				return false, false
			}
		}
		return string(p[:n]) == string(c.key), true
	}
}

// TestCodecs forwards H.264, VP9 and AV1 from a pion publisher to a pion
// subscriber: the subscriber's m-line offers the publisher's codec, a
// keyframe (detected by the bridge from the payload prefix) starts the
// stream, payloads arrive intact.
func TestCodecs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	b := startBridge(t)
	api := clientAPI(t)
	for _, c := range codecCases {
		t.Run(strings.TrimPrefix(c.mime, "video/"), func(t *testing.T) {
			r := b.NewRoom("room-"+c.mime, RoomEvents{})
			defer r.Close()
			pub := newClient(t, api, r, "pub")
			sub := newClient(t, api, r, "sub")
			sub.videoCheck = checkCodecPayload(c)
			defer pub.close()
			defer sub.close()

			tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp}, "video", "pub")
			if err != nil {
				t.Fatal(err)
			}
			sender, err := pub.pub.AddTrack(tr)
			if err != nil {
				t.Fatal(err)
			}
			pub.wg.Add(1)
			go func() {
				defer pub.wg.Done()
				for {
					pkts, _, err := sender.ReadRTCP()
					if err != nil {
						return
					}
					for _, p := range pkts {
						if _, ok := p.(*rtcp.PictureLossIndication); ok {
							pub.wantKF.Store(true)
						}
					}
				}
			}()
			pub.offerPub()
			pub.wg.Add(1)
			go func() {
				defer pub.wg.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for frame := uint32(0); ; frame++ {
					select {
					case <-pub.done:
						return
					case <-tick.C:
					}
					prefix := c.delta
					if pub.wantKF.Swap(false) {
						prefix = c.key
					}
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(frame), Timestamp: frame * 3600, Marker: true}, Payload: codecPayload(prefix, frame)}
					_ = tr.WriteRTP(pkt)
				}
			}()
			waitReceives(t, sub, r, 1)
			codec := ""
			for _, tr := range sub.sub.GetTransceivers() {
				if rc := tr.Receiver(); rc != nil && rc.Track() != nil {
					codec = rc.Track().Codec().MimeType
				}
			}
			if !strings.EqualFold(codec, c.mime) {
				t.Fatalf("subscriber receives %q, want %s", codec, c.mime)
			}
		})
	}
}
