package bridge

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// ICE username fragments in pion's messages that have no "ufrag:" key.
func TestPionLoggerRedactsBareUfrags(t *testing.T) {
	var buf bytes.Buffer
	f := pionLoggerFactory{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	f.NewLogger("ice").Debugf("Registered %s for %s", "127.0.0.1:5000", "secretUfrag1")
	f.NewLogger("ice").Warnf("Failed to get TCP connections by ufrag: %s %s %s", "tcp4", "192.0.2.1:7882", "secretUfrag2")
	f.NewLogger("pc").Errorf("dropping candidate with ufrag %s because it doesn't match the current ufrags", "secretUfrag3")
	out := buf.String()
	if strings.Contains(out, "secret") || !strings.Contains(out, "for <redacted>") || !strings.Contains(out, "ufrag <redacted> because") {
		t.Errorf("ufrags logged:\n%s", out)
	}
}

func TestPionLogger(t *testing.T) {
	var buf bytes.Buffer
	f := pionLoggerFactory{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	ice := f.NewLogger("ice")
	other := f.NewLogger("webrtc-app")
	ice.Trace("trace-line")
	ice.Infof("ice-info %d", 1)
	ice.Warnf("ice-warn from %s", "192.0.2.1")
	ice.Errorf("Failed to write packet: %s", "io: read/write on closed pipe")
	ice.Error("ice-error")
	other.Info("other-info")
	other.Errorf("write to %s and [%s]:443 and %s failed", "192.0.2.1:5000", "2001:db8::7", "fe80::1%eth0")
	other.Warn("other-warn")
	out := buf.String()
	for _, absent := range []string{"trace-line", "ice-info", "ice-warn", "closed pipe", "192.0.2", "2001:db8", "fe80"} {
		if strings.Contains(out, absent) {
			t.Errorf("%q logged at Info:\n%s", absent, out)
		}
	}
	for _, present := range []string{"ice-error", "other-info", "other-warn", "pion=ice", "write to <addr> and <addr> and <addr> failed"} {
		if !strings.Contains(out, present) {
			t.Errorf("%q missing:\n%s", present, out)
		}
	}
}
