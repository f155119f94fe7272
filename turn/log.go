package turn

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/pion/logging"
)

// pionLogger adapts pion's logging to slog. pion/turn puts client and peer
// addresses and usernames in its messages, so everything it says goes to
// Debug with addresses and quoted strings redacted; meshmeet's own code logs
// the events an operator needs, and counts the rest in Stats.
type pionLogger struct {
	log *slog.Logger
}

func (f pionLogger) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

var redactRE = regexp.MustCompile(`"[^"]*"|\[?[0-9a-fA-F]*:[0-9a-fA-F:.%]*:[0-9a-fA-F:.%]*\]?(:[0-9]+)?|[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(:[0-9]+)?`)

// redact removes IPv4 and IPv6 addresses (with ports) and quoted strings.
func redact(s string) string { return redactRE.ReplaceAllString(s, "…") }

func (l pionLogger) emit(msg string) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug("pion/turn", "msg", redact(msg))
}

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(string)              {}
func (l pionLogger) Debugf(string, ...any)     {}
func (l pionLogger) Info(m string)             { l.emit(m) }
func (l pionLogger) Infof(f string, a ...any)  { l.emitf(f, a...) }
func (l pionLogger) Warn(m string)             { l.emit(m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.emitf(f, a...) }
func (l pionLogger) Error(m string)            { l.emit(m) }
func (l pionLogger) Errorf(f string, a ...any) { l.emitf(f, a...) }
func (l pionLogger) emitf(f string, a ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.emit(fmt.Sprintf(f, a...))
}
