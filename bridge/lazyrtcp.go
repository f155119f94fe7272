package bridge

import (
	"sync"

	"github.com/pion/interceptor"
)

// lazyRTCP delays an interceptor's BindRTCPWriter until the
// PeerConnection's first remote stream, for pion's NACK generator and
// receiver-report interceptors on the publisher side.
//
// pion binds the RTCP writer when it creates the PeerConnection, and these
// two start a goroutine with a ticker there (the NACK generator's every
// 100 ms, the receiver reports' every second), whether or not anything is
// ever published. Every participant has a publisher PeerConnection, so a
// node with 50 listeners and one speaker woke ~560 times a second for
// tickers with nothing to do, each wake-up a context switch of an
// otherwise idle thread. Bound lazily, only publishers' connections tick.
//
// Only for interceptors whose BindRTCPWriter returns the writer it was
// given (both do): the wrapper returns it before the inner one has seen it.
type lazyRTCP struct {
	interceptor.Interceptor
	mu    sync.Mutex
	w     interceptor.RTCPWriter // from BindRTCPWriter, until bound
	bound bool
}

// lazyFactory makes lazyRTCP wrappers of f's interceptors.
type lazyFactory struct{ f interceptor.Factory }

func (l lazyFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	in, err := l.f.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &lazyRTCP{Interceptor: in}, nil
}

// BindRTCPWriter keeps the writer for the first remote stream.
func (l *lazyRTCP) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	l.mu.Lock()
	if l.bound {
		l.mu.Unlock()
		return l.Interceptor.BindRTCPWriter(w)
	}
	l.w = w
	l.mu.Unlock()
	return w
}

// BindRemoteStream binds the kept writer first, once.
func (l *lazyRTCP) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	l.mu.Lock()
	if !l.bound && l.w != nil {
		l.bound = true
		w := l.w
		l.w = nil
		l.Interceptor.BindRTCPWriter(w)
	}
	l.mu.Unlock()
	return l.Interceptor.BindRemoteStream(info, r)
}
