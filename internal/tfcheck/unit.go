package tfcheck

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Unit is a parsed systemd unit: section → key → values in order.
type Unit map[string]map[string][]string

// ParseUnit parses a systemd unit file.
func ParseUnit(src string) (Unit, error) {
	u := Unit{}
	section := ""
	// Join continuation lines.
	src = strings.ReplaceAll(src, "\\\n", " ")
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not key=value in a section", i+1, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u, nil
}

// Last returns the effective value of a single-valued setting.
func (u Unit) Last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// Env returns the assignments of Environment= lines.
func (u Unit) Env() map[string]string {
	out := map[string]string{}
	for _, v := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(v) {
			k, val, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			out[k] = val
		}
	}
	return out
}

// ParseTimespan parses the systemd time spans the unit uses (10min, 90s,
// 1min 30s, a bare number of seconds).
func ParseTimespan(s string) (time.Duration, error) {
	var total time.Duration
	for _, f := range strings.Fields(s) {
		i := strings.IndexFunc(f, func(r rune) bool { return r < '0' || r > '9' })
		num, unit := f, "s"
		if i >= 0 {
			num, unit = f[:i], f[i:]
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return 0, fmt.Errorf("time span %q: %v", s, err)
		}
		mult := map[string]time.Duration{"s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour}[unit]
		if mult == 0 {
			return 0, fmt.Errorf("time span %q: unknown unit %q", s, unit)
		}
		total += time.Duration(n) * mult
	}
	return total, nil
}

// ListenerPort returns the port of a MESHMEET_*_ADDR (host:port) or
// MESHMEET_*_PORT value.
func ListenerPort(name, value string) (int, error) {
	if strings.HasSuffix(name, "_PORT") {
		return strconv.Atoi(value)
	}
	i := strings.LastIndex(value, ":")
	if i < 0 {
		return 0, fmt.Errorf("%s=%s: not host:port", name, value)
	}
	return strconv.Atoi(value[i+1:])
}

// CheckEnv checks MESHMEET_ assignments: known flags only, listener ports
// equal to internal/defaults, no secret value. It returns the listeners as
// "proto port" strings.
func CheckEnv(where string, env map[string]string, flags map[string]bool) (listeners []string, problems []string) {
	known := map[string]bool{}
	for f := range flags {
		known[EnvName(f)] = true
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "MESHMEET_") {
			continue
		}
		if !known[k] {
			problems = append(problems, fmt.Sprintf("%s: %s is not a flag of meshmeet serve", where, k))
		}
		if k == "MESHMEET_CLUSTER_SECRET" || (SecretName.MatchString(k) && !strings.HasSuffix(k, "_FILE")) {
			problems = append(problems, fmt.Sprintf("%s: %s puts a secret value in the configuration", where, k))
		}
		l, ok := listenerEnv[k]
		if !ok {
			continue
		}
		p, err := ListenerPort(k, v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if p != l.port {
			problems = append(problems, fmt.Sprintf("%s: %s=%s, but internal/defaults says port %d", where, k, v, l.port))
		}
		for _, proto := range l.protos {
			listeners = append(listeners, fmt.Sprintf("%s %d", proto, p))
		}
	}
	return listeners, problems
}

// Hardening lists settings the unit must have, with accepted values.
var Hardening = map[string][]string{
	"NoNewPrivileges":         {"yes", "true"},
	"ProtectSystem":           {"strict"},
	"ProtectHome":             {"yes", "true", "read-only", "tmpfs"},
	"PrivateTmp":              {"yes", "true"},
	"PrivateDevices":          {"yes", "true"},
	"ProtectKernelTunables":   {"yes", "true"},
	"ProtectKernelModules":    {"yes", "true"},
	"ProtectControlGroups":    {"yes", "true"},
	"MemoryDenyWriteExecute":  {"yes", "true"},
	"RestrictSUIDSGID":        {"yes", "true"},
	"RestrictNamespaces":      {"yes", "true"},
	"LockPersonality":         {"yes", "true"},
	"SystemCallArchitectures": {"native"},
}

// CheckUnit checks the unit's hardening, restarts, drain time, logging and
// that nothing writes to disk. It returns the listeners it configures.
func CheckUnit(u Unit, flags map[string]bool) (listeners []string, problems []string) {
	svc := u["Service"]
	if svc == nil {
		return nil, []string{"no [Service] section"}
	}
	exec, _ := u.Last("Service", "ExecStart")
	args := strings.Fields(exec)
	if len(args) < 2 || filepath.Base(args[0]) != "meshmeet" || args[1] != "serve" {
		problems = append(problems, fmt.Sprintf("ExecStart=%s: want meshmeet serve", exec))
	}
	// Flags on the command line: only known ones, and never a secret value.
	env := u.Env()
	for _, a := range args[min(2, len(args)):] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, _ := strings.Cut(a[2:], "=")
		if !flags[name] {
			problems = append(problems, fmt.Sprintf("ExecStart: unknown flag --%s", name))
		}
		env[EnvName(name)] = val
	}
	l, p := CheckEnv("meshmeet.service", env, flags)
	listeners, problems = append(listeners, l...), append(problems, p...)
	for _, k := range []string{"MESHMEET_HTTP_ADDR", "MESHMEET_RTC_PORT", "MESHMEET_GOSSIP_ADDR", "MESHMEET_RAFT_ADDR", "MESHMEET_RELAY_ADDR", "MESHMEET_TURN_ADDR"} {
		if _, ok := env[k]; !ok {
			problems = append(problems, fmt.Sprintf("the unit does not set %s: a listener it cannot promise the firewall", k))
		}
	}
	if f := env["MESHMEET_CLUSTER_SECRET_FILE"]; !strings.HasPrefix(f, "%d/") {
		problems = append(problems, fmt.Sprintf("MESHMEET_CLUSTER_SECRET_FILE=%q: want a file of the credentials directory (%%d/...)", f))
	} else if cred := strings.TrimPrefix(f, "%d/"); !hasCredential(u, cred) {
		problems = append(problems, fmt.Sprintf("no LoadCredential=%s:...", cred))
	}

	for key, ok := range Hardening {
		v, set := u.Last("Service", key)
		if !set || !contains(ok, v) {
			problems = append(problems, fmt.Sprintf("%s=%q, want one of %v", key, v, ok))
		}
	}
	dyn, _ := u.Last("Service", "DynamicUser")
	user, _ := u.Last("Service", "User")
	if dyn != "yes" && dyn != "true" && (user == "" || user == "root" || user == "0") {
		problems = append(problems, "runs as root: set DynamicUser=yes or a dedicated User=")
	}
	families, _ := u.Last("Service", "RestrictAddressFamilies")
	for _, f := range strings.Fields(families) {
		if f != "AF_INET" && f != "AF_INET6" && f != "AF_UNIX" && f != "AF_NETLINK" {
			problems = append(problems, "RestrictAddressFamilies allows "+f)
		}
	}
	if families == "" {
		problems = append(problems, "RestrictAddressFamilies not set")
	}
	// Capabilities: none, or only CAP_NET_BIND_SERVICE when a port < 1024 is bound.
	low := false
	for _, ls := range listeners {
		var proto string
		var port int
		fmt.Sscanf(ls, "%s %d", &proto, &port)
		if port < 1024 {
			low = true
		}
	}
	ambient := strings.Join(svc["AmbientCapabilities"], " ")
	bounding, boundingSet := u.Last("Service", "CapabilityBoundingSet")
	switch {
	case low && strings.TrimSpace(ambient) != "CAP_NET_BIND_SERVICE":
		problems = append(problems, "a port below 1024 needs AmbientCapabilities=CAP_NET_BIND_SERVICE and nothing else")
	case !low && strings.TrimSpace(ambient) != "":
		problems = append(problems, "AmbientCapabilities="+ambient+" but no port below 1024")
	}
	wantBounding := ""
	if low {
		wantBounding = "CAP_NET_BIND_SERVICE"
	}
	if !boundingSet || strings.TrimSpace(bounding) != wantBounding {
		problems = append(problems, fmt.Sprintf("CapabilityBoundingSet=%q, want %q", bounding, wantBounding))
	}

	// Restarts and a stop timeout long enough to drain.
	if r, _ := u.Last("Service", "Restart"); r != "on-failure" && r != "always" {
		problems = append(problems, "Restart="+r+", want on-failure or always")
	}
	stop, _ := u.Last("Service", "TimeoutStopSec")
	if d, err := ParseTimespan(stop); err != nil || d < 2*time.Minute {
		problems = append(problems, fmt.Sprintf("TimeoutStopSec=%q: want at least 2min to drain (%v)", stop, err))
	}
	if s, _ := u.Last("Service", "KillSignal"); s != "" && s != "SIGTERM" {
		problems = append(problems, "KillSignal="+s+": meshmeet drains on SIGTERM")
	}

	// Nothing on disk: no writable directories, logs to the journal.
	for _, key := range []string{"StateDirectory", "CacheDirectory", "LogsDirectory", "ReadWritePaths", "ReadWriteDirectories"} {
		if len(svc[key]) > 0 {
			problems = append(problems, key+" set: meshmeet keeps nothing on disk")
		}
	}
	for _, key := range []string{"StandardOutput", "StandardError"} {
		if v, ok := u.Last("Service", key); ok && v != "journal" && v != "inherit" {
			problems = append(problems, key+"="+v+": log to the journal only")
		}
	}
	return listeners, problems
}

func hasCredential(u Unit, id string) bool {
	for _, v := range u["Service"]["LoadCredential"] {
		if strings.HasPrefix(v, id+":") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
