package mesh

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// addrPattern matches IPv4 and bracketed or bare IPv6 addresses, with an
// optional port, so library log lines never carry an address.
var addrPattern = regexp.MustCompile(`\[?[0-9a-fA-F:]*:[0-9a-fA-F:]+\]?(:\d+)?|\b\d{1,3}(\.\d{1,3}){3}(:\d+)?`)

func redact(s string) string { return addrPattern.ReplaceAllString(s, "[addr]") }

// levelWriter turns the lines of a library logger ("[DEBUG] memberlist: …",
// "2026-… [INFO]  raft: …") into slog records with addresses removed.
type levelWriter struct {
	log       *slog.Logger
	component string
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
		if w.log.Enabled(context.Background(), level) {
			w.log.Log(context.Background(), level, w.component+" says", "detail", redact(s))
		}
	}
	return len(p), nil
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
