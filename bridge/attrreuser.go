package bridge

import (
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerCache is the innermost receive-side interceptor of the publisher
// API. pion's NACK generator, receiver-report and TWCC interceptors each
// need a received packet's RTP header, and the first of them to see the
// packet makes an interceptor.Attributes map and a new rtp.Header for it:
// three heap allocations per packet received from a publisher. headerCache
// hands them instead a map and a header kept per stream and reused, the
// header parsed in place (rtp.Header.Unmarshal reuses its slices), under
// the key interceptor.Attributes.GetRTPHeader itself uses — learnt from the
// stream's first packet, which is parsed the ordinary way.
//
// Safe because each stream is read by one goroutine at a time and none of
// those interceptors keeps the map or reads the header after its Read
// returns (the TWCC one passes the pointer on but never reads it). Repair
// (RTX) streams are left alone: pion hands their attributes to another
// goroutine; the bridge does not negotiate RTX anyway. If a packet's header
// does not parse, the interceptors get no map and fail on it as before.
type headerCache struct {
	interceptor.NoOp
}

type headerCacheFactory struct{}

func (headerCacheFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerCache{}, nil
}

func (*headerCache) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if strings.HasSuffix(strings.ToLower(info.MimeType), "/rtx") {
		return reader
	}
	attr := interceptor.Attributes{}
	var hdr *rtp.Header
	var key any // the interceptor package's key for the header
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, got, err := reader.Read(b, a)
		if err != nil || got != nil {
			return n, got, err
		}
		clear(attr)
		if key == nil {
			h, err := attr.GetRTPHeader(b[:n])
			if err != nil {
				return n, nil, nil
			}
			for k := range attr {
				key = k
			}
			hdr = h
			return n, attr, nil
		}
		if _, err := hdr.Unmarshal(b[:n]); err != nil {
			return n, nil, nil
		}
		attr[key] = hdr
		return n, attr, nil
	})
}
