package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/pion/logging"
)

// pionLoggerFactory adapts pion's logging.LoggerFactory to slog. Trace is
// dropped; the chatty scopes (ICE, DTLS, SCTP, the PeerConnection and the
// interceptors) have their Info demoted to Debug, so that a normal node logs
// only pion's warnings and errors.
type pionLoggerFactory struct {
	log *slog.Logger
}

// noisyScopes log Info lines for every connection.
var noisyScopes = map[string]bool{
	"ice": true, "pc": true, "dtls": true, "sctp": true, "srtp": true,
	"mux": true, "transport": true, "turnc": true, "mdns": true,
	"nack_generator": true, "nack_responder": true, "twcc_sender": true,
	"receiver_interceptor": true, "sender_interceptor": true, "stats": true,
}

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("pion", scope), noisy: noisyScopes[scope]}
}

type pionLogger struct {
	log   *slog.Logger
	noisy bool
}

func (l *pionLogger) emit(level slog.Level, msg string) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, "pion", "msg", redactSecrets(redactAddrs(msg)))
}

// ICE credentials in pion's messages: the ICE agent logs the remote
// password at Debug when it starts ("remotePwd: %q"), and SDP excerpts
// carry a=ice-pwd. A participant's ICE password never goes to a log.
var secretRe = regexp.MustCompile(`(?i)(pwd|password|passwd|credential|ufrag)("?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;)]+)`)

// redactSecrets replaces the values of ICE passwords, usernames and other
// credentials in msg.
func redactSecrets(msg string) string {
	if strings.ContainsAny(msg, ":=") {
		msg = secretRe.ReplaceAllString(msg, "$1$2<redacted>")
	}
	return ufragRe.ReplaceAllString(msg, "$1<redacted>")
}

// pion also names ICE username fragments without "key:": "Registered
// <addr> for <ufrag>" (ice's UDP mux), "by ufrag: <network> <addr> <ufrag>"
// (ice's TCP gathering), "candidate with ufrag <ufrag> because" (webrtc).
var ufragRe = regexp.MustCompile(`(?i)(registered \S+ for |by ufrag: \S+ \S+ |ufrag )[^\s:]\S*`)

// Addresses in pion's messages (candidates, remote peers) are participants'
// IP addresses, which never go to a log (DESIGN.md section 6).
var (
	ipv4Re = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b`)
	ipv6Re = regexp.MustCompile(`(?i)\[?\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%[0-9a-z]+)?\]?(?::\d+)?`)
)

// redactAddrs replaces IPv4 and IPv6 addresses (with ports) in msg.
func redactAddrs(msg string) string {
	if !strings.ContainsAny(msg, ".:") {
		return msg
	}
	msg = ipv4Re.ReplaceAllString(msg, "<addr>")
	return ipv6Re.ReplaceAllString(msg, "<addr>")
}

func (l *pionLogger) emitf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.emit(level, fmt.Sprintf(format, args...))
}

func (l *pionLogger) info() slog.Level {
	if l.noisy {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// warn demotes the warnings of noisy scopes too: ICE warnings name remote
// addresses, which must not reach a normal log (DESIGN.md section 6).
func (l *pionLogger) warn() slog.Level {
	if l.noisy {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func (l *pionLogger) Trace(string)                 {}
func (l *pionLogger) Tracef(string, ...any)        {}
func (l *pionLogger) Debug(msg string)             { l.emit(slog.LevelDebug, msg) }
func (l *pionLogger) Debugf(f string, args ...any) { l.emitf(slog.LevelDebug, f, args...) }
func (l *pionLogger) Info(msg string)              { l.emit(l.info(), msg) }
func (l *pionLogger) Infof(f string, args ...any)  { l.emitf(l.info(), f, args...) }
func (l *pionLogger) Warn(msg string)              { l.emit(l.warn(), msg) }
func (l *pionLogger) Warnf(f string, args ...any)  { l.emitf(l.warn(), f, args...) }
func (l *pionLogger) Error(msg string)             { l.emit(l.errorLevel(msg), msg) }
func (l *pionLogger) Errorf(f string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelError) {
		return
	}
	msg := fmt.Sprintf(f, args...)
	l.emit(l.errorLevel(msg), msg)
}

// errorLevel demotes the errors of noisy scopes about closed sockets and
// pipes: they are the normal end of a connection during shutdown.
func (l *pionLogger) errorLevel(msg string) slog.Level {
	if l.noisy && (strings.Contains(msg, "closed pipe") || strings.Contains(msg, "use of closed")) {
		return slog.LevelDebug
	}
	return slog.LevelError
}
