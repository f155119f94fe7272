package signaling

import (
	"context"
	"net/http"
)

// Server is the signaling role of a node. It is an http.Handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New validates cfg. It starts nothing.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	return s, nil
}

// Run blocks until ctx ends, then closes every session.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }
