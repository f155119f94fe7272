package mesh

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// addrPattern matches IPv4 and bracketed or bare IPv6 addresses, with an
// optional port, so library log lines never carry an address.
var addrPattern = regexp.MustCompile(`\[?[0-9a-fA-F:]*:[0-9a-fA-F:]+\]?(:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?`)

func redact(s string) string { return addrPattern.ReplaceAllString(s, "[addr]") }

// levelWriter turns the lines of a library logger ("[DEBUG] memberlist: …",
// "2026-… [INFO]  raft: …") into slog records with addresses removed.
// Warnings are rate-limited per kind of line: a stranger sending garbage to
// the gossip port makes memberlist complain once per packet.
type levelWriter struct {
	log       *slog.Logger
	component string
	limit     logLimiter
}

func (w *levelWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		level := slog.LevelInfo
		for _, l := range []struct {
			tag string
			lv  slog.Level
		}{{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelDebug}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
			if i := strings.Index(s, l.tag); i >= 0 {
				level = l.lv
				s = strings.TrimSpace(s[i+len(l.tag):])
				break
			}
		}
		// Library info lines are chatty internals (our own Info lines mark
		// cluster transitions); library warnings are recovered anomalies of the cluster, not
		// operator errors; keep them at Warn at most unless raft panics.
		if level > slog.LevelWarn {
			level = slog.LevelWarn
		}
		if !w.log.Enabled(context.Background(), level) {
			continue
		}
		detail := redact(s)
		if len(detail) > maxLogDetail {
			detail = detail[:maxLogDetail] + "…"
		}
		if level < slog.LevelWarn {
			w.log.Log(context.Background(), level, w.component+" says", "detail", detail)
			continue
		}
		ok, suppressed := w.limit.allow(logKind(detail))
		if !ok {
			continue
		}
		if suppressed > 0 {
			w.log.Log(context.Background(), level, w.component+" says", "detail", detail, "suppressed", suppressed)
		} else {
			w.log.Log(context.Background(), level, w.component+" says", "detail", detail)
		}
	}
	return len(p), nil
}

// maxLogDetail bounds a library line (it may quote a peer's bytes).
const maxLogDetail = 256

// Rate limit of library warnings, per kind of line (derp's limitedLogf):
// logBurst lines, then nothing until logWindow has passed since the first;
// the next line that gets through carries the number suppressed.
const (
	logBurst    = 5
	logWindow   = time.Minute
	maxLogKinds = 64 // beyond, new kinds share one budget
)

// logLimiter counts library warnings by kind. Safe for concurrent use.
type logLimiter struct {
	now func() time.Time // nil: time.Now; tests set it

	mu         sync.Mutex
	kinds      map[string]*logBudget // guarded by mu
	suppressed uint64                // total, guarded by mu
}

type logBudget struct {
	start      time.Time // of the current window
	lines      int       // let through in the window
	suppressed int       // since the last line let through
}

// allow reports whether a line of this kind may be written now and, if so,
// how many of its kind were suppressed before it.
func (l *logLimiter) allow(kind string) (bool, int) {
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = map[string]*logBudget{}
	}
	b, ok := l.kinds[kind]
	if !ok {
		if len(l.kinds) >= maxLogKinds {
			kind = "\x00other"
			b = l.kinds[kind]
		}
		if b == nil {
			b = &logBudget{start: now}
			l.kinds[kind] = b
		}
	}
	if now.Sub(b.start) >= logWindow {
		b.start, b.lines = now, 0
	}
	if b.lines >= logBurst {
		b.suppressed++
		l.suppressed++
		return false, 0
	}
	b.lines++
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

// logKind is what a library line is counted under: its first words,
// without digits, so that addresses, counts and quoted peer bytes later in
// the line do not make every line a kind of its own.
func logKind(detail string) string {
	words := strings.Fields(detail)
	words = words[:min(len(words), 5)]
	k := strings.Join(words, " ")
	k = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, k)
	if len(k) > 48 {
		k = k[:48]
	}
	return k
}

// total returns the number of lines suppressed so far.
func (l *logLimiter) total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.suppressed
}

// stdLogger is the *log.Logger given to memberlist.
func stdLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{log: l, component: "memberlist"}, "", 0)
}

// hcLogger is the hclog.Logger given to raft.
func hcLogger(l *slog.Logger) hclog.Logger {
	level := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  level,
		Output: io.Writer(&levelWriter{log: l, component: "raft"}),
	})
}
