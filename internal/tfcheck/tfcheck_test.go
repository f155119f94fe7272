package tfcheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/meshmeet/meshmeet/internal/defaults"
)

// writeModule writes files (name → content) into a fresh directory.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantProblems fails unless every want is a substring of some problem,
// and, when want is empty, unless there are none.
func wantProblems(t *testing.T, what string, problems []string, want ...string) {
	t.Helper()
	if len(want) == 0 && len(problems) > 0 {
		t.Errorf("%s: unexpected problems:\n%s", what, strings.Join(problems, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("%s: no problem mentions %q; got:\n%s", what, w, strings.Join(problems, "\n"))
		}
	}
}

// good is a small module every check accepts.
var good = map[string]string{
	"main.tf": `
variable "name" {
  type        = string
  description = "Name of things."
}

variable "admin_token" {
  type        = string
  description = "A secret."
  sensitive   = true
}

locals {
  port  = 7880
  ports = { http = 7880 }
}

resource "aws_security_group" "node" {
  name = var.name
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  security_group_id = aws_security_group.node.id
  ip_protocol       = "tcp"
  from_port         = local.ports.http
  to_port           = local.ports.http
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_instance" "node" {
  count     = 2
  tags      = { Name = "${var.name}-${count.index}", Token = sha256(var.admin_token) }
  user_data = templatefile("${path.module}/boot.sh.tftpl", { port = local.port })
  dynamic "ebs_block_device" {
    for_each = toset(["a"])
    content {
      device_name = ebs_block_device.value
    }
  }
}

output "id" {
  description = "The instances."
  value       = aws_instance.node[*].id
}
`,
	"boot.sh.tftpl": "#!/bin/sh\necho ${port}\n",
}

func TestGoodModule(t *testing.T) {
	m, problems := Load(writeModule(t, good))
	wantProblems(t, "Load", problems)
	if m.Resource("aws_instance", "node") == nil || len(m.Blocks("variable")) != 2 {
		t.Fatalf("resources or variables missing: %v", m.Inspect.ManagedResources)
	}
	wantProblems(t, "CheckVariables", CheckVariables(m))
	wantProblems(t, "CheckSecrets", CheckSecrets(m))
	wantProblems(t, "CheckReferences", CheckReferences(m))
	wantProblems(t, "CheckTemplates", CheckTemplates(m))

	v, err := m.EvalLocal("port")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := AsInt(v); err != nil || n != 7880 {
		t.Errorf("local.port = %d, %v", n, err)
	}
	ports := cty.ObjectVal(map[string]cty.Value{"http": cty.NumberIntVal(7880)})
	rules, problems, err := SecurityGroupRules(m, ports)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "SecurityGroupRules", problems)
	if want := []string{"node tcp 7880 from anywhere"}; !slices.Equal(rules, want) {
		t.Errorf("rules %v, want %v", rules, want)
	}
}

// Each case breaks the good module in one way; the named check must say so.
func TestChecksCatchMistakes(t *testing.T) {
	main := good["main.tf"]
	for _, tc := range []struct {
		name       string
		old, new   string // replaced in main.tf; old "" appends new
		check      func(*Module) []string
		wantSubstr string
	}{
		{"undefined variable", "${var.name}-", "${var.nme}-", CheckReferences, "undefined variable var.nme"},
		{"unused variable", "", "variable \"spare\" {\n  type = string\n  description = \"x\"\n}\n", CheckReferences, `variable "spare" is never used`},
		{"unknown function", "sha256(var.admin_token)", "sha257(var.admin_token)", CheckReferences, "unknown function sha257()"},
		{"count outside count", "  count     = 2\n", "", CheckReferences, "count.index used outside a block with count"},
		{"undefined resource", "aws_security_group.node.id", "aws_security_group.nodes.id", CheckReferences, "undefined reference aws_security_group.nodes"},
		{"dynamic iterator", "ebs_block_device.value", "ebs_block_device.val", CheckReferences, "a dynamic iterator has only key and value"},
		{"undefined local", "{ port = local.port }", "{ port = local.prot }", CheckReferences, "undefined local.prot"},
		{"variable without description", "  description = \"Name of things.\"\n", "", CheckVariables, `variable "name" has no description`},
		{"secret with default", "  sensitive   = true\n", "  sensitive   = true\n  default     = \"x\"\n", CheckVariables, `secret variable "admin_token" has a default`},
		{"secret not sensitive", "  sensitive   = true\n", "", CheckVariables, `secret variable "admin_token" is not sensitive`},
		{"output without description", "  description = \"The instances.\"\n", "", CheckVariables, `output "id" has no description`},
		{"secret in the state", "", "resource \"random_password\" \"p\" {\n  length = 32\n}\n", CheckSecrets, "stores the secret in the state"},
		{"secret_string", "", "resource \"aws_secretsmanager_secret_version\" \"v\" {\n  secret_id = \"x\"\n  secret_string = var.admin_token\n}\n", CheckSecrets, "secret_string keeps the secret in the state"},
		{"template variable not passed", "", "", CheckTemplates, `template variable "host" is not passed`},
		{"template variable unused", "{ port = local.port }", "{ port = local.port, spare = 1 }", CheckTemplates, `passes "spare"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"main.tf": main, "boot.sh.tftpl": good["boot.sh.tftpl"]}
			switch {
			case tc.old != "":
				if !strings.Contains(main, tc.old) {
					t.Fatalf("the good module has no %q", tc.old)
				}
				files["main.tf"] = strings.Replace(main, tc.old, tc.new, 1)
			case tc.new != "":
				files["main.tf"] = main + tc.new
			}
			if tc.name == "template variable not passed" {
				files["boot.sh.tftpl"] = "#!/bin/sh\necho ${port} ${host}\n"
			}
			m, problems := Load(writeModule(t, files))
			wantProblems(t, "Load", problems)
			wantProblems(t, tc.name, tc.check(m), tc.wantSubstr)
		})
	}
}

func TestLoadReportsBadFiles(t *testing.T) {
	_, problems := Load(writeModule(t, map[string]string{"main.tf": `
stray = 1
widget "x" {}
locals {
  a = 1
}
locals {
  a = 2
}
`}))
	wantProblems(t, "Load", problems, `attribute "stray" outside any block`, `unknown block type "widget"`, "local.a defined twice")
	if _, problems := Load(t.TempDir()); len(problems) == 0 {
		t.Error("an empty directory loads without a problem")
	}
}

func TestModuleCalls(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"child/main.tf": `
variable "size" {
  type        = number
  description = "Size."
}
output "out" {
  description = "Out."
  value       = var.size
}
`,
		"main.tf": `
module "c" {
  source = "./child"
  colour = "red"
}
output "x" {
  description = "x"
  value       = module.c.missing
}
`,
	})
	m, problems := Load(dir)
	wantProblems(t, "Load", problems)
	wantProblems(t, "CheckReferences", CheckReferences(m),
		`module "c" has no variable "colour"`, `required variable "size" not set`, `module.c has no output "missing"`)
}

func TestSecurityGroupRulesProblems(t *testing.T) {
	dir := writeModule(t, map[string]string{"main.tf": `
resource "aws_security_group" "node" {
  ingress {
    from_port = 1
  }
}
resource "aws_vpc_security_group_ingress_rule" "range" {
  security_group_id = aws_security_group.node.id
  ip_protocol       = "udp"
  from_port         = local.ports.low
  to_port           = local.ports.high
  cidr_ipv6         = "::/0"
}
`})
	m, _ := Load(dir)
	ports := cty.ObjectVal(map[string]cty.Value{"low": cty.NumberIntVal(1000), "high": cty.NumberIntVal(2000)})
	rules, problems, err := SecurityGroupRules(m, ports)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "SecurityGroupRules", problems, "inline ingress rules", "opens a port range 1000-2000", "has no source", "IPv6 sources")
	if len(rules) != 1 {
		t.Errorf("rules %v", rules)
	}
	// A port that is not from local.ports cannot be evaluated.
	if _, _, err := SecurityGroupRules(m, cty.ObjectVal(map[string]cty.Value{"low": cty.NumberIntVal(1)})); err == nil {
		t.Error("a rule whose port is not in local.ports evaluated")
	}
}

func TestAsInt(t *testing.T) {
	for _, v := range []cty.Value{cty.StringVal("1"), cty.NumberFloatVal(1.5), cty.NullVal(cty.Number), cty.UnknownVal(cty.Number)} {
		if _, err := AsInt(v); err == nil {
			t.Errorf("AsInt(%#v) succeeded", v)
		}
	}
}

func TestParseTimespan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90": 90 * time.Second, "90s": 90 * time.Second, "10min": 10 * time.Minute,
		"1min 30s": 90 * time.Second, "2h": 2 * time.Hour,
	} {
		if got, err := ParseTimespan(in); err != nil || got != want {
			t.Errorf("ParseTimespan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"10 fortnights", "x"} {
		if _, err := ParseTimespan(in); err == nil {
			t.Errorf("ParseTimespan(%q) succeeded", in)
		}
	}
}

// goodUnit is a minimal unit CheckUnit accepts.
const goodUnit = `# comment
[Service]
ExecStart=/usr/local/bin/meshmeet serve
Environment=MESHMEET_HTTP_ADDR=0.0.0.0:7880 MESHMEET_RTC_PORT=7882
Environment=MESHMEET_GOSSIP_ADDR=0.0.0.0:7946
Environment=MESHMEET_RAFT_ADDR=0.0.0.0:7947
Environment=MESHMEET_RELAY_ADDR=0.0.0.0:7443
Environment=MESHMEET_TURN_ADDR=0.0.0.0:3478
Environment=MESHMEET_CLUSTER_SECRET_FILE=%d/cluster-secret
LoadCredential=cluster-secret:/etc/credstore/cluster-secret
Restart=on-failure
TimeoutStopSec=10min
DynamicUser=yes
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
MemoryDenyWriteExecute=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
StandardOutput=journal
`

func TestUnit(t *testing.T) {
	u, err := ParseUnit(goodUnit)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := u.Last("Service", "TimeoutStopSec"); !ok || v != "10min" {
		t.Errorf("Last(TimeoutStopSec) = %q, %v", v, ok)
	}
	if env := u.Env(); env["MESHMEET_RTC_PORT"] != "7882" || env["MESHMEET_HTTP_ADDR"] != "0.0.0.0:7880" {
		t.Errorf("Env() = %v", env)
	}
	listeners, problems := CheckUnit(u, ServeFlags)
	wantProblems(t, "CheckUnit", problems)
	if !slices.Contains(listeners, "udp 7443") || !slices.Contains(listeners, "tcp 7882") {
		t.Errorf("listeners %v", listeners)
	}
	if _, err := ParseUnit("Key=value before a section\n"); err == nil {
		t.Error("a key outside a section parsed")
	}

	for _, tc := range []struct{ old, new, want string }{
		{"ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"},
		{"DynamicUser=yes", "", "runs as root"},
		{"TimeoutStopSec=10min", "TimeoutStopSec=30s", "TimeoutStopSec"},
		{"StandardOutput=journal", "StandardOutput=file:/var/log/m", "log to the journal only"},
		{"Restart=on-failure", "Restart=no", "Restart=no"},
		{"serve\n", "serve --cluster-secret=abc\n", "puts a secret value"},
		{"serve\n", "serve --no-such-flag\n", "unknown flag --no-such-flag"},
		{"MESHMEET_RTC_PORT=7882", "MESHMEET_RTC_PORT=9999", "internal/defaults says port 7882"},
		{"Environment=MESHMEET_RELAY_ADDR=0.0.0.0:7443\n", "", "does not set MESHMEET_RELAY_ADDR"},
		{"LoadCredential=cluster-secret:", "LoadCredential=other:", "no LoadCredential=cluster-secret"},
		{"AF_UNIX", "AF_UNIX AF_PACKET", "allows AF_PACKET"},
		{"CapabilityBoundingSet=", "CapabilityBoundingSet=CAP_NET_ADMIN", "CapabilityBoundingSet"},
		{"StandardOutput=journal", "StandardOutput=journal\nStateDirectory=meshmeet", "keeps nothing on disk"},
	} {
		src := strings.Replace(goodUnit, tc.old, tc.new, 1)
		if src == goodUnit {
			t.Fatalf("the good unit has no %q", tc.old)
		}
		u, err := ParseUnit(src)
		if err != nil {
			t.Fatal(err)
		}
		_, problems := CheckUnit(u, ServeFlags)
		wantProblems(t, tc.old+" → "+tc.new, problems, tc.want)
	}
}

func TestCheckEnv(t *testing.T) {
	listeners, problems := CheckEnv("env", map[string]string{
		"MESHMEET_TURN_TLS_ADDR": "0.0.0.0:5349",
		"MESHMEET_JWT_SECRET":    "x",
		"MESHMEET_BOGUS":         "1",
		"OTHER":                  "ignored",
	}, ServeFlags)
	wantProblems(t, "CheckEnv", problems, "MESHMEET_JWT_SECRET puts a secret value", "MESHMEET_BOGUS is not a flag")
	if defaults.TURNTLSPort == 5349 && !slices.Equal(listeners, []string{"tcp 5349"}) {
		t.Errorf("listeners %v", listeners)
	}
}

func TestDeclaredFlags(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"a.go":      "package main\n\nvar f = []any{&cli.StringFlag{Name: \"http-addr\"}, &cli.BoolFlag{Name: \"quiet\", Usage: \"x\"}, &other.Thing{Name: \"not-a-flag\"}}\n",
		"a_test.go": "package main\n\nvar g = &cli.StringFlag{Name: \"test-only\"}\n",
	})
	got, err := DeclaredFlags(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["http-addr"] || !got["quiet"] {
		t.Errorf("DeclaredFlags = %v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.go"), []byte("package main\nfunc {"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DeclaredFlags(dir); err == nil {
		t.Error("a file that does not parse gave no error")
	}
}
