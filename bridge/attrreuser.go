package bridge

import (
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// attrReuser is the innermost receive-side interceptor of the publisher
// API. It caches nothing: it reuses, per stream, the interceptor.Attributes
// map and the rtp.Header that pion's NACK generator, receiver-report and
// TWCC interceptors each need for a received packet. Without it the first
// of them to see a packet makes a new map and a new rtp.Header: three heap
// allocations per packet received from a publisher. attrReuser hands them
// instead a map and a header kept per stream, the header parsed in place
// (rtp.Header.Unmarshal reuses its slices), under the key
// interceptor.Attributes.GetRTPHeader itself uses — learnt from the
// stream's first packet, which is parsed the ordinary way.
//
// Safe because each stream is read by one goroutine at a time and none of
// those interceptors keeps the map or reads the header after its Read
// returns (the TWCC one passes the pointer on but never reads it). Repair
// (RTX) streams are left alone: pion hands their attributes to another
// goroutine; the bridge does not negotiate RTX anyway. If a packet's header
// does not parse, the interceptors get no map and fail on it as before.
type attrReuser struct {
	interceptor.NoOp
}

type attrReuserFactory struct{}

func (attrReuserFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &attrReuser{}, nil
}

func (*attrReuser) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
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
