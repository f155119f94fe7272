package signaling

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/web"
)

// Server is the signaling role of a node. It is an http.Handler.
type Server struct {
	cfg  Config // static after New
	log  *slog.Logger
	mux  *http.ServeMux
	salt []byte // per-process salt of room log IDs; static after New

	assets fs.FS  // the web client; static after New
	words  []byte // /api/words body; static after New

	events  *eventQueue // room events from the bridge, handled by Run
	sources *sources    // per-source limits
	plc     placeState  // placement at join (place.go)
	guesses *guesses    // password guessing limits (password.go)

	chatBytes   atomic.Int64  // chatCost of every room's history
	chatRefused atomic.Uint64 // chat refused by a room's budget
	chatDropped atomic.Uint64 // chat not queued for a slow reader
	cascadeBad  atomic.Uint64 // cascade messages refused or over a bound
	moves       moves         // draining and resume across nodes (drain.go, resume.go)
	refusals    atomic.Uint64 // joins refused (refuse.go)
	ready       atomic.Bool   // accepting participants
	done        chan struct{}
	doneOnce    sync.Once
	conns       sync.WaitGroup // WebSocket handlers

	// mu guards the following fields.
	mu          sync.Mutex
	rooms       map[mesh.RoomKey]*room // rooms with participants on this node
	conferences map[string]*room       // the same rooms by conference ID
	// linkDown holds a timer per node whose relay link is down; at its end
	// the node's participants leave every room (cascade.go).
	linkDown     map[string]*time.Timer
	participants map[string]*participant // by ID, detached ones included
	// slots counts the participants and the joins in progress on this
	// node, roomSlots the same per room (no zero entries). A join reserves
	// its slots before it asks the directory, so the caps hold under
	// concurrent joins.
	slots     int
	roomSlots map[mesh.RoomKey]int
}

// New validates cfg. It starts nothing.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	words, err := json.Marshal(roomname.Words())
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "signaling"),
		mux:          http.NewServeMux(),
		salt:         randomBytes(16),
		assets:       web.Assets,
		words:        words,
		events:       newEventQueue(),
		sources:      newSources(cfg),
		guesses:      newGuesses(),
		done:         make(chan struct{}),
		rooms:        map[mesh.RoomKey]*room{},
		conferences:  map[string]*room{},
		linkDown:     map[string]*time.Timer{},
		participants: map[string]*participant{},
		roomSlots:    map[mesh.RoomKey]int{},
	}
	s.routes()
	return s, nil
}

// Run handles room events until ctx ends, then closes every session and
// returns when their handlers have exited.
func (s *Server) Run(ctx context.Context) error {
	s.ready.Store(true)
	defer s.shutdown()
	sweep := time.NewTicker(30 * time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			s.sources.sweep()
			s.guesses.sweep()
		case <-s.events.wake:
			for _, f := range s.events.drain() {
				f()
			}
		}
	}
}

// shutdown stops accepting participants, tells every participant the node
// is going away, and closes their sessions.
func (s *Server) shutdown() {
	s.ready.Store(false)
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	for n, t := range s.linkDown {
		t.Stop()
		delete(s.linkDown, n)
	}
	ps := make([]*participant, 0, len(s.participants))
	for _, p := range s.participants {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fail(errShutdown)
		}()
	}
	wg.Wait()
	s.conns.Wait()
}

// stopping reports whether shutdown has begun.
func (s *Server) stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer, pages, /static/ assets and API alike, carries the web
	// client's security headers (room names are in page URLs: no Referer).
	web.SetSecurityHeaders(w.Header())
	s.mux.ServeHTTP(w, r)
}

// reserved are the first path segments that are not room names.
var reserved = map[string]bool{
	"static": true, "ws": true, "api": true, "admin": true,
	"healthz": true, "readyz": true, "favicon.ico": true, "robots.txt": true,
	"probe": true, "regions": true, "alternates": true, "cluster": true,
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() || s.Draining() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.mux.HandleFunc("GET /ws", s.handleWS)
	s.mux.HandleFunc("GET /probe", s.handleProbe)
	s.mux.HandleFunc("GET /regions", s.handleRegions)
	s.mux.HandleFunc("GET /alternates", s.handleAlternates) // drain.go
	s.mux.HandleFunc("GET /cluster", web.ServeClusterPage)  // operators' page; its data needs the admin token
	s.mux.HandleFunc("GET /api/words", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(s.words)
	})
	static := http.StripPrefix("/static/", http.FileServerFS(s.assets))
	s.mux.Handle("GET /static/", static)
	if s.cfg.Admin != nil {
		s.mux.Handle("/admin/", s.cfg.Admin)
	}
	s.mux.HandleFunc("GET /{room}", s.handlePage)
	s.mux.HandleFunc("GET /{$}", s.handlePage)
}

// handlePage serves the web client for / and /<room>. The room name never
// reaches a log: the server does not log request paths.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("room"); name != "" && (reserved[name] || strings.ContainsRune(name, '/')) {
		http.NotFound(w, r)
		return
	}
	page, err := fs.ReadFile(s.assets, "index.html")
	if err != nil {
		http.Error(w, "web client missing", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page times the other nodes' probes and follows redirects to
	// them: its connect-src lists the cluster's public URLs (redirect.go).
	h.Set("Content-Security-Policy", s.pageCSP())
	h.Set("Cache-Control", "no-store")
	w.Write(page)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// randomID returns n random bytes, URL-safe base64 encoded.
func randomID(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

// eventQueue is an unbounded queue of functions: library callbacks enqueue
// and return, Run executes them in order.
type eventQueue struct {
	wake chan struct{} // capacity 1

	mu sync.Mutex
	q  []func() // guarded by mu
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (e *eventQueue) push(f func()) {
	e.mu.Lock()
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) drain() []func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.q
	e.q = nil
	return q
}
