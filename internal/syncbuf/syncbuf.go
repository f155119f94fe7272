// Package syncbuf is a bytes.Buffer safe for concurrent writers: tests hand
// it to a slog handler, a library logger or a child process's stderr and
// read what was written.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from many goroutines. The zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
