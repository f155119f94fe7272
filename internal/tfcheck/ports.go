package tfcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/meshmeet/meshmeet/internal/defaults"
)

// listenerEnv maps each MESHMEET_ variable that names a listener to its
// default port and protocols.
var listenerEnv = map[string]struct {
	port   int
	protos []string
}{
	"MESHMEET_HTTP_ADDR":     {defaults.HTTPPort, []string{"tcp"}},
	"MESHMEET_RTC_PORT":      {defaults.RTCPort, []string{"udp", "tcp"}},
	"MESHMEET_GOSSIP_ADDR":   {defaults.GossipPort, []string{"udp", "tcp"}},
	"MESHMEET_RAFT_ADDR":     {defaults.RaftPort, []string{"tcp"}},
	"MESHMEET_RELAY_ADDR":    {defaults.RelayPort, []string{"udp"}},
	"MESHMEET_TURN_ADDR":     {defaults.TURNPort, []string{"udp", "tcp"}},
	"MESHMEET_TURN_TLS_ADDR": {defaults.TURNTLSPort, []string{"tcp"}},
}

// ServeFlags are the flags of `meshmeet serve` (DESIGN.md section 10).
var ServeFlags = skipAttrs(
	"http-addr", "rtc-port", "public-ip", "node-name", "region", "lat", "lon",
	"join", "gossip-addr", "raft-addr", "relay-addr", "raft-voter",
	"bootstrap-expect", "cluster-secret-file", "turn-addr", "turn-tls-addr",
	"turn-cert", "turn-key", "no-turn", "turn-allow-peer", "turn-secret-file",
	"auth", "jwt-secret-file", "jwt-public-key", "auth-create-only",
	"metrics-addr", "log-level", "log-format",
	// section 9
	"cluster-ca", "node-cert", "node-key",
)

// EnvName is the environment variable that sets a flag of meshmeet serve.
func EnvName(flag string) string {
	return "MESHMEET_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// RuleString formats one security group ingress rule as "<group> <proto>
// <port> from <source>".
func RuleString(group, proto string, port int, source string) string {
	return fmt.Sprintf("%s %s %d from %s", group, proto, port, source)
}

// SecurityGroupRules evaluates the ingress rules of m with local.ports set
// to ports, sorted, as RuleString formats them. Problems are rules the
// firewall checks cannot trust (inline rules, port ranges, a source that
// is not a CIDR, prefix list or security group); err is a rule that cannot
// be evaluated at all.
func SecurityGroupRules(m *Module, ports cty.Value) (rules, problems []string, err error) {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"local": cty.ObjectVal(map[string]cty.Value{"ports": ports}),
	}}
	refName := func(b *hclsyntax.Block, attr, typ string) string {
		a, ok := b.Body.Attributes[attr]
		if !ok {
			return ""
		}
		trs := a.Expr.Variables()
		if len(trs) != 1 || trs[0].RootName() != typ {
			problems = append(problems, fmt.Sprintf("%s: %s must reference a %s", a.SrcRange, attr, typ))
			return "?"
		}
		return AttrName(trs[0], 1)
	}
	for _, b := range m.Blocks("resource") {
		switch b.Labels[0] {
		case "aws_security_group":
			for _, nb := range b.Body.Blocks {
				if nb.Type == "ingress" || nb.Type == "egress" {
					problems = append(problems, fmt.Sprintf("%s: inline %s rules: use aws_vpc_security_group_*_rule resources", nb.DefRange(), nb.Type))
				}
			}
			continue
		case "aws_security_group_rule":
			problems = append(problems, fmt.Sprintf("%s: use aws_vpc_security_group_ingress_rule, not aws_security_group_rule", b.DefRange()))
			continue
		case "aws_vpc_security_group_ingress_rule":
		default:
			continue
		}
		eval := func(attr string) (cty.Value, error) {
			a, ok := b.Body.Attributes[attr]
			if !ok {
				return cty.NilVal, fmt.Errorf("%s: %s has no %s", b.DefRange(), b.Labels[1], attr)
			}
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("%s: %s: ports must come from local.ports: %s", a.SrcRange, attr, diags.Error())
			}
			return v, nil
		}
		evalString := func(attr string) (string, error) {
			v, err := eval(attr)
			if err != nil {
				return "", err
			}
			if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
				return "", fmt.Errorf("%s: %s.%s is not a string", b.DefRange(), b.Labels[1], attr)
			}
			return v.AsString(), nil
		}
		evalInt := func(attr string) (int, error) {
			v, err := eval(attr)
			if err != nil {
				return 0, err
			}
			i, err := AsInt(v)
			if err != nil {
				return 0, fmt.Errorf("%s.%s: %w", b.Labels[1], attr, err)
			}
			return i, nil
		}
		proto, err := evalString("ip_protocol")
		if err != nil {
			return nil, nil, err
		}
		from, err := evalInt("from_port")
		if err != nil {
			return nil, nil, err
		}
		to, err := evalInt("to_port")
		if err != nil {
			return nil, nil, err
		}
		if from != to {
			problems = append(problems, fmt.Sprintf("%s: %s opens a port range %d-%d", b.DefRange(), b.Labels[1], from, to))
		}
		group := refName(b, "security_group_id", "aws_security_group")
		var source string
		switch {
		case b.Body.Attributes["cidr_ipv4"] != nil:
			if source, err = evalString("cidr_ipv4"); err != nil {
				return nil, nil, err
			}
			if source == "0.0.0.0/0" {
				source = "anywhere"
			}
		case b.Body.Attributes["prefix_list_id"] != nil:
			source = "prefix-list:" + refName(b, "prefix_list_id", "aws_ec2_managed_prefix_list")
		case b.Body.Attributes["referenced_security_group_id"] != nil:
			source = "sg:" + refName(b, "referenced_security_group_id", "aws_security_group")
		default:
			problems = append(problems, fmt.Sprintf("%s: %s has no source", b.DefRange(), b.Labels[1]))
		}
		if b.Body.Attributes["cidr_ipv6"] != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: IPv6 sources are not expected", b.DefRange(), b.Labels[1]))
		}
		rules = append(rules, RuleString(group, proto, from, source))
	}
	sort.Strings(rules)
	return rules, problems, nil
}

// DeclaredFlags parses the Go files of dir (not its tests) for the names
// of urfave/cli flags: the Name fields of *Flag composite literals. It
// returns an error when a file does not parse, and an empty set when there
// are no flags.
func DeclaredFlags(dir string) (map[string]bool, error) {
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	flags := map[string]bool{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Flag") {
				return true
			}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if v, ok := kv.Value.(*ast.BasicLit); ok && v.Kind == token.STRING {
						s, _ := strconv.Unquote(v.Value)
						flags[s] = true
					}
				}
			}
			return true
		})
	}
	return flags, nil
}
