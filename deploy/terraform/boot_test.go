package terraform_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// The boot script runs against fakes of the two programs through which it
// touches AWS: curl (the instance metadata service and the binary download)
// and the aws CLI (Elastic IPs, Secrets Manager, the autoscaled nodes' target
// groups). Their state lives in files under $STATE, so each case sets up a
// small world and reads back what the script did to it.

const fakeCurl = `#!/bin/bash
# Fake curl: IMDSv2 from $STATE/imds, https downloads from $STATE/download.
out= url= put=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift ;;
    -X) [ "$2" = PUT ] && put=1; shift ;;
    -H|--proto|--retry) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
case $url in
  http://169.254.169.254/latest/api/token) [ -n "$put" ] && echo token && exit 0; exit 22 ;;
  http://169.254.169.254/latest/*)
    f="$STATE/imds/${url#http://169.254.169.254/latest/}"
    [ -f "$f" ] || exit 22
    cat "$f" ;;
  https://*) cp "$STATE/download" "$out" ;;
  *) exit 6 ;;
esac
`

const fakeAWS = `#!/bin/bash
# Fake aws CLI: Elastic IPs in $STATE/eip/<allocation> ("ip pool-tag"),
# associations in $STATE/assoc/<allocation>, secrets in $STATE/secret/<id>,
# target groups in $STATE/tg/<name>/ (url: its meshmeet-public-url tag,
# targets: one instance ID a line).
echo "$*" >> "$STATE/aws.log"
svc=$1 op=$2; shift 2
declare -A a
filter=
while [ $# -gt 0 ]; do
  case $1 in
    --allow-reassociation) a[reassoc]=1 ;;
    --no-allow-reassociation) a[reassoc]=0 ;;
    --filters) filter=$2; shift ;;
    --*) a[${1#--}]=$2; shift ;;
  esac
  shift
done
case "$svc $op" in
  "ec2 describe-addresses")
    if [ -n "${a[allocation-ids]}" ]; then
      read -r ip _ < "$STATE/eip/${a[allocation-ids]}"; echo "$ip"; exit 0
    fi
    case $filter in
      Name=instance-id,Values=*)
        for f in "$STATE"/assoc/*; do
          [ -f "$f" ] && [ "$(cat "$f")" = "${filter#Name=instance-id,Values=}" ] && { basename "$f"; exit 0; }
        done
        echo None ;;
      Name=tag:meshmeet-pool,Values=*)
        free=()
        for f in "$STATE"/eip/*; do
          read -r _ pool < "$f"
          # $STATE/stale: another node took an address since it was listed.
          [ "$pool" = "${filter#Name=tag:meshmeet-pool,Values=}" ] && { [ -f "$STATE/stale" ] || [ ! -f "$STATE/assoc/$(basename "$f")" ]; } && free+=("$(basename "$f")")
        done
        (IFS=$'\t'; echo "${free[*]}") ;;
      *) exit 254 ;;
    esac ;;
  "ec2 associate-address")
    id=${a[allocation-id]}
    [ -f "$STATE/eip/$id" ] || exit 254
    if [ -f "$STATE/assoc/$id" ] && [ "${a[reassoc]}" != 1 ]; then echo "already associated" >&2; exit 254; fi
    echo "${a[instance-id]}" > "$STATE/assoc/$id" ;;
  "autoscaling describe-auto-scaling-instances")
    cat "$STATE/asg-name" ;;
  "autoscaling complete-lifecycle-action")
    echo "complete ${a[auto-scaling-group-name]} ${a[lifecycle-hook-name]} ${a[instance-id]} ${a[lifecycle-action-result]}" >> "$STATE/events" ;;
  "elbv2 describe-target-groups")
    [ -d "$STATE/tg/${a[names]}" ] || { echo "TargetGroupNotFound" >&2; exit 254; }
    echo "arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/${a[names]}/0123456789abcdef" ;;
  "elbv2 describe-tags")
    tg=${a[resource-arns]#*:targetgroup/}; tg=${tg%%/*}
    if [ -f "$STATE/tg/$tg/url" ]; then cat "$STATE/tg/$tg/url"; else echo None; fi ;;
  "elbv2 describe-target-health")
    tg=${a[target-group-arn]#*:targetgroup/}; tg=${tg%%/*}
    touch "$STATE/tg/$tg/targets"
    tr '\n' '\t' < "$STATE/tg/$tg/targets"; echo ;;
  "elbv2 register-targets"|"elbv2 deregister-targets")
    tg=${a[target-group-arn]#*:targetgroup/}; tg=${tg%%/*}
    [ -d "$STATE/tg/$tg" ] || exit 254
    id=${a[targets]#Id=}
    touch "$STATE/tg/$tg/targets"
    grep -vx -- "$id" "$STATE/tg/$tg/targets" > "$STATE/tg/$tg/targets.new"
    [ "$op" = register-targets ] && echo "$id" >> "$STATE/tg/$tg/targets.new"
    mv "$STATE/tg/$tg/targets.new" "$STATE/tg/$tg/targets"
    echo "$op $tg $id" >> "$STATE/events" ;;
  "secretsmanager get-secret-value")
    f="$STATE/secret/$(echo "${a[secret-id]}" | tr '/:' '__')"
    [ -f "$f" ] || { echo "AccessDenied" >&2; exit 254; }
    cat "$f"; echo ;;
  *) exit 254 ;;
esac
`

// bootWorld is one run of the boot script.
type bootWorld struct {
	root, state, fakes string
}

func (w bootWorld) write(t *testing.T, rel, content string) {
	t.Helper()
	p := filepath.Join(w.state, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (w bootWorld) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newBootWorld renders the user data for a binary with the given content,
// installs its files under a fresh root with the paths moved there, and
// puts the fakes first on PATH.
func newBootWorld(t *testing.T, binary []byte) (bootWorld, func() ([]byte, error)) {
	t.Helper()
	for _, tool := range []string{"bash", "python3", "sha256sum", "shuf", "install", "mktemp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	region := mustLoad(t, "modules/region")
	sum := sha256.Sum256(binary)
	userData := renderUserDataWith(t, region, evalLocal(t, region, "ports"), map[string]cty.Value{
		"binary_sha256": cty.StringVal(hex.EncodeToString(sum[:])),
	})
	files := writeFiles(t, userData)

	dir := t.TempDir()
	w := bootWorld{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	relocate := strings.NewReplacer(
		"/etc/meshmeet", w.root+"/etc/meshmeet",
		"/usr/local/libexec/", w.root+"/libexec/",
		"/usr/local/bin/meshmeet", w.root+"/bin/meshmeet",
		"-o root -g root ", "", // ownership needs root; not what this tests
	)
	for _, path := range []string{"/etc/meshmeet/aws.conf", "/usr/local/libexec/meshmeet-aws-imds", "/usr/local/libexec/meshmeet-aws-boot", "/usr/local/libexec/meshmeet-aws-lifecycle"} {
		content, ok := files[path]
		if !ok {
			t.Fatalf("user data does not write %s", path)
		}
		dst := relocate.Replace(path)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, []byte(relocate.Replace(content)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(w.root, "etc/meshmeet/credstore"), 0o700)
	os.MkdirAll(filepath.Join(w.root, "bin"), 0o755)
	for _, d := range []string{"imds/meta-data/tags/instance", "eip", "assoc", "secret", "tg"} {
		os.MkdirAll(filepath.Join(w.state, d), 0o755)
	}
	fakes := filepath.Join(dir, "fakes")
	os.MkdirAll(fakes, 0o755)
	// shuf keeps the order, so that the cases below are deterministic.
	for name, src := range map[string]string{
		"curl":      fakeCurl,
		"aws":       fakeAWS,
		"sleep":     "#!/bin/sh\nexit 0\n",
		"shuf":      "#!/bin/sh\nexec cat\n",
		"systemctl": "#!/bin/sh\necho \"systemctl $*\" >> \"$STATE/events\"\n",
	} {
		if err := os.WriteFile(filepath.Join(fakes, name), []byte(src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.write(t, "download", string(binary))
	w.write(t, "imds/meta-data/instance-id", "i-0123456789abcdef0")
	w.write(t, "imds/meta-data/placement/region", "ap-southeast-1")
	w.write(t, "imds/meta-data/mac", "0a:1b:2c:3d:4e:5f")
	w.write(t, "imds/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-ipv4-cidr-block", "10.80.0.0/16")
	// Secrets as the sample user data names them.
	w.write(t, "secret/meshmeet_cluster-secret-20260101000000000000000001", "meshmeet-cs1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	w.write(t, "secret/arn_aws_secretsmanager_eu-west-1_123456789012_secret_meshmeet_turn-tls-AbCdEf",
		`{"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}`)

	w.fakes = fakes
	return w, func() ([]byte, error) { return w.run("meshmeet-aws-boot") }
}

// run runs one of the node's scripts with the fakes.
func (w bootWorld) run(script string) ([]byte, error) {
	cmd := exec.Command("bash", filepath.Join(w.root, "libexec", script))
	cmd.Env = append(os.Environ(), "PATH="+w.fakes+":"+os.Getenv("PATH"), "STATE="+w.state)
	return cmd.CombinedOutput()
}

func envFile(t *testing.T, w bootWorld) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(w.read(t, "etc/meshmeet/meshmeet.env")), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("meshmeet.env: %q is not KEY=value", line)
		}
		env[k] = v
	}
	return env
}

// TestBootScriptFixedVoter: a fixed voter takes its own Elastic IP, installs
// the verified binary, gets the secrets into the credstore and writes the
// settings meshmeet serve reads.
func TestBootScriptFixedVoter(t *testing.T) {
	binary := []byte("#!/bin/sh\necho meshmeet\n")
	w, run := newBootWorld(t, binary)
	w.write(t, "eip/eipalloc-own", "203.0.113.7 ")
	w.write(t, "eip/eipalloc-other", "203.0.113.8 ")
	w.write(t, "assoc/eipalloc-other", "i-someoneelse")
	tags := map[string]string{
		"meshmeet-node-name":        "ap-southeast-1-1",
		"meshmeet-voter":            "true",
		"meshmeet-bootstrap-expect": "3",
		"meshmeet-eip-allocation":   "eipalloc-own",
		"meshmeet-join":             "203.0.113.7:7946 198.51.100.2:7946 192.0.2.3:7946",
		"meshmeet-public-url":       "https://ap-southeast-1-1.meet.example.com",
	}
	for k, v := range tags {
		w.write(t, "imds/meta-data/tags/instance/"+k, v)
	}
	if out, err := run(); err != nil {
		t.Fatalf("boot script: %v\n%s", err, out)
	}
	if got := w.read(t, "bin/meshmeet"); got != string(binary) {
		t.Errorf("installed binary %q, want the download", got)
	}
	if got := strings.TrimSpace(string(mustRead(t, filepath.Join(w.state, "assoc/eipalloc-own")))); got != "i-0123456789abcdef0" {
		t.Errorf("own Elastic IP associated with %q", got)
	}
	if got := w.read(t, "etc/meshmeet/credstore/cluster-secret"); got != "meshmeet-cs1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" {
		t.Errorf("cluster secret file %q: want the secret without a newline", got)
	}
	if fi, err := os.Stat(filepath.Join(w.root, "etc/meshmeet/credstore/cluster-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cluster secret file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if got := w.read(t, "etc/meshmeet/credstore/turn-key"); !strings.Contains(got, "PRIVATE KEY") {
		t.Errorf("turn-key %q", got)
	}
	if got := w.read(t, "etc/meshmeet/credstore/turn-cert"); !strings.Contains(got, "CERTIFICATE") {
		t.Errorf("turn-cert %q", got)
	}
	env := envFile(t, w)
	want := map[string]string{
		"MESHMEET_NODE_NAME":        "ap-southeast-1-1",
		"MESHMEET_REGION":           "ap-southeast-1",
		"MESHMEET_PUBLIC_IP":        "203.0.113.7",
		"MESHMEET_JOIN":             "203.0.113.7:7946,198.51.100.2:7946,192.0.2.3:7946",
		"MESHMEET_RAFT_VOTER":       "true",
		"MESHMEET_BOOTSTRAP_EXPECT": "3",
		"MESHMEET_LAT":              "-33.8688",
		"MESHMEET_LON":              "151.2093",
		"MESHMEET_LOG_LEVEL":        "info",
		"MESHMEET_PUBLIC_URL":       "https://ap-southeast-1-1.meet.example.com",
		"MESHMEET_CLUSTER_URL":      "https://meet.example.com",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("meshmeet.env has %d settings, want %d: %v", len(env), len(want), env)
	}
	for k, v := range env {
		if strings.Contains(v, "meshmeet-cs1:") {
			t.Errorf("%s carries the cluster secret", k)
		}
	}
	// Its name is its own load balancer's: it joins no autoscaled slot.
	if log := string(mustRead(t, filepath.Join(w.state, "aws.log"))); strings.Contains(log, "elbv2") {
		t.Errorf("a fixed node called the load balancer API:\n%s", log)
	}

	// A reboot: the address is already this node's, the binary already
	// installed; the script only refreshes the secret and the settings.
	os.Remove(filepath.Join(w.root, "etc/meshmeet/credstore/cluster-secret"))
	os.Remove(filepath.Join(w.state, "download"))
	if out, err := run(); err != nil {
		t.Fatalf("boot script after a reboot: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(w.root, "etc/meshmeet/credstore/cluster-secret")); err != nil {
		t.Error("no cluster secret after a reboot")
	}
}

// TestBootScriptAutoscaledNode: a node without its own address takes a free
// one of the region's pool, never one already in use (even when another node
// took it since the list was made), and is no voter. It also takes that
// address's own name: it joins the address's target group on the autoscaled
// load balancer (found by the name the region module gives it), removes the
// node that held the address before and is gone, and gossips the group's
// URL as its --public-url. The load balancer's X-Forwarded-For is trusted
// from the VPC only.
func TestBootScriptAutoscaledNode(t *testing.T) {
	w, run := newBootWorld(t, []byte("binary"))
	w.write(t, "eip/eipalloc-0a-busy", "198.51.100.1 meshmeet-ap-southeast-1")
	w.write(t, "assoc/eipalloc-0a-busy", "i-another")
	w.write(t, "stale", "")
	w.write(t, "eip/eipalloc-0b-free", "198.51.100.2 meshmeet-ap-southeast-1")
	w.write(t, "eip/eipalloc-elsewhere", "198.51.100.3 meshmeet-eu-west-1")
	w.write(t, "imds/meta-data/tags/instance/meshmeet-join", "203.0.113.7:7946")
	// The slots' target groups, as the region module names and tags them;
	// the busy address's node is registered in its own.
	prefix := evalLocal(t, mustLoad(t, "modules/region"), "slot_target_group_prefix").AsString()
	w.write(t, "tg/"+prefix+"0a-busy/url", "https://ap-southeast-1-auto-1.meet.example.com")
	w.write(t, "tg/"+prefix+"0a-busy/targets", "i-another\n")
	w.write(t, "tg/"+prefix+"0b-free/url", "https://ap-southeast-1-auto-2.meet.example.com")
	w.write(t, "tg/"+prefix+"0b-free/targets", "i-gone\n")
	if out, err := run(); err != nil {
		t.Fatalf("boot script: %v\n%s", err, out)
	}
	env := envFile(t, w)
	if env["MESHMEET_PUBLIC_IP"] != "198.51.100.2" {
		t.Errorf("public IP %q, want the free pool address 198.51.100.2", env["MESHMEET_PUBLIC_IP"])
	}
	if env["MESHMEET_RAFT_VOTER"] != "false" || env["MESHMEET_BOOTSTRAP_EXPECT"] != "" {
		t.Errorf("autoscaled node: voter=%q bootstrap-expect=%q, want a non-voter", env["MESHMEET_RAFT_VOTER"], env["MESHMEET_BOOTSTRAP_EXPECT"])
	}
	if env["MESHMEET_NODE_NAME"] != "ap-southeast-1-i-0123456789abcdef0" {
		t.Errorf("node name %q", env["MESHMEET_NODE_NAME"])
	}
	// Its own name, the one of the address it took, and the shared name.
	if env["MESHMEET_PUBLIC_URL"] != "https://ap-southeast-1-auto-2.meet.example.com" || env["MESHMEET_CLUSTER_URL"] != "https://meet.example.com" {
		t.Errorf("autoscaled node: public URL %q, cluster URL %q; want https://ap-southeast-1-auto-2.meet.example.com and https://meet.example.com",
			env["MESHMEET_PUBLIC_URL"], env["MESHMEET_CLUSTER_URL"])
	}
	if env["MESHMEET_TRUSTED_PROXY"] != "10.80.0.0/16" {
		t.Errorf("trusted proxy %q, want the VPC's range 10.80.0.0/16", env["MESHMEET_TRUSTED_PROXY"])
	}
	targets := func(tg string) string {
		return strings.TrimSpace(string(mustRead(t, filepath.Join(w.state, "tg", prefix+tg, "targets"))))
	}
	if got := targets("0b-free"); got != "i-0123456789abcdef0" {
		t.Errorf("targets of the taken address's group: %q, want this node only (the gone one removed)", got)
	}
	if got := targets("0a-busy"); got != "i-another" {
		t.Errorf("targets of another address's group changed to %q", got)
	}
	if got := strings.TrimSpace(w.read(t, "etc/meshmeet/slot-target-group")); !strings.HasSuffix(got, ":targetgroup/"+prefix+"0b-free/0123456789abcdef") {
		t.Errorf("slot-target-group %q: the lifecycle watcher would not find the group to leave", got)
	}
	if got := strings.TrimSpace(string(mustRead(t, filepath.Join(w.state, "assoc/eipalloc-0a-busy")))); got != "i-another" {
		t.Errorf("the busy address was taken over (now %q)", got)
	}

	// A reboot keeps the address, so the name: still registered once.
	if out, err := run(); err != nil {
		t.Fatalf("boot script after a reboot: %v\n%s", err, out)
	}
	if got := targets("0b-free"); got != "i-0123456789abcdef0" {
		t.Errorf("targets after a reboot: %q", got)
	}
	if got := envFile(t, w)["MESHMEET_PUBLIC_URL"]; got != "https://ap-southeast-1-auto-2.meet.example.com" {
		t.Errorf("public URL after a reboot %q", got)
	}
}

// TestBootScriptAutoscaledNodeWithoutName: an autoscaled node whose
// address has no target group, or a group without a URL, does not start
// (rather than run without a name placement can send participants to).
func TestBootScriptAutoscaledNodeWithoutName(t *testing.T) {
	for _, tc := range []struct{ name, url, want string }{
		{"no group", "", "no target group"},
		{"no URL", "None", "no meshmeet-public-url tag"},
		{"not https", "http://198.51.100.2:7880", "no meshmeet-public-url tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, run := newBootWorld(t, []byte("binary"))
			w.write(t, "eip/eipalloc-0b-free", "198.51.100.2 meshmeet-ap-southeast-1")
			if tc.url != "" {
				prefix := evalLocal(t, mustLoad(t, "modules/region"), "slot_target_group_prefix").AsString()
				w.write(t, "tg/"+prefix+"0b-free/url", tc.url)
			}
			out, err := run()
			if err == nil {
				t.Fatalf("boot script succeeded:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
			if _, err := os.Stat(filepath.Join(w.root, "etc/meshmeet/meshmeet.env")); err == nil {
				t.Error("settings written for a node without its name")
			}
		})
	}
}

// TestBootScriptRefusesBadChecksum: a download that does not match the
// checksum is not installed, and the script fails, so meshmeet does not
// start.
func TestBootScriptRefusesBadChecksum(t *testing.T) {
	w, run := newBootWorld(t, []byte("the binary the checksum names"))
	w.write(t, "download", "a tampered binary")
	w.write(t, "eip/eipalloc-own", "203.0.113.7 ")
	w.write(t, "imds/meta-data/tags/instance/meshmeet-eip-allocation", "eipalloc-own")
	out, err := run()
	if err == nil {
		t.Fatalf("boot script accepted a binary with the wrong checksum:\n%s", out)
	}
	if !strings.Contains(string(out), "checksum mismatch") {
		t.Errorf("output %q does not say why", out)
	}
	if _, err := os.Stat(filepath.Join(w.root, "bin/meshmeet")); err == nil {
		t.Error("the tampered binary was installed")
	}
	if _, err := os.Stat(filepath.Join(w.root, "etc/meshmeet/credstore/cluster-secret")); err == nil {
		t.Error("the secret was fetched for a node that will not start")
	}
}

// TestBootScriptFailsWithoutSecret: a node whose role may not read the
// secret fails (after its retries) instead of starting alone in dev mode.
func TestBootScriptFailsWithoutSecret(t *testing.T) {
	w, run := newBootWorld(t, []byte("binary"))
	w.write(t, "eip/eipalloc-own", "203.0.113.7 ")
	w.write(t, "imds/meta-data/tags/instance/meshmeet-eip-allocation", "eipalloc-own")
	os.Remove(filepath.Join(w.state, "secret/meshmeet_cluster-secret-20260101000000000000000001"))
	if out, err := run(); err == nil {
		t.Fatalf("boot script succeeded without the cluster secret:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(w.root, "etc/meshmeet/meshmeet.env")); err == nil {
		t.Error("settings written for a node without its secret")
	}
}

// TestLifecycleWatcher: on an autoscaled node that the group terminates, the
// watcher stops meshmeet (which drains), then leaves the target group of
// its own name, before it lets the termination go on; on a fixed node it
// exits without doing anything.
func TestLifecycleWatcher(t *testing.T) {
	w, _ := newBootWorld(t, []byte("binary"))
	w.write(t, "asg-name", "meshmeet-ap-southeast-1-asg")
	w.write(t, "imds/meta-data/autoscaling/target-lifecycle-state", "Terminated")
	w.write(t, "tg/mma-0b-free/targets", "i-0123456789abcdef0\n")
	if err := os.WriteFile(filepath.Join(w.root, "etc/meshmeet/slot-target-group"),
		[]byte("arn:aws:elasticloadbalancing:ap-southeast-1:123456789012:targetgroup/mma-0b-free/0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := w.run("meshmeet-aws-lifecycle"); err != nil {
		t.Fatalf("lifecycle watcher: %v\n%s", err, out)
	}
	events := strings.Split(strings.TrimSpace(string(mustRead(t, filepath.Join(w.state, "events")))), "\n")
	want := []string{
		"systemctl stop meshmeet.service",
		"deregister-targets mma-0b-free i-0123456789abcdef0",
		"complete meshmeet-ap-southeast-1-asg meshmeet-drain i-0123456789abcdef0 CONTINUE",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}

	// The hook name the script completes is the one the group declares.
	region := mustLoad(t, "modules/region")
	if v := evalLocal(t, region, "drain_hook"); v.AsString() != "meshmeet-drain" {
		t.Errorf("local.drain_hook = %q", v.AsString())
	}

	fixed, _ := newBootWorld(t, []byte("binary"))
	if out, err := fixed.run("meshmeet-aws-lifecycle"); err != nil {
		t.Fatalf("lifecycle watcher on a fixed node: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(fixed.state, "events")); err == nil {
		t.Errorf("the watcher acted on a node outside any autoscaling group: %s", mustRead(t, filepath.Join(fixed.state, "events")))
	}
}
