package terraform_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/meshmeet/meshmeet/internal/defaults"
	"github.com/meshmeet/meshmeet/internal/tfcheck"
	"github.com/meshmeet/meshmeet/mesh"
)

// moduleDirs are the Terraform modules under test, relative to this package.
var moduleDirs = []string{"modules/region", "modules/cluster", "examples/three-regions"}

// unitPath is the systemd unit shared by manual installs and cloud-init.
const unitPath = "../systemd/meshmeet.service"

// httpsPort is the port of the load balancers' TLS listener: standard
// HTTPS, not one of meshmeet's own ports.
const httpsPort = 443

// userDataLimit is EC2's limit on user data before base64 encoding (the
// region module gzips it).
const userDataLimit = 16 * 1024

// ---------------------------------------------------------------- helpers

func mustLoad(t *testing.T, dir string) *tfcheck.Module {
	t.Helper()
	m, problems := tfcheck.Load(dir)
	if len(problems) > 0 {
		t.Fatalf("%s does not load:\n%s", dir, strings.Join(problems, "\n"))
	}
	return m
}

// evalLocal evaluates local.NAME of m, which must be a constant.
func evalLocal(t *testing.T, m *tfcheck.Module, name string) cty.Value {
	t.Helper()
	v, err := m.EvalLocal(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func asInt(t *testing.T, v cty.Value, what string) int {
	t.Helper()
	i, err := tfcheck.AsInt(v)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return i
}

// meshmeetPorts maps the region module's port names to internal/defaults.
var meshmeetPorts = map[string]int{
	"http":     defaults.HTTPPort,
	"rtc":      defaults.RTCPort,
	"gossip":   defaults.GossipPort,
	"raft":     defaults.RaftPort,
	"relay":    defaults.RelayPort,
	"turn":     defaults.TURNPort,
	"turn_tls": defaults.TURNTLSPort,
	"https":    httpsPort,
}

// cliFlags returns the flags a MESHMEET_ variable may name: those of the
// CLI contract (DESIGN.md section 10, tfcheck.ServeFlags) and those
// cmd/meshmeet declares (Name: fields of cli.*Flag literals). It logs the
// contract's flags the binary does not declare yet.
func cliFlags(t *testing.T) map[string]bool {
	t.Helper()
	declared, err := tfcheck.DeclaredFlags("../../cmd/meshmeet")
	switch {
	case err != nil:
		t.Logf("cmd/meshmeet does not parse (%v): checking against DESIGN.md's flags only", err)
		declared = nil
	case len(declared) == 0:
		t.Log("no flags found in cmd/meshmeet: checking against DESIGN.md's flags only")
		declared = nil
	}
	known := map[string]bool{}
	var missing []string
	for f := range tfcheck.ServeFlags {
		known[f] = true
		if declared != nil && !declared[f] {
			missing = append(missing, f)
		}
	}
	for f := range declared {
		known[f] = true
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Logf("cmd/meshmeet does not declare these contract flags yet: %s", strings.Join(missing, ", "))
	}
	return known
}

// securityGroupRules evaluates the ingress rules of the region module.
func securityGroupRules(t *testing.T, m *tfcheck.Module, ports cty.Value) []string {
	t.Helper()
	rules, problems, err := tfcheck.SecurityGroupRules(m, ports)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return rules
}

func readUnit(t *testing.T) (string, tfcheck.Unit) {
	t.Helper()
	src, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u, err := tfcheck.ParseUnit(string(src))
	if err != nil {
		t.Fatalf("%s: %v", unitPath, err)
	}
	return string(src), u
}

// ---------------------------------------------------------------- tests

func TestModulesLoadWithoutDiagnostics(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			m := mustLoad(t, dir)
			if len(m.Inspect.ManagedResources)+len(m.Inspect.ModuleCalls) == 0 {
				t.Errorf("%s: no resources or module calls", dir)
			}
		})
	}
}

func TestVariablesTypedDescribedAndNoSecretDefaults(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			m := mustLoad(t, dir)
			for _, p := range tfcheck.CheckVariables(m) {
				t.Error(p)
			}
			for _, p := range tfcheck.CheckSecrets(m) {
				t.Error(p)
			}
		})
	}
}

func TestReferencesResolve(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			m := mustLoad(t, dir)
			for _, p := range tfcheck.CheckReferences(m) {
				t.Error(p)
			}
			for _, p := range tfcheck.CheckTemplates(m) {
				t.Error(p)
			}
		})
	}
}

// TestClusterSecret: the cluster module generates the secret once with the
// random provider, writes it write-only, and lets only the nodes read it.
func TestClusterSecret(t *testing.T) {
	m := mustLoad(t, "modules/cluster")
	var eph *hclsyntax.Block
	for _, b := range m.Blocks("ephemeral") {
		if b.Labels[0] == "random_password" {
			eph = b
		}
	}
	if eph == nil {
		t.Fatal("no ephemeral random_password for the cluster secret")
	}
	ver := m.Resource("aws_secretsmanager_secret_version", "cluster")
	if ver == nil || ver.Body.Attributes["secret_string_wo"] == nil || ver.Body.Attributes["secret_string_wo_version"] == nil {
		t.Fatal("the cluster secret must be written with secret_string_wo and secret_string_wo_version")
	}
	// Whatever the generator draws, meshmeet accepts it as a cluster secret
	// (mesh.ParseSecret, the parser of --cluster-secret-file).
	length, charset := passwordSpec(t, eph)
	rng := rand.New(rand.NewPCG(1, 2))
	samples := []string{strings.Repeat(charset[:1], length), strings.Repeat(charset[len(charset)-1:], length)}
	for range 500 {
		b := make([]byte, length)
		for i := range b {
			b[i] = charset[rng.IntN(len(charset))]
		}
		samples = append(samples, string(b))
	}
	wo := ver.Body.Attributes["secret_string_wo"].Expr
	for _, sample := range samples {
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"ephemeral": cty.ObjectVal(map[string]cty.Value{
			"random_password": cty.ObjectVal(map[string]cty.Value{
				eph.Labels[1]: cty.ObjectVal(map[string]cty.Value{"result": cty.StringVal(sample)}),
			}),
		})}}
		v, diags := wo.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("secret_string_wo: %s", diags.Error())
		}
		if _, err := mesh.ParseSecret(v.AsString()); err != nil {
			t.Fatalf("a generated cluster secret (from %q) is refused by meshmeet: %v", sample, err)
		}
	}
	// 32 bytes of entropy at least: log2(len(charset)) bits per character.
	if bits := float64(length) * math.Log2(float64(len(charset))); bits < 256 {
		t.Errorf("cluster secret has %.0f random bits, want at least 256", bits)
	}
	pol := m.Resource("aws_secretsmanager_secret_policy", "cluster")
	if pol == nil {
		t.Fatal("no resource policy on the cluster secret")
	}
	// The policy denies reading to every principal but the nodes' role.
	var doc *hclsyntax.Block
	for _, b := range m.Blocks("data") {
		if b.Labels[0] == "aws_iam_policy_document" && b.Labels[1] == "secret" {
			doc = b
		}
	}
	if doc == nil {
		t.Fatal("no policy document for the secret")
	}
	src := string(doc.Range().SliceBytes(mustRead(t, doc.Range().Filename)))
	for _, want := range []string{`"Deny"`, `"secretsmanager:GetSecretValue"`, `"aws:PrincipalArn"`, `aws_iam_role.node.arn`} {
		if !strings.Contains(src, want) {
			t.Errorf("secret policy lacks %s", want)
		}
	}
	// Every region reads its own replica.
	sec := m.Resource("aws_secretsmanager_secret", "cluster")
	found := false
	for _, b := range sec.Body.Blocks {
		if b.Type == "dynamic" && b.Labels[0] == "replica" {
			found = true
		}
	}
	if !found {
		t.Error("the cluster secret has no replicas")
	}
}

// passwordSpec returns the length and character set of a random_password
// block (terraform-provider-random's rules: upper, lower, numeric and
// special default to true; override_special replaces the special set).
func passwordSpec(t *testing.T, b *hclsyntax.Block) (int, string) {
	t.Helper()
	get := func(name string, def cty.Value) cty.Value {
		a, ok := b.Body.Attributes[name]
		if !ok {
			return def
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("%s: %s must be a constant", a.SrcRange, name)
		}
		return v
	}
	length := asInt(t, get("length", cty.NullVal(cty.Number)), "random_password.length")
	var set strings.Builder
	if get("upper", cty.True).True() {
		set.WriteString("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	}
	if get("lower", cty.True).True() {
		set.WriteString("abcdefghijklmnopqrstuvwxyz")
	}
	if get("numeric", cty.True).True() {
		set.WriteString("0123456789")
	}
	if get("special", cty.True).True() {
		set.WriteString(get("override_special", cty.StringVal("!@#$%&*()-_=+[]{}<>:?")).AsString())
	}
	if set.Len() == 0 {
		t.Fatal("random_password draws from no characters")
	}
	return length, set.String()
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPortsMatchDefaults holds the security groups, the load balancer, the
// systemd unit and the boot configuration against internal/defaults.
func TestPortsMatchDefaults(t *testing.T) {
	region := mustLoad(t, "modules/region")
	ports := evalLocal(t, region, "ports")
	got := map[string]int{}
	for name, v := range ports.AsValueMap() {
		got[name] = asInt(t, v, "local.ports."+name)
	}
	for name, want := range meshmeetPorts {
		if got[name] != want {
			t.Errorf("region local.ports.%s = %d, internal/defaults says %d", name, got[name], want)
		}
	}
	for name := range got {
		if _, ok := meshmeetPorts[name]; !ok {
			t.Errorf("region local.ports.%s is not a meshmeet port", name)
		}
	}

	cluster := mustLoad(t, "modules/cluster")
	if g := asInt(t, evalLocal(t, cluster, "gossip_port"), "cluster local.gossip_port"); g != defaults.GossipPort {
		t.Errorf("cluster local.gossip_port = %d, internal/defaults says %d", g, defaults.GossipPort)
	}

	// Security groups: exactly these rules.
	want := []string{
		tfcheck.RuleString("lb", "tcp", httpsPort, "anywhere"),
		tfcheck.RuleString("node", "tcp", defaults.HTTPPort, "sg:lb"),
		tfcheck.RuleString("node", "udp", defaults.RTCPort, "anywhere"),
		tfcheck.RuleString("node", "tcp", defaults.RTCPort, "anywhere"),
		tfcheck.RuleString("node", "udp", defaults.TURNPort, "anywhere"),
		tfcheck.RuleString("node", "tcp", defaults.TURNPort, "anywhere"),
		tfcheck.RuleString("node", "tcp", defaults.TURNTLSPort, "anywhere"),
		tfcheck.RuleString("node", "udp", defaults.GossipPort, "prefix-list:cluster"),
		tfcheck.RuleString("node", "tcp", defaults.GossipPort, "prefix-list:cluster"),
		tfcheck.RuleString("node", "tcp", defaults.RaftPort, "prefix-list:cluster"),
		tfcheck.RuleString("node", "udp", defaults.RelayPort, "prefix-list:cluster"),
	}
	sort.Strings(want)
	rules := securityGroupRules(t, region, ports)
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("security group ingress rules:\n%s\nwant exactly:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}

	// The cluster prefix list holds only the cluster's addresses.
	pl := region.Resource("aws_ec2_managed_prefix_list", "cluster")
	if pl == nil {
		t.Fatal("no cluster prefix list")
	}
	for _, b := range pl.Body.Blocks {
		if b.Type == "dynamic" && b.Labels[0] == "entry" {
			fe := b.Body.Attributes["for_each"]
			trs := fe.Expr.Variables()
			if len(trs) != 1 || trs[0].RootName() != "var" || tfcheck.AttrName(trs[0], 1) != "cluster_cidrs" {
				t.Errorf("%s: the cluster prefix list must list var.cluster_cidrs only", fe.SrcRange)
			}
		}
	}

	// Load balancer: TLS on 443, forwarded to the HTTP port, health on /readyz.
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(map[string]cty.Value{"ports": ports})}}
	attrInt := func(b *hclsyntax.Block, name string) int {
		if b == nil || b.Body.Attributes[name] == nil {
			t.Fatalf("missing %s", name)
		}
		v, diags := b.Body.Attributes[name].Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", name, diags.Error())
		}
		return asInt(t, v, name)
	}
	if p := attrInt(region.Resource("aws_lb_listener", "https"), "port"); p != httpsPort {
		t.Errorf("listener port %d, want %d", p, httpsPort)
	}
	tg := region.Resource("aws_lb_target_group", "http")
	if p := attrInt(tg, "port"); p != defaults.HTTPPort {
		t.Errorf("target group port %d, want %d", p, defaults.HTTPPort)
	}
	if p := attrInt(region.Resource("aws_lb_target_group_attachment", "node"), "port"); p != defaults.HTTPPort {
		t.Errorf("target group attachment port %d, want %d", p, defaults.HTTPPort)
	}
	healthPath := ""
	for _, b := range tg.Body.Blocks {
		if b.Type == "health_check" {
			v, _ := b.Body.Attributes["path"].Expr.Value(nil)
			healthPath = v.AsString()
		}
	}
	if healthPath != "/readyz" {
		t.Errorf("target group health check path %q, want /readyz", healthPath)
	}
	hc := region.Resource("aws_route53_health_check", "region")
	if hc == nil {
		t.Fatal("no Route53 health check")
	}
	if v, _ := hc.Body.Attributes["resource_path"].Expr.Value(nil); v.AsString() != "/readyz" {
		t.Errorf("Route53 health check path %q, want /readyz", v.AsString())
	}
	if p := attrInt(hc, "port"); p != httpsPort {
		t.Errorf("Route53 health check port %d, want %d", p, httpsPort)
	}

	// The unit and the boot configuration listen on exactly the ports the
	// node security group opens.
	_, u := readUnit(t)
	flags := cliFlags(t)
	listeners, problems := tfcheck.CheckUnit(u, flags)
	for _, p := range problems {
		t.Error(p)
	}
	rendered := renderUserData(t, region, ports)
	l, problems := tfcheck.CheckEnv("cloud-init", envAssignments(rendered), flags)
	for _, p := range problems {
		t.Error(p)
	}
	listeners = append(listeners, l...)
	opened := map[string]bool{}
	for _, r := range rules {
		if strings.HasPrefix(r, "node ") {
			f := strings.Fields(r)
			opened[f[1]+" "+f[2]] = true
		}
	}
	listening := map[string]bool{}
	for _, l := range listeners {
		listening[l] = true
		if !opened[l] {
			t.Errorf("meshmeet listens on %s but the node security group does not open it", l)
		}
	}
	for o := range opened {
		if !listening[o] {
			t.Errorf("the node security group opens %s but meshmeet does not listen on it", o)
		}
	}
}

// indentFunc is Terraform's indent(spaces, string).
var indentFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "spaces", Type: cty.Number}, {Name: "str", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		n, _ := args[0].AsBigFloat().Int64()
		lines := strings.Split(args[1].AsString(), "\n")
		for i := 1; i < len(lines); i++ {
			lines[i] = strings.Repeat(" ", int(n)) + lines[i]
		}
		return cty.StringVal(strings.Join(lines, "\n")), nil
	},
})

// renderUserData renders the region module's cloud-init template as
// Terraform would, with TURN over TLS on and sample values elsewhere.
func renderUserData(t *testing.T, region *tfcheck.Module, ports cty.Value) string {
	t.Helper()
	return renderUserDataWith(t, region, ports, nil)
}

// renderUserDataWith renders the user data with some template variables
// replaced.
func renderUserDataWith(t *testing.T, region *tfcheck.Module, ports cty.Value, overrides map[string]cty.Value) string {
	t.Helper()
	calls, problems := tfcheck.TemplateCalls(region)
	if len(problems) > 0 || len(calls) != 1 {
		t.Fatalf("want one templatefile call in the region module: %v", problems)
	}
	tc := calls[0]
	// The unit is installed unchanged from deploy/systemd.
	unitExpr := tc.Vars["systemd_unit"]
	call, ok := unitExpr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "file" {
		t.Fatal("systemd_unit must be file(...) of deploy/systemd/meshmeet.service")
	}
	pv, diags := call.Args[0].Value(&hcl.EvalContext{Variables: map[string]cty.Value{
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(region.Dir)}),
	}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if filepath.Clean(pv.AsString()) != filepath.Clean(unitPath) {
		t.Errorf("cloud-init installs %s, want %s", pv.AsString(), unitPath)
	}
	unitSrc, _ := readUnit(t)
	samples := map[string]cty.Value{
		"systemd_unit":        cty.StringVal(unitSrc),
		"binary_url":          cty.StringVal("https://downloads.example.com/meshmeet/v1.2.3/meshmeet-linux-arm64"),
		"binary_sha256":       cty.StringVal(strings.Repeat("ab", 32)),
		"cluster_secret_name": cty.StringVal("meshmeet/cluster-secret-20260101000000000000000001"),
		"turn_tls_secret_arn": cty.StringVal("arn:aws:secretsmanager:eu-west-1:123456789012:secret:meshmeet/turn-tls-AbCdEf"),
		"turn_tls_port":       ports.GetAttr("turn_tls"),
		"pool_tag":            cty.StringVal("meshmeet-ap-southeast-1"),
		"lat":                 cty.StringVal("-33.8688"),
		"lon":                 cty.StringVal("151.2093"),
		"log_level":           cty.StringVal("info"),
		"drain_hook":          cty.StringVal("meshmeet-drain"),
		"cluster_url":         cty.StringVal("https://meet.example.com"),
		"slot_prefix":         evalLocal(t, region, "slot_target_group_prefix"),
	}
	for k, v := range overrides {
		samples[k] = v
	}
	for k := range tc.Vars {
		if _, ok := samples[k]; !ok {
			t.Fatalf("renderUserData: no sample value for template variable %q", k)
		}
	}
	src := mustRead(t, tc.Path)
	tmpl, diags := hclsyntax.ParseTemplate(src, tc.Path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := tmpl.Value(&hcl.EvalContext{Variables: samples, Functions: map[string]function.Function{"indent": indentFunc}})
	if diags.HasErrors() {
		t.Fatalf("rendering %s: %s", tc.Path, diags.Error())
	}
	out := v.AsString()
	// The launch template sends it through base64gzip.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(out))
	zw.Close()
	if gz.Len() > userDataLimit {
		t.Errorf("user data is %d bytes gzipped, over EC2's %d", gz.Len(), userDataLimit)
	}
	if !strings.HasPrefix(out, "#cloud-config\n") {
		t.Error("user data does not start with #cloud-config")
	}
	// The unit is embedded verbatim, indented under its write_files entry.
	embedded := "      " + strings.ReplaceAll(unitSrc, "\n", "\n      ")
	if !strings.Contains(out, embedded) {
		t.Error("the rendered user data does not hold deploy/systemd/meshmeet.service verbatim")
	}
	return out
}

// envAssignments finds MESHMEET_X=value assignments in rendered text.
var envAssignment = regexp.MustCompile(`(?m)\b(MESHMEET_[A-Z_]+)=([^\s"';]*)`)

func envAssignments(s string) map[string]string {
	out := map[string]string{}
	for _, m := range envAssignment.FindAllStringSubmatch(s, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestDrainTimes: the autoscaling lifecycle hook and load balancer
// deregistration wait at least as long as the node may drain, and the node
// may drain no longer than systemd waits before SIGKILL.
func TestDrainTimes(t *testing.T) {
	_, u := readUnit(t)
	stop, _ := u.Last("Service", "TimeoutStopSec")
	stopDur, err := tfcheck.ParseTimespan(stop)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"modules/region", "modules/cluster"} {
		m := mustLoad(t, dir)
		v := m.Inspect.Variables["drain_timeout_seconds"]
		if v == nil {
			t.Fatalf("%s: no drain_timeout_seconds", dir)
		}
		def, ok := v.Default.(float64)
		if !ok {
			t.Fatalf("%s: drain_timeout_seconds default %#v", dir, v.Default)
		}
		if d := time.Duration(def) * time.Second; d > stopDur {
			t.Errorf("%s: drain_timeout_seconds default %v exceeds the unit's TimeoutStopSec %v", dir, d, stopDur)
		}
	}
	region := mustLoad(t, "modules/region")
	asg := region.Resource("aws_autoscaling_group", "node")
	var hook *hclsyntax.Block
	for _, b := range asg.Body.Blocks {
		if b.Type == "initial_lifecycle_hook" {
			hook = b
		}
	}
	if hook == nil {
		t.Fatal("the autoscaling group has no lifecycle hook to drain nodes")
	}
	src := string(hook.Body.Attributes["heartbeat_timeout"].Expr.Range().SliceBytes(mustRead(t, hook.Range().Filename)))
	if !regexp.MustCompile(`^var\.drain_timeout_seconds \+ \d+$`).MatchString(src) {
		t.Errorf("heartbeat_timeout = %s: want var.drain_timeout_seconds + margin", src)
	}
	tg := region.Resource("aws_lb_target_group", "http")
	if src := string(tg.Body.Attributes["deregistration_delay"].Expr.Range().SliceBytes(mustRead(t, tg.Range().Filename))); src != "var.drain_timeout_seconds" {
		t.Errorf("deregistration_delay = %s: want var.drain_timeout_seconds", src)
	}
	// A draining node answers /readyz with 503, so it turns unhealthy: the
	// load balancer must keep its open WebSockets, not cut them.
	keeps := func(b *hclsyntax.Block, attr string) bool {
		a := b.Body.Attributes[attr]
		if a == nil {
			return false
		}
		v, diags := a.Expr.Value(nil)
		return !diags.HasErrors() && v.Type() == cty.Bool && v.False()
	}
	if !keeps(tg, "connection_termination") {
		t.Error("target group: want connection_termination = false")
	}
	var ths *hclsyntax.Block
	for _, b := range tg.Body.Blocks {
		if b.Type == "target_health_state" {
			ths = b
		}
	}
	if ths == nil || !keeps(ths, "enable_unhealthy_connection_termination") {
		t.Error("target group: want target_health_state { enable_unhealthy_connection_termination = false }")
	}
}

// TestCheckersCatchMistakes runs the checks on broken modules, so that a
// check that silently passes everything fails here.
func TestCheckersCatchMistakes(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"undefined variable", `output "x" {
  description = "x"
  value       = var.nope
}`, "undefined variable var.nope"},
		{"undefined local", `output "x" {
  description = "x"
  value       = local.nope
}`, "undefined local.nope"},
		{"undefined resource", `output "x" {
  description = "x"
  value       = aws_instance.nope.id
}`, "undefined reference aws_instance.nope"},
		{"undefined data", `output "x" {
  description = "x"
  value       = data.aws_region.nope.id
}`, "undefined data.aws_region.nope"},
		{"count outside count", `resource "aws_eip" "a" {
  domain = count.index
}`, "count.index used outside"},
		{"each outside for_each", `resource "aws_eip" "a" {
  domain = each.key
}`, "each.key used outside"},
		{"unknown function", `locals {
  a = frobnicate(1)
}
output "x" {
  description = "x"
  value       = local.a
}`, "unknown function frobnicate()"},
		{"untyped variable", `variable "a" {
  description = "a"
}
output "x" {
  description = "x"
  value       = var.a
}`, `variable "a" has no type`},
		{"undescribed variable", `variable "a" {
  type = string
}
output "x" {
  description = "x"
  value       = var.a
}`, `variable "a" has no description`},
		{"secret with default", `variable "admin_password" {
  type        = string
  description = "a"
  sensitive   = true
  default     = "hunter2"
}
output "x" {
  description = "x"
  value       = var.admin_password
  sensitive   = true
}`, `secret variable "admin_password" has a default`},
		{"unused variable", `variable "a" {
  type        = string
  description = "a"
}`, `variable "a" is never used`},
		{"secret in state", `resource "aws_secretsmanager_secret_version" "a" {
  secret_id     = "x"
  secret_string = "x"
}`, "keeps the secret in the state"},
		{"dynamic iterator", `resource "aws_security_group" "a" {
  dynamic "ingress" {
    for_each = [1]
    content {
      from_port = ingress.nope
    }
  }
}`, "a dynamic iterator has only key and value"},
		{"unknown block", `resorce "aws_eip" "a" {}`, `unknown block type "resorce"`},
		{"syntax error", `resource "aws_eip" "a" {`, "hclsyntax"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tc.src+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m, problems := tfcheck.Load(dir)
			if m.Inspect != nil && len(problems) == 0 {
				problems = append(problems, tfcheck.CheckVariables(m)...)
				problems = append(problems, tfcheck.CheckSecrets(m)...)
				problems = append(problems, tfcheck.CheckReferences(m)...)
				problems = append(problems, tfcheck.CheckTemplates(m)...)
			}
			joined := strings.Join(problems, "\n")
			if !strings.Contains(joined, tc.want) {
				t.Errorf("want a problem containing %q, got:\n%s", tc.want, joined)
			}
		})
	}

	// Module calls: unknown argument, missing required variable, unknown output.
	dir := t.TempDir()
	child := filepath.Join(dir, "child")
	os.MkdirAll(child, 0o755)
	os.WriteFile(filepath.Join(child, "main.tf"), []byte(`variable "need" {
  type        = string
  description = "x"
}
output "out" {
  description = "x"
  value       = var.need
}
`), 0o644)
	os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`module "c" {
  source = "./child"
  extra  = 1
}
output "x" {
  description = "x"
  value       = module.c.nope
}
`), 0o644)
	m, problems := tfcheck.Load(dir)
	problems = append(problems, tfcheck.CheckReferences(m)...)
	joined := strings.Join(problems, "\n")
	for _, want := range []string{`has no variable "extra"`, `required variable "need" not set`, `has no output "nope"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("module call check: want %q, got:\n%s", want, joined)
		}
	}

	// Template variables.
	os.WriteFile(filepath.Join(child, "t.tftpl"), []byte("${a} ${b}\n"), 0o644)
	os.WriteFile(filepath.Join(child, "main.tf"), []byte(`output "x" {
  description = "x"
  value       = templatefile("${path.module}/t.tftpl", { a = 1, c = 2 })
}
`), 0o644)
	m, _ = tfcheck.Load(child)
	joined = strings.Join(tfcheck.CheckTemplates(m), "\n")
	for _, want := range []string{`template variable "b" is not passed`, `passes "c"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("template check: want %q, got:\n%s", want, joined)
		}
	}
}

// TestUnitCheckCatchesMistakes: the unit check fails a unit that runs as
// root, writes state, or listens on a port the defaults do not name.
func TestUnitCheckCatchesMistakes(t *testing.T) {
	src, _ := readUnit(t)
	cases := []struct{ name, from, to, want string }{
		{"wrong port", "MESHMEET_RTC_PORT=7882", "MESHMEET_RTC_PORT=9999", "internal/defaults says port"},
		{"state directory", "[Service]\n", "[Service]\nStateDirectory=meshmeet\n", "StateDirectory set"},
		{"root", "DynamicUser=yes", "DynamicUser=no", "runs as root"},
		{"no tfcheck.Hardening", "ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"},
		{"capability without low port", "AmbientCapabilities=", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "no port below 1024"},
		{"low port without capability", "MESHMEET_HTTP_ADDR=0.0.0.0:7880", "MESHMEET_HTTP_ADDR=0.0.0.0:443", "internal/defaults says port"},
		{"short stop timeout", "TimeoutStopSec=10min", "TimeoutStopSec=30s", "TimeoutStopSec"},
		{"secret value", "Environment=MESHMEET_LOG_FORMAT=json", "Environment=MESHMEET_CLUSTER_SECRET=abc", "secret value"},
		{"unknown flag", "ExecStart=/usr/local/bin/meshmeet serve", "ExecStart=/usr/local/bin/meshmeet serve --frobnicate=1", "unknown flag --frobnicate"},
		{"log file", "StandardOutput=journal", "StandardOutput=append:/var/log/meshmeet.log", "journal only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(src, tc.from) {
				t.Fatalf("the unit has no %q to change", tc.from)
			}
			u, err := tfcheck.ParseUnit(strings.Replace(src, tc.from, tc.to, 1))
			if err != nil {
				t.Fatal(err)
			}
			_, problems := tfcheck.CheckUnit(u, cliFlags(t))
			if joined := strings.Join(problems, "\n"); !strings.Contains(joined, tc.want) {
				t.Errorf("want a problem containing %q, got:\n%s", tc.want, joined)
			}
		})
	}
}

// TestTFLint runs tflint's bundled Terraform ruleset where tflint is
// installed (go install github.com/terraform-linters/tflint@latest).
func TestTFLint(t *testing.T) {
	tflint, err := exec.LookPath("tflint")
	if err != nil {
		t.Skip("tflint not on PATH")
	}
	cfg, err := filepath.Abs(".tflint.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.Command(tflint, "--config="+cfg, "--chdir="+dir, "--format=compact")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("tflint %s: %v\n%s", dir, err, out)
			}
		})
	}
}

// writeFiles extracts cloud-init's write_files entries (path → content) from
// rendered user data. It understands the layout the template uses: a
// "  - path: P" line, then a "    content: |" block indented by six spaces.
func writeFiles(t *testing.T, userData string) map[string]string {
	t.Helper()
	files := map[string]string{}
	lines := strings.Split(userData, "\n")
	path := ""
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if p, ok := strings.CutPrefix(line, "  - path: "); ok {
			path = strings.TrimSpace(p)
			continue
		}
		if strings.TrimSpace(line) != "content: |" || path == "" {
			continue
		}
		var b strings.Builder
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], "      ") || strings.TrimSpace(lines[i+1]) == "") {
			i++
			b.WriteString(strings.TrimPrefix(lines[i], "      ") + "\n")
		}
		files[path] = strings.TrimRight(b.String(), "\n") + "\n"
		path = ""
	}
	return files
}

// TestBootFiles checks what cloud-init writes: valid YAML (with python3's
// yaml where installed), shell scripts that bash -n and shellcheck accept,
// and systemd units that systemd-analyze verify accepts.
func TestBootFiles(t *testing.T) {
	region := mustLoad(t, "modules/region")
	userData := renderUserData(t, region, evalLocal(t, region, "ports"))
	files := writeFiles(t, userData)
	for _, want := range []string{
		"/etc/systemd/system/meshmeet.service",
		"/etc/systemd/system/meshmeet-aws-boot.service",
		"/etc/systemd/system/meshmeet-aws-lifecycle.service",
		"/etc/systemd/system/etc-meshmeet-credstore.mount",
		"/etc/systemd/system/meshmeet.service.d/turn-tls.conf",
		"/usr/local/libexec/meshmeet-aws-boot",
		"/usr/local/libexec/meshmeet-aws-lifecycle",
		"/etc/meshmeet/aws.conf",
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("user data does not write %s", want)
		}
	}
	unitSrc, _ := readUnit(t)
	if files["/etc/systemd/system/meshmeet.service"] != unitSrc {
		t.Error("the installed meshmeet.service differs from deploy/systemd/meshmeet.service")
	}

	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import yaml").Run() == nil {
		cmd := exec.Command(py, "-c", `import sys, yaml, json
d = yaml.safe_load(sys.stdin)
json.dump({f["path"]: f["content"] for f in d["write_files"]}, sys.stdout)`)
		cmd.Stdin = strings.NewReader(userData)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("user data is not valid YAML: %v", err)
		}
		for path, content := range files {
			if !strings.Contains(string(out), fmt.Sprintf("%q", path)) {
				t.Errorf("YAML parser does not see %s", path)
			}
			_ = content
		}
	} else {
		t.Log("python3 yaml not installed: YAML not parsed")
	}

	dir := t.TempDir()
	var scripts []string
	for path, content := range files {
		if !strings.HasPrefix(content, "#!/bin/bash") && !strings.HasSuffix(path, "meshmeet-aws-imds") {
			continue
		}
		name := filepath.Join(dir, filepath.Base(path))
		if err := os.WriteFile(name, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, name)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		for _, s := range scripts {
			if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", filepath.Base(s), err, out)
			}
		}
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		for _, s := range scripts {
			// SC1091: sourced files are not available to follow.
			if out, err := exec.Command(sc, "--shell=bash", "--exclude=SC1091", s).CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s:\n%s", filepath.Base(s), out)
			}
		}
	} else {
		t.Log("shellcheck not installed: scripts only checked with bash -n")
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units not verified")
		return
	}
	units := filepath.Join(dir, "units")
	var names []string
	for path, content := range files {
		if !strings.HasPrefix(path, "/etc/systemd/system/") {
			continue
		}
		rel := strings.TrimPrefix(path, "/etc/systemd/system/")
		// Point ExecStart at files that exist here.
		content = strings.ReplaceAll(content, "/usr/local/bin/meshmeet", "/bin/true")
		content = strings.ReplaceAll(content, "/usr/local/libexec/", dir+"/")
		if err := os.MkdirAll(filepath.Dir(filepath.Join(units, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(units, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rel, "/") {
			names = append(names, filepath.Join(units, rel))
		}
	}
	sort.Strings(names)
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, names...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+units+":")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// globalTypes are resource and data types that belong to no region (or to
// Terraform itself).
var globalTypes = regexp.MustCompile(`^(aws_iam_|aws_route53_|aws_caller_identity$|aws_partition$|terraform_data$|random_)`)

// TestEveryRegionalResourceNamesItsRegion: with one provider configuration
// for all regions, a regional resource without a region argument would
// silently land in the provider's default region.
func TestEveryRegionalResourceNamesItsRegion(t *testing.T) {
	for _, dir := range []string{"modules/region", "modules/cluster"} {
		m := mustLoad(t, dir)
		for _, typ := range []string{"resource", "data"} {
			for _, b := range m.Blocks(typ) {
				if globalTypes.MatchString(b.Labels[0]) {
					continue
				}
				if b.Body.Attributes["region"] == nil {
					t.Errorf("%s: %s %s.%s has no region argument", b.DefRange(), typ, b.Labels[0], b.Labels[1])
				}
			}
		}
	}
}

// TestDocsPortTable: the port table of docs/deploy.md lists every default
// port of internal/defaults, and no other meshmeet port.
func TestDocsPortTable(t *testing.T) {
	src := string(mustRead(t, "../../docs/deploy.md"))
	row := regexp.MustCompile(`(?m)^\| (\d+) \| (TCP|UDP|UDP \+ TCP) \|`)
	listed := map[int]bool{}
	for _, m := range row.FindAllStringSubmatch(src, -1) {
		p, _ := strconv.Atoi(m[1])
		listed[p] = true
	}
	want := map[int]bool{httpsPort: true}
	for _, p := range meshmeetPorts {
		want[p] = true
	}
	for p := range want {
		if !listed[p] {
			t.Errorf("docs/deploy.md's port table lacks %d", p)
		}
	}
	for p := range listed {
		if !want[p] {
			t.Errorf("docs/deploy.md's port table lists %d, which is not a default port", p)
		}
	}
}

// TestNodeOwnURLs: every fixed node gets a name of its own,
// <node name>.<domain>, on a load balancer of its own that terminates TLS on
// 443 and forwards to that node's HTTP port only, and gossips it as its
// --public-url (instance tag read by the boot script): placement redirects
// participants there (docs/cluster.md, Placement).
func TestNodeOwnURLs(t *testing.T) {
	region := mustLoad(t, "modules/region")
	ports := evalLocal(t, region, "ports")
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(map[string]cty.Value{"ports": ports})}}
	text := func(b *hclsyntax.Block, attr string) string {
		t.Helper()
		a := b.Body.Attributes[attr]
		if a == nil {
			t.Fatalf("%s.%s has no %s", b.Labels[0], b.Labels[1], attr)
		}
		return string(a.Expr.Range().SliceBytes(mustRead(t, a.Expr.Range().Filename)))
	}
	need := func(typ, name string) *hclsyntax.Block {
		t.Helper()
		b := region.Resource(typ, name)
		if b == nil {
			t.Fatalf("no %s.%s", typ, name)
		}
		if got := text(b, "count"); got != "length(var.nodes)" {
			t.Errorf("%s.%s count = %s, want one per fixed node", typ, name, got)
		}
		return b
	}
	lb := need("aws_lb", "node")
	if got := text(lb, "load_balancer_type"); got != `"network"` {
		t.Errorf("per-node load balancer type %s", got)
	}
	if got := text(lb, "security_groups"); got != "[aws_security_group.lb.id]" {
		t.Errorf("per-node load balancer security groups %s, want the region's lb group (443 only)", got)
	}
	ln := need("aws_lb_listener", "node")
	v, diags := ln.Body.Attributes["port"].Expr.Value(ctx)
	if diags.HasErrors() || asInt(t, v, "port") != httpsPort || text(ln, "protocol") != `"TLS"` {
		t.Errorf("per-node listener: port %v protocol %s, want TLS on %d", v, text(ln, "protocol"), httpsPort)
	}
	if got := text(ln, "load_balancer_arn"); got != "aws_lb.node[count.index].arn" {
		t.Errorf("per-node listener on %s", got)
	}
	tg := need("aws_lb_target_group", "node")
	v, diags = tg.Body.Attributes["port"].Expr.Value(ctx)
	if diags.HasErrors() || asInt(t, v, "port") != defaults.HTTPPort {
		t.Errorf("per-node target group port %v, want %d", v, defaults.HTTPPort)
	}
	att := need("aws_lb_target_group_attachment", "node_own")
	if got := text(att, "target_id"); got != "aws_instance.node[count.index].id" {
		t.Errorf("per-node target group holds %s, want that node only", got)
	}
	if got := text(att, "target_group_arn"); got != "aws_lb_target_group.node[count.index].arn" {
		t.Errorf("per-node attachment to %s", got)
	}
	rec := need("aws_route53_record", "node")
	if got := text(rec, "name"); got != `"${var.nodes[count.index].name}.${var.domain}"` {
		t.Errorf("per-node DNS name %s", got)
	}
	// The instance tag the boot script turns into MESHMEET_PUBLIC_URL
	// names the same host.
	inst := region.Resource("aws_instance", "node")
	if inst == nil || !strings.Contains(text(inst, "tags"), `meshmeet-public-url = "https://${var.nodes[count.index].name}.${var.domain}"`) {
		t.Error("fixed nodes' meshmeet-public-url tag is not https://<node name>.<domain>")
	}
}

// exprText is the source text of e.
func exprText(t *testing.T, e hclsyntax.Expression) string {
	t.Helper()
	return string(e.Range().SliceBytes(mustRead(t, e.Range().Filename)))
}

// objectItem returns the source text of key's value in an object
// constructor, looking through merge(...) arguments; "" if absent.
func objectItem(t *testing.T, e hclsyntax.Expression, key string) string {
	t.Helper()
	switch e := e.(type) {
	case *hclsyntax.FunctionCallExpr:
		if e.Name == "merge" {
			for _, a := range e.Args {
				if v := objectItem(t, a, key); v != "" {
					return v
				}
			}
		}
	case *hclsyntax.ObjectConsExpr:
		for _, it := range e.Items {
			if k, diags := it.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String && k.AsString() == key {
				return exprText(t, it.ValueExpr)
			}
		}
	}
	return ""
}

// Terraform's length, alltrue and contains, enough for the preconditions.
var preconditionFuncs = map[string]function.Function{
	"length": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Number),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if args[0].Type() == cty.String {
				return cty.NumberIntVal(int64(len(args[0].AsString()))), nil
			}
			return args[0].Length(), nil
		},
	}),
	"alltrue": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); v.False() {
					return cty.False, nil
				}
			}
			return cty.True, nil
		},
	}),
	"contains": function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType}, {Name: "v", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); v.Equals(args[1]).True() {
					return cty.True, nil
				}
			}
			return cty.False, nil
		},
	}),
}

// TestAutoscaledNodeOwnURLs: every address of an autoscaling group's pool
// is a slot with a name of its own, <region>-auto-<k>.<domain>, on the
// region's application load balancer (TLS on 443 with the region's
// certificate), whose listener forwards that host only to the slot's
// target group; the group is named so that the boot script finds it from
// the address it took, and tagged with the URL it gossips. The node role
// may register and deregister targets in those groups only, and touches
// no DNS record.
func TestAutoscaledNodeOwnURLs(t *testing.T) {
	region := mustLoad(t, "modules/region")
	ports := evalLocal(t, region, "ports")
	need := func(typ, name, count string) *hclsyntax.Block {
		t.Helper()
		b := region.Resource(typ, name)
		if b == nil {
			t.Fatalf("no %s.%s", typ, name)
		}
		if a := b.Body.Attributes["count"]; a == nil || exprText(t, a.Expr) != count {
			t.Errorf("%s.%s: want count = %s", typ, name, count)
		}
		return b
	}
	text := func(b *hclsyntax.Block, attr string) string {
		t.Helper()
		a := b.Body.Attributes[attr]
		if a == nil {
			t.Fatalf("%s.%s has no %s", b.Labels[0], b.Labels[1], attr)
		}
		return exprText(t, a.Expr)
	}
	block := func(b *hclsyntax.Block, typ string) *hclsyntax.Block {
		t.Helper()
		for _, c := range b.Body.Blocks {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("%s.%s has no %s block", b.Labels[0], b.Labels[1], typ)
		return nil
	}

	// The slots: one per pool address, in its order, none without a group.
	slotsExpr := region.Locals["slots"]
	if slotsExpr == nil {
		t.Fatal("no local.slots")
	}
	vars := func(autoscaling cty.Value, pool []string, domain string, nodes ...string) map[string]cty.Value {
		p := []cty.Value{}
		for _, a := range pool {
			p = append(p, cty.StringVal(a))
		}
		n := []cty.Value{}
		for _, name := range nodes {
			n = append(n, cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(name)}))
		}
		return map[string]cty.Value{
			"autoscaling":         autoscaling,
			"pool_allocation_ids": cty.TupleVal(p),
			"region":              cty.StringVal("ap-southeast-1"),
			"domain":              cty.StringVal(domain),
			"nodes":               cty.TupleVal(n),
		}
	}
	group := cty.ObjectVal(map[string]cty.Value{"min_size": cty.NumberIntVal(0), "max_size": cty.NumberIntVal(2)})
	slots := func(v map[string]cty.Value) cty.Value {
		t.Helper()
		s, diags := slotsExpr.Expr.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(v)}})
		if diags.HasErrors() {
			t.Fatalf("local.slots: %s", diags.Error())
		}
		return s
	}
	s := slots(vars(group, []string{"eipalloc-0a", "eipalloc-0b"}, "meet.example.com"))
	var hosts []string
	for it := s.ElementIterator(); it.Next(); {
		_, v := it.Element()
		hosts = append(hosts, v.GetAttr("allocation_id").AsString()+" "+v.GetAttr("host").AsString())
	}
	if got, want := strings.Join(hosts, ", "), "eipalloc-0a ap-southeast-1-auto-1.meet.example.com, eipalloc-0b ap-southeast-1-auto-2.meet.example.com"; got != want {
		t.Errorf("slots: %s, want %s", got, want)
	}
	if s := slots(vars(cty.NullVal(group.Type()), []string{"eipalloc-0a"}, "meet.example.com")); s.LengthInt() != 0 {
		t.Errorf("%d slots without an autoscaling group", s.LengthInt())
	}

	// The application load balancer and its TLS listener.
	alb := need("aws_lb", "auto", "length(local.slots) > 0 ? 1 : 0")
	if got := text(alb, "load_balancer_type"); got != `"application"` {
		t.Errorf("autoscaled load balancer type %s", got)
	}
	if got := text(alb, "security_groups"); got != "[aws_security_group.lb.id]" {
		t.Errorf("autoscaled load balancer security groups %s, want the region's lb group (443 only)", got)
	}
	ln := need("aws_lb_listener", "auto", "length(local.slots) > 0 ? 1 : 0")
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(map[string]cty.Value{"ports": ports})}}
	v, diags := ln.Body.Attributes["port"].Expr.Value(ctx)
	if diags.HasErrors() || asInt(t, v, "port") != httpsPort || text(ln, "protocol") != `"HTTPS"` {
		t.Errorf("autoscaled listener: port %v protocol %s, want HTTPS on %d", v, text(ln, "protocol"), httpsPort)
	}
	if got, want := text(ln, "certificate_arn"), text(region.Resource("aws_lb_listener", "https"), "certificate_arn"); got != want {
		t.Errorf("autoscaled listener certificate %s, want the region's, %s", got, want)
	}
	if got := text(ln, "load_balancer_arn"); got != "aws_lb.auto[0].arn" {
		t.Errorf("autoscaled listener on %s", got)
	}
	if got := text(block(ln, "default_action"), "type"); got != `"fixed-response"` {
		t.Errorf("autoscaled listener's default action %s: a host that is no slot's must reach no node", got)
	}

	// One target group per slot, found by name from the address.
	prefix := evalLocal(t, region, "slot_target_group_prefix").AsString()
	tg := need("aws_lb_target_group", "auto", "length(local.slots)")
	if got := text(tg, "name"); got != `"${local.slot_target_group_prefix}${trimprefix(local.slots[count.index].allocation_id, "eipalloc-")}"` {
		t.Errorf("slot target group name %s: the boot script looks it up as SLOT_PREFIX + the allocation ID without eipalloc-", got)
	}
	if n := len(prefix) + len("0123456789abcdef0"); n > 32 {
		t.Errorf("slot target group names are %d characters, over ELB's 32", n)
	}
	v, diags = tg.Body.Attributes["port"].Expr.Value(ctx)
	if diags.HasErrors() || asInt(t, v, "port") != defaults.HTTPPort || text(tg, "protocol") != `"HTTP"` {
		t.Errorf("slot target group port %v protocol %s, want HTTP to %d", v, text(tg, "protocol"), defaults.HTTPPort)
	}
	if got := text(tg, "deregistration_delay"); got != "var.drain_timeout_seconds" {
		t.Errorf("slot target group deregistration_delay = %s", got)
	}
	if got := text(block(tg, "health_check"), "path"); got != `"/healthz"` {
		t.Errorf("slot target group health check %s, want /healthz (liveness; placement decides who joins)", got)
	}
	tags := tg.Body.Attributes["tags"].Expr
	if got := objectItem(t, tags, "meshmeet-public-url"); got != `"https://${local.slots[count.index].host}"` {
		t.Errorf("slot target group's meshmeet-public-url tag %q, want https://<slot host>", got)
	}
	if got := objectItem(t, tags, "meshmeet-eip-allocation"); got != "local.slots[count.index].allocation_id" {
		t.Errorf("slot target group's meshmeet-eip-allocation tag %q (the node role's policy needs it)", got)
	}
	if !strings.HasPrefix(exprText(t, tags), "merge(local.tags,") || !strings.Contains(exprText(t, region.Locals["tags"].Expr), "meshmeet-cluster = var.name") {
		t.Error("slot target groups must carry the meshmeet-cluster tag (the node role's policy needs it)")
	}

	// The listener sends each slot's host to its group only.
	rule := need("aws_lb_listener_rule", "auto", "length(local.slots)")
	if got := text(rule, "listener_arn"); got != "aws_lb_listener.auto[0].arn" {
		t.Errorf("slot rule on %s", got)
	}
	if got := text(block(block(rule, "condition"), "host_header"), "values"); got != "[local.slots[count.index].host]" {
		t.Errorf("slot rule matches %s, want the slot's host", got)
	}
	if got := text(block(rule, "action"), "target_group_arn"); got != "aws_lb_target_group.auto[count.index].arn" {
		t.Errorf("slot rule forwards to %s", got)
	}
	rec := need("aws_route53_record", "auto", "length(local.slots)")
	if got := text(rec, "name"); got != "local.slots[count.index].host" {
		t.Errorf("slot DNS name %s", got)
	}
	if got := text(block(rec, "alias"), "name"); got != "aws_lb.auto[0].dns_name" {
		t.Errorf("slot DNS name points at %s", got)
	}

	// The group's nodes boot once their names work, and the names fit.
	asg := region.Resource("aws_autoscaling_group", "node")
	if !strings.Contains(text(asg, "depends_on"), "aws_lb_listener_rule.auto") {
		t.Error("the autoscaling group does not wait for the slots' rules")
	}
	var pre hclsyntax.Expression
	for _, b := range block(asg, "lifecycle").Body.Blocks {
		if b.Type == "precondition" && strings.Contains(text(b, "condition"), "local.slots") {
			pre = b.Body.Attributes["condition"].Expr
		}
	}
	if pre == nil {
		t.Fatal("no precondition on the slots' URLs")
	}
	pool := func(n int) []string {
		var p []string
		for i := range n {
			p = append(p, fmt.Sprintf("eipalloc-%017x", i))
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		vars   map[string]cty.Value
		accept bool
	}{
		{"fits", vars(group, pool(12), "meet.example.com", "ap-southeast-1-1"), true},
		{"64 bytes", vars(group, pool(9), strings.Repeat("m", 64-len("https://ap-southeast-1-auto-9.")-len(".org"))+".org"), true},
		{"65 bytes", vars(group, pool(10), strings.Repeat("m", 64-len("https://ap-southeast-1-auto-9.")-len(".org"))+".org"), false},
		{"a fixed node's name", vars(group, pool(2), "meet.example.com", "ap-southeast-1-auto-2"), false},
		{"over 100 rules", vars(group, pool(101), "x.io"), false},
	} {
		v := tc.vars
		ectx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": cty.ObjectVal(v), "local": cty.ObjectVal(map[string]cty.Value{"slots": slots(v)})},
			Functions: preconditionFuncs,
		}
		got, diags := pre.Value(ectx)
		if diags.HasErrors() {
			t.Fatalf("%s: precondition: %s", tc.name, diags.Error())
		}
		if got.True() != tc.accept {
			t.Errorf("%s: precondition says %v, want %v", tc.name, got.True(), tc.accept)
		}
	}

	// The node role: targets of this cluster's slot groups, nothing else.
	cluster := mustLoad(t, "modules/cluster")
	if got := evalLocal(t, cluster, "slot_target_group_prefix").AsString(); got != prefix {
		t.Errorf("cluster module's slot_target_group_prefix %q, region module's %q", got, prefix)
	}
	var doc *hclsyntax.Block
	for _, b := range cluster.Blocks("data") {
		if b.Labels[0] == "aws_iam_policy_document" && b.Labels[1] == "node" {
			doc = b
		}
	}
	if doc == nil {
		t.Fatal("no policy document for the nodes")
	}
	var statements []*hclsyntax.Block
	for _, b := range doc.Body.Blocks {
		switch {
		case b.Type == "statement":
			statements = append(statements, b)
		case b.Type == "dynamic" && b.Labels[0] == "statement":
			statements = append(statements, block(b, "content"))
		}
	}
	strs := func(b *hclsyntax.Block, attr string) []string {
		t.Helper()
		a := b.Body.Attributes[attr]
		if a == nil {
			return nil
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return []string{exprText(t, a.Expr)}
		}
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, e.AsString())
		}
		return out
	}
	found := false
	for _, st := range statements {
		sid := ""
		if a := st.Body.Attributes["sid"]; a != nil {
			sid = exprText(t, a.Expr)
		}
		for _, action := range strs(st, "actions") {
			switch {
			case strings.HasPrefix(action, "route53:"):
				t.Errorf("statement %s lets nodes change DNS (%s)", sid, action)
			case strings.HasPrefix(action, "elasticloadbalancing:Describe"):
			case strings.HasPrefix(action, "elasticloadbalancing:") && sid != `"ServeOwnName"`:
				t.Errorf("statement %s grants %s", sid, action)
			}
		}
		if sid != `"ServeOwnName"` {
			continue
		}
		found = true
		if got := strings.Join(strs(st, "actions"), " "); got != "elasticloadbalancing:RegisterTargets elasticloadbalancing:DeregisterTargets" {
			t.Errorf("ServeOwnName actions %s", got)
		}
		if got := text(st, "resources"); !strings.Contains(got, ":targetgroup/${local.slot_target_group_prefix}*/*") {
			t.Errorf("ServeOwnName resources %s, want the slot groups' names only", got)
		}
		var conds []string
		for _, c := range st.Body.Blocks {
			if c.Type == "condition" {
				conds = append(conds, text(c, "test")+" "+text(c, "variable")+" "+text(c, "values"))
			}
		}
		sort.Strings(conds)
		want := []string{
			`"Null" "aws:ResourceTag/meshmeet-eip-allocation" ["false"]`,
			`"StringEquals" "aws:ResourceTag/meshmeet-cluster" [var.name]`,
		}
		if strings.Join(conds, "\n") != strings.Join(want, "\n") {
			t.Errorf("ServeOwnName conditions:\n%s\nwant:\n%s", strings.Join(conds, "\n"), strings.Join(want, "\n"))
		}
	}
	if !found {
		t.Error("the node role has no ServeOwnName statement: autoscaled nodes cannot take their names")
	}

	// The cluster module passes the pool in numeric order, so that raising
	// max_size appends slots instead of renaming running nodes' addresses.
	var call *hclsyntax.Block
	for _, b := range cluster.Blocks("module") {
		if b.Labels[0] == "region" {
			call = b
		}
	}
	if got := exprText(t, call.Body.Attributes["pool_allocation_ids"].Expr); !strings.Contains(got, "range(") {
		t.Errorf("pool_allocation_ids = %s: want the pool in numeric order (range over max_size)", got)
	}
}
