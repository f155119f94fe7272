package terraform_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
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
	"github.com/hashicorp/terraform-config-inspect/tfconfig"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/meshmeet/meshmeet/internal/defaults"
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

// ---------------------------------------------------------------- loading

// module is one Terraform module, loaded twice: by terraform-config-inspect
// (what Terraform's own loader sees) and as raw hclsyntax bodies (for the
// checks terraform-config-inspect does not do).
type module struct {
	dir        string
	inspect    *tfconfig.Module
	files      map[string]*hclsyntax.Body // by file name
	locals     map[string]*hclsyntax.Attribute
	ephemerals map[string]bool // "type.name"
}

// topLevelBlocks are the block types a Terraform file may hold, with their
// label counts.
var topLevelBlocks = map[string]int{
	"terraform": 0, "variable": 1, "output": 1, "locals": 0, "provider": 1,
	"resource": 2, "data": 2, "ephemeral": 2, "module": 1, "moved": 0,
	"import": 0, "check": 1, "removed": 0,
}

// loadModule loads dir and returns it with every diagnostic as a problem.
func loadModule(dir string) (*module, []string) {
	var problems []string
	m := &module{
		dir:        dir,
		files:      map[string]*hclsyntax.Body{},
		locals:     map[string]*hclsyntax.Attribute{},
		ephemerals: map[string]bool{},
	}
	inspect, diags := tfconfig.LoadModule(dir)
	for _, d := range diags {
		problems = append(problems, fmt.Sprintf("terraform-config-inspect: %s: %s (%s)", d.Summary, d.Detail, posString(d.Pos)))
	}
	m.inspect = inspect

	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(names) == 0 {
		return m, append(problems, fmt.Sprintf("%s: no .tf files", dir))
	}
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		for _, d := range diags {
			problems = append(problems, "hclsyntax: "+d.Error())
		}
		if f == nil {
			continue
		}
		body := f.Body.(*hclsyntax.Body)
		m.files[name] = body
		if len(body.Attributes) > 0 {
			for _, a := range body.Attributes {
				problems = append(problems, fmt.Sprintf("%s: attribute %q outside any block", a.SrcRange, a.Name))
			}
		}
		for _, b := range body.Blocks {
			n, ok := topLevelBlocks[b.Type]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: unknown block type %q", b.DefRange(), b.Type))
				continue
			}
			if len(b.Labels) != n {
				problems = append(problems, fmt.Sprintf("%s: block %q needs %d labels", b.DefRange(), b.Type, n))
				continue
			}
			switch b.Type {
			case "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := m.locals[name]; dup {
						problems = append(problems, fmt.Sprintf("%s: local.%s defined twice", a.SrcRange, name))
					}
					m.locals[name] = a
				}
			case "ephemeral":
				m.ephemerals[b.Labels[0]+"."+b.Labels[1]] = true
			}
		}
	}
	return m, problems
}

func posString(p *tfconfig.SourcePos) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprintf("%s:%d", p.Filename, p.Line)
}

// blocks returns every top-level block of type typ, in file order.
func (m *module) blocks(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, b := range m.files[n].Blocks {
			if b.Type == typ {
				out = append(out, b)
			}
		}
	}
	return out
}

// resource returns the managed resource block type.name, or nil.
func (m *module) resource(typ, name string) *hclsyntax.Block {
	for _, b := range m.blocks("resource") {
		if b.Labels[0] == typ && b.Labels[1] == name {
			return b
		}
	}
	return nil
}

func mustLoad(t *testing.T, dir string) *module {
	t.Helper()
	m, problems := loadModule(dir)
	if len(problems) > 0 {
		t.Fatalf("%s does not load:\n%s", dir, strings.Join(problems, "\n"))
	}
	return m
}

// ---------------------------------------------------------------- checks

// secretName matches variable names that hold a secret value (not the name,
// ARN, region or version of a secret).
var secretName = regexp.MustCompile(`(?i)(secret|password|passphrase|token|private_key|credential)s?$`)

// checkVariables: every variable has a type and a description; a secret
// variable is sensitive and has no default.
func checkVariables(m *module) []string {
	var problems []string
	for name, v := range m.inspect.Variables {
		at := posString(&v.Pos)
		if strings.TrimSpace(v.Type) == "" {
			problems = append(problems, fmt.Sprintf("%s: variable %q has no type", at, name))
		}
		if strings.TrimSpace(v.Description) == "" {
			problems = append(problems, fmt.Sprintf("%s: variable %q has no description", at, name))
		}
		if v.Sensitive || secretName.MatchString(name) {
			if !v.Required {
				problems = append(problems, fmt.Sprintf("%s: secret variable %q has a default", at, name))
			}
			if !v.Sensitive {
				problems = append(problems, fmt.Sprintf("%s: secret variable %q is not sensitive", at, name))
			}
		}
	}
	for name, o := range m.inspect.Outputs {
		if strings.TrimSpace(o.Description) == "" {
			problems = append(problems, fmt.Sprintf("%s: output %q has no description", posString(&o.Pos), name))
		}
	}
	return problems
}

// checkSecrets: no secret value is written as a literal or kept in the
// state: a secrets manager value is written only through the write-only
// argument, from an ephemeral value.
func checkSecrets(m *module) []string {
	var problems []string
	for _, b := range m.blocks("resource") {
		if b.Labels[0] != "aws_secretsmanager_secret_version" {
			continue
		}
		for _, name := range []string{"secret_string", "secret_binary"} {
			if a, ok := b.Body.Attributes[name]; ok {
				problems = append(problems, fmt.Sprintf("%s: %s keeps the secret in the state; use %s_wo", a.SrcRange, name, name))
			}
		}
		a, ok := b.Body.Attributes["secret_string_wo"]
		if !ok {
			continue
		}
		eph := false
		for _, tr := range a.Expr.Variables() {
			if tr.RootName() == "ephemeral" {
				eph = true
			}
		}
		if !eph {
			problems = append(problems, fmt.Sprintf("%s: secret_string_wo must come from an ephemeral resource (generated, never a literal or a variable)", a.SrcRange))
		}
	}
	for _, b := range m.blocks("resource") {
		if b.Labels[0] == "random_password" || b.Labels[0] == "random_string" {
			problems = append(problems, fmt.Sprintf("%s: resource %s.%s stores the secret in the state; use an ephemeral block", b.DefRange(), b.Labels[0], b.Labels[1]))
		}
	}
	return problems
}

// scope is what a name may refer to at some point of a module.
type scope struct {
	count     bool            // inside a block with count
	each      bool            // inside a block with for_each
	iterators map[string]bool // dynamic block iterators
	self      bool            // inside a provisioner or connection
}

func (s scope) with(iter string) scope {
	n := scope{count: s.count, each: s.each, self: s.self, iterators: map[string]bool{iter: true}}
	for k := range s.iterators {
		n.iterators[k] = true
	}
	return n
}

// metaArgs of a module call that are not the child's variables.
var metaArgs = map[string]bool{"source": true, "version": true, "providers": true, "count": true, "for_each": true, "depends_on": true}

// checkReferences resolves every reference and function call of m, checks
// module calls against local child modules, and reports unused variables
// and locals.
func checkReferences(m *module) []string {
	c := &refChecker{m: m, usedVars: map[string]bool{}, usedLocals: map[string]bool{}}
	for _, body := range m.files {
		for _, b := range body.Blocks {
			c.block(b)
		}
	}
	for name, v := range m.inspect.Variables {
		if !c.usedVars[name] {
			c.problems = append(c.problems, fmt.Sprintf("%s: variable %q is never used", posString(&v.Pos), name))
		}
	}
	for name, a := range m.locals {
		if !c.usedLocals[name] {
			c.problems = append(c.problems, fmt.Sprintf("%s: local.%s is never used", a.SrcRange, name))
		}
	}
	return c.problems
}

type refChecker struct {
	m          *module
	problems   []string
	usedVars   map[string]bool
	usedLocals map[string]bool
}

func (c *refChecker) addf(rng hcl.Range, format string, args ...any) {
	c.problems = append(c.problems, rng.String()+": "+fmt.Sprintf(format, args...))
}

func (c *refChecker) block(b *hclsyntax.Block) {
	switch b.Type {
	case "terraform", "moved", "import", "removed":
		return // addresses and settings, not expressions
	case "provider":
		c.body(b.Body, scope{}, skipAttrs("alias"))
	case "variable":
		// type is a type expression; the validation blocks may refer to
		// variables.
		c.body(b.Body, scope{}, skipAttrs("type"))
	case "output", "locals", "check":
		c.body(b.Body, scope{}, nil)
	case "resource", "data", "ephemeral":
		s := scope{count: b.Body.Attributes["count"] != nil, each: b.Body.Attributes["for_each"] != nil}
		c.body(b.Body, s, skipAttrs("provider"))
	case "module":
		s := scope{count: b.Body.Attributes["count"] != nil, each: b.Body.Attributes["for_each"] != nil}
		c.body(b.Body, s, skipAttrs("providers", "source", "version"))
		c.moduleCall(b)
	}
}

func skipAttrs(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func (c *refChecker) body(body *hclsyntax.Body, s scope, skip map[string]bool) {
	for name, a := range body.Attributes {
		if skip[name] {
			continue
		}
		c.expr(a.Expr, s)
	}
	for _, b := range body.Blocks {
		switch b.Type {
		case "lifecycle":
			// ignore_changes names attributes, not references.
			c.body(b.Body, s, skipAttrs("ignore_changes"))
		case "provisioner", "connection":
			ns := s
			ns.self = true
			c.body(b.Body, ns, nil)
		case "dynamic":
			if len(b.Labels) != 1 {
				c.addf(b.DefRange(), "dynamic block needs one label")
				continue
			}
			iter := b.Labels[0]
			if a, ok := b.Body.Attributes["iterator"]; ok {
				iter = hcl.ExprAsKeyword(a.Expr)
			}
			if b.Body.Attributes["for_each"] == nil {
				c.addf(b.DefRange(), "dynamic %q has no for_each", b.Labels[0])
			}
			for name, a := range b.Body.Attributes {
				if name == "iterator" {
					continue
				}
				c.expr(a.Expr, s)
			}
			content := 0
			for _, cb := range b.Body.Blocks {
				if cb.Type == "content" {
					content++
					c.body(cb.Body, s.with(iter), nil)
				}
			}
			if content != 1 {
				c.addf(b.DefRange(), "dynamic %q needs one content block", b.Labels[0])
			}
		default:
			c.body(b.Body, s, nil)
		}
	}
}

// terraformFunctions are Terraform's built-in functions (1.11).
var terraformFunctions = skipAttrs(
	"abs", "abspath", "alltrue", "anytrue", "base64decode", "base64encode",
	"base64gzip", "base64sha256", "base64sha512", "basename", "bcrypt", "can",
	"ceil", "chomp", "chunklist", "cidrhost", "cidrnetmask", "cidrsubnet",
	"cidrsubnets", "coalesce", "coalescelist", "compact", "concat", "contains",
	"csvdecode", "dirname", "distinct", "element", "endswith", "ephemeralasnull",
	"file", "filebase64", "filebase64sha256", "filebase64sha512", "fileexists",
	"filemd5", "fileset", "filesha1", "filesha256", "filesha512", "flatten",
	"floor", "format", "formatdate", "formatlist", "indent", "index",
	"issensitive", "join", "jsondecode", "jsonencode", "keys", "length", "log",
	"lookup", "lower", "matchkeys", "max", "md5", "merge", "min", "nonsensitive",
	"one", "parseint", "pathexpand", "plantimestamp", "pow", "range", "regex",
	"regexall", "replace", "reverse", "rsadecrypt", "sensitive",
	"setintersection", "setproduct", "setsubtract", "setunion", "sha1",
	"sha256", "sha512", "signum", "slice", "sort", "split", "startswith",
	"strcontains", "strrev", "substr", "sum", "templatefile", "templatestring",
	"textdecodebase64", "textencodebase64", "timeadd", "timecmp", "timestamp",
	"title", "tobool", "tolist", "tomap", "tonumber", "toset", "tostring",
	"transpose", "trim", "trimprefix", "trimspace", "trimsuffix", "try", "type",
	"upper", "urlencode", "uuid", "uuidv5", "values", "yamldecode", "yamlencode",
	"zipmap",
)

func (c *refChecker) expr(e hclsyntax.Expression, s scope) {
	for _, tr := range hclsyntax.Variables(e) {
		c.traversal(tr, s)
	}
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			if !terraformFunctions[call.Name] && !strings.HasPrefix(call.Name, "provider::") {
				c.addf(call.NameRange, "unknown function %s()", call.Name)
			}
		}
		return nil
	})
}

// attrName returns the name of the traversal step i if it is an attribute
// access (a.b), or "".
func attrName(tr hcl.Traversal, i int) string {
	if i >= len(tr) {
		return ""
	}
	if a, ok := tr[i].(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}

func (c *refChecker) traversal(tr hcl.Traversal, s scope) {
	root := tr.RootName()
	rng := tr.SourceRange()
	if s.iterators[root] {
		if n := attrName(tr, 1); n != "key" && n != "value" {
			c.addf(rng, "%s.%s: a dynamic iterator has only key and value", root, n)
		}
		return
	}
	name := attrName(tr, 1)
	switch root {
	case "var":
		if _, ok := c.m.inspect.Variables[name]; !ok {
			c.addf(rng, "undefined variable var.%s", name)
		}
		c.usedVars[name] = true
	case "local":
		if _, ok := c.m.locals[name]; !ok {
			c.addf(rng, "undefined local.%s", name)
		}
		c.usedLocals[name] = true
	case "count":
		if !s.count || name != "index" {
			c.addf(rng, "count.%s used outside a block with count", name)
		}
	case "each":
		if !s.each || (name != "key" && name != "value") {
			c.addf(rng, "each.%s used outside a block with for_each", name)
		}
	case "self":
		if !s.self {
			c.addf(rng, "self used outside a provisioner or connection")
		}
	case "path":
		if name != "module" && name != "root" && name != "cwd" {
			c.addf(rng, "unknown path.%s", name)
		}
	case "terraform":
		if name != "workspace" && name != "applying" {
			c.addf(rng, "unknown terraform.%s", name)
		}
	case "module":
		mc, ok := c.m.inspect.ModuleCalls[name]
		if !ok {
			c.addf(rng, "undefined module.%s", name)
			return
		}
		// module.NAME.OUTPUT or module.NAME[KEY].OUTPUT
		out := attrName(tr, 2)
		if out == "" {
			if _, ok := tr[min(2, len(tr)-1)].(hcl.TraverseIndex); ok {
				out = attrName(tr, 3)
			}
		}
		if out != "" {
			if child := childModule(c.m, mc); child != nil {
				if _, ok := child.Outputs[out]; !ok {
					c.addf(rng, "module.%s has no output %q", name, out)
				}
			}
		}
	case "data":
		key := "data." + name + "." + attrName(tr, 2)
		if _, ok := c.m.inspect.DataResources[key]; !ok {
			c.addf(rng, "undefined %s", key)
		}
	case "ephemeral":
		key := name + "." + attrName(tr, 2)
		if !c.m.ephemerals[key] {
			c.addf(rng, "undefined ephemeral.%s", key)
		}
	default:
		key := root + "." + name
		if _, ok := c.m.inspect.ManagedResources[key]; !ok {
			c.addf(rng, "undefined reference %s", key)
		}
	}
}

// childModule loads the module a call refers to when its source is local.
func childModule(m *module, mc *tfconfig.ModuleCall) *tfconfig.Module {
	if !strings.HasPrefix(mc.Source, "./") && !strings.HasPrefix(mc.Source, "../") {
		return nil
	}
	child, diags := tfconfig.LoadModule(filepath.Join(m.dir, mc.Source))
	if diags.HasErrors() {
		return nil
	}
	return child
}

// moduleCall checks a call's arguments against the child's variables.
func (c *refChecker) moduleCall(b *hclsyntax.Block) {
	mc := c.m.inspect.ModuleCalls[b.Labels[0]]
	if mc == nil {
		c.addf(b.DefRange(), "module %q unknown to terraform-config-inspect", b.Labels[0])
		return
	}
	dir := filepath.Join(c.m.dir, mc.Source)
	if _, err := os.Stat(dir); err != nil {
		c.addf(b.DefRange(), "module %q: source %q: %v", b.Labels[0], mc.Source, err)
		return
	}
	child := childModule(c.m, mc)
	if child == nil {
		return
	}
	for name, a := range b.Body.Attributes {
		if metaArgs[name] {
			continue
		}
		if _, ok := child.Variables[name]; !ok {
			c.addf(a.SrcRange, "module %q has no variable %q", b.Labels[0], name)
		}
	}
	for name, v := range child.Variables {
		if v.Required && b.Body.Attributes[name] == nil {
			c.addf(b.DefRange(), "module %q: required variable %q not set", b.Labels[0], name)
		}
	}
}

// templateCall is one templatefile(path, {vars}) call.
type templateCall struct {
	path string
	vars map[string]hclsyntax.Expression
	rng  hcl.Range
}

// templateCalls finds every templatefile call of m whose arguments are a
// "${path.module}/..." path and an object constructor.
func templateCalls(m *module) ([]templateCall, []string) {
	var calls []templateCall
	var problems []string
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.dir)}),
	}}
	for _, body := range m.files {
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || (call.Name != "templatefile" && call.Name != "file") {
				return nil
			}
			if len(call.Args) == 0 {
				problems = append(problems, fmt.Sprintf("%s: %s without arguments", call.NameRange, call.Name))
				return nil
			}
			v, diags := call.Args[0].Value(ctx)
			if diags.HasErrors() || v.Type() != cty.String {
				problems = append(problems, fmt.Sprintf("%s: %s path must be a literal under path.module", call.NameRange, call.Name))
				return nil
			}
			path := v.AsString()
			if _, err := os.Stat(path); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s: %v", call.NameRange, call.Name, err))
				return nil
			}
			if call.Name == "file" {
				return nil
			}
			tc := templateCall{path: path, vars: map[string]hclsyntax.Expression{}, rng: call.NameRange}
			obj, ok := call.Args[1].(*hclsyntax.ObjectConsExpr)
			if len(call.Args) != 2 || !ok {
				problems = append(problems, fmt.Sprintf("%s: templatefile needs an object of variables", call.NameRange))
				return nil
			}
			for _, item := range obj.Items {
				key := hcl.ExprAsKeyword(item.KeyExpr)
				tc.vars[key] = item.ValueExpr
			}
			calls = append(calls, tc)
			return nil
		})
	}
	return calls, problems
}

// checkTemplates: every variable a template uses is passed, and every
// variable passed is used.
func checkTemplates(m *module) []string {
	calls, problems := templateCalls(m)
	for _, tc := range calls {
		src, _ := os.ReadFile(tc.path)
		tmpl, diags := hclsyntax.ParseTemplate(src, tc.path, hcl.InitialPos)
		if diags.HasErrors() {
			problems = append(problems, "template: "+diags.Error())
			continue
		}
		used := map[string]bool{}
		for _, tr := range hclsyntax.Variables(tmpl) {
			used[tr.RootName()] = true
			if _, ok := tc.vars[tr.RootName()]; !ok {
				problems = append(problems, fmt.Sprintf("%s: template variable %q is not passed by templatefile at %s", tr.SourceRange(), tr.RootName(), tc.rng))
			}
		}
		for k := range tc.vars {
			if !used[k] {
				problems = append(problems, fmt.Sprintf("%s: templatefile passes %q, which %s never uses", tc.rng, k, tc.path))
			}
		}
		hclsyntax.VisitAll(tmpl, func(n hclsyntax.Node) hcl.Diagnostics {
			if call, ok := n.(*hclsyntax.FunctionCallExpr); ok && !terraformFunctions[call.Name] {
				problems = append(problems, fmt.Sprintf("%s: unknown function %s()", call.NameRange, call.Name))
			}
			return nil
		})
	}
	return problems
}

// ---------------------------------------------------------------- ports

// evalLocal evaluates local.NAME of m, which must be a constant.
func evalLocal(t *testing.T, m *module, name string) cty.Value {
	t.Helper()
	a, ok := m.locals[name]
	if !ok {
		t.Fatalf("%s: no local.%s", m.dir, name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: local.%s is not a constant: %s", m.dir, name, diags.Error())
	}
	return v
}

func asInt(t *testing.T, v cty.Value, what string) int {
	t.Helper()
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		t.Fatalf("%s: not a number: %#v", what, v)
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != 0 {
		t.Fatalf("%s: not an integer: %s", what, bf)
	}
	return int(i)
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

// cliFlags returns the flags a MESHMEET_ variable may name: those of the
// CLI contract (DESIGN.md section 10, serveFlags) and those cmd/meshmeet
// declares (Name: fields of cli.*Flag literals). It logs the contract's
// flags the binary does not declare yet.
func cliFlags(t *testing.T) map[string]bool {
	t.Helper()
	declared := declaredFlags(t)
	known := map[string]bool{}
	var missing []string
	for f := range serveFlags {
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

// declaredFlags parses cmd/meshmeet for its flag names; nil when it cannot.
func declaredFlags(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	names, _ := filepath.Glob("../../cmd/meshmeet/*.go")
	flags := map[string]bool{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Logf("cmd/meshmeet does not parse (%v): checking against DESIGN.md's flags only", err)
			return nil
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
	if len(flags) == 0 {
		t.Log("no flags found in cmd/meshmeet: checking against DESIGN.md's flags only")
		return nil
	}
	return flags
}

// serveFlags are the flags of `meshmeet serve` (DESIGN.md section 10).
var serveFlags = skipAttrs(
	"http-addr", "rtc-port", "public-ip", "node-name", "region", "lat", "lon",
	"join", "gossip-addr", "raft-addr", "relay-addr", "raft-voter",
	"bootstrap-expect", "cluster-secret-file", "turn-addr", "turn-tls-addr",
	"turn-cert", "turn-key", "no-turn", "turn-allow-peer", "turn-secret-file",
	"auth", "jwt-secret-file", "jwt-public-key", "auth-create-only",
	"metrics-addr", "log-level", "log-format",
	// section 9
	"cluster-ca", "node-cert", "node-key",
)

func envName(flag string) string {
	return "MESHMEET_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// rule is one security group ingress rule, as "<group> <proto> <port> from <source>".
func ruleString(group, proto string, port int, source string) string {
	return fmt.Sprintf("%s %s %d from %s", group, proto, port, source)
}

// securityGroupRules evaluates the ingress rules of the region module.
func securityGroupRules(t *testing.T, m *module, ports cty.Value) []string {
	t.Helper()
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
			t.Errorf("%s: %s must reference a %s", a.SrcRange, attr, typ)
			return "?"
		}
		return attrName(trs[0], 1)
	}
	var rules []string
	for _, b := range m.blocks("resource") {
		switch b.Labels[0] {
		case "aws_security_group":
			for _, nb := range b.Body.Blocks {
				if nb.Type == "ingress" || nb.Type == "egress" {
					t.Errorf("%s: inline %s rules: use aws_vpc_security_group_*_rule resources", nb.DefRange(), nb.Type)
				}
			}
			continue
		case "aws_security_group_rule":
			t.Errorf("%s: use aws_vpc_security_group_ingress_rule, not aws_security_group_rule", b.DefRange())
			continue
		case "aws_vpc_security_group_ingress_rule":
		default:
			continue
		}
		eval := func(attr string) cty.Value {
			a, ok := b.Body.Attributes[attr]
			if !ok {
				t.Fatalf("%s: %s has no %s", b.DefRange(), b.Labels[1], attr)
			}
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("%s: %s: ports must come from local.ports: %s", a.SrcRange, attr, diags.Error())
			}
			return v
		}
		proto := eval("ip_protocol").AsString()
		from := asInt(t, eval("from_port"), b.Labels[1]+".from_port")
		to := asInt(t, eval("to_port"), b.Labels[1]+".to_port")
		if from != to {
			t.Errorf("%s: %s opens a port range %d-%d", b.DefRange(), b.Labels[1], from, to)
		}
		group := refName(b, "security_group_id", "aws_security_group")
		var source string
		switch {
		case b.Body.Attributes["cidr_ipv4"] != nil:
			source = eval("cidr_ipv4").AsString()
			if source == "0.0.0.0/0" {
				source = "anywhere"
			}
		case b.Body.Attributes["prefix_list_id"] != nil:
			source = "prefix-list:" + refName(b, "prefix_list_id", "aws_ec2_managed_prefix_list")
		case b.Body.Attributes["referenced_security_group_id"] != nil:
			source = "sg:" + refName(b, "referenced_security_group_id", "aws_security_group")
		default:
			t.Errorf("%s: %s has no source", b.DefRange(), b.Labels[1])
		}
		if b.Body.Attributes["cidr_ipv6"] != nil {
			t.Errorf("%s: %s: IPv6 sources are not expected", b.DefRange(), b.Labels[1])
		}
		rules = append(rules, ruleString(group, proto, from, source))
	}
	sort.Strings(rules)
	return rules
}

// ---------------------------------------------------------------- systemd

// unit is a parsed systemd unit: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(src string) (unit, error) {
	u := unit{}
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

// last returns the effective value of a single-valued setting.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// env returns the assignments of Environment= lines.
func (u unit) env() map[string]string {
	out := map[string]string{}
	for _, v := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(v) {
			k, val, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			out[k] = val
		}
	}
	return out
}

// parseTimespan parses the systemd time spans the unit uses (10min, 90s,
// 1min 30s, a bare number of seconds).
func parseTimespan(s string) (time.Duration, error) {
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

// listenerPort returns the port of a MESHMEET_*_ADDR (host:port) or
// MESHMEET_*_PORT value.
func listenerPort(name, value string) (int, error) {
	if strings.HasSuffix(name, "_PORT") {
		return strconv.Atoi(value)
	}
	i := strings.LastIndex(value, ":")
	if i < 0 {
		return 0, fmt.Errorf("%s=%s: not host:port", name, value)
	}
	return strconv.Atoi(value[i+1:])
}

// checkEnv checks MESHMEET_ assignments: known flags only, listener ports
// equal to internal/defaults, no secret value. It returns the listeners as
// "proto port" strings.
func checkEnv(where string, env map[string]string, flags map[string]bool) (listeners []string, problems []string) {
	known := map[string]bool{}
	for f := range flags {
		known[envName(f)] = true
	}
	for k, v := range env {
		if !strings.HasPrefix(k, "MESHMEET_") {
			continue
		}
		if !known[k] {
			problems = append(problems, fmt.Sprintf("%s: %s is not a flag of meshmeet serve", where, k))
		}
		if k == "MESHMEET_CLUSTER_SECRET" || (secretName.MatchString(k) && !strings.HasSuffix(k, "_FILE")) {
			problems = append(problems, fmt.Sprintf("%s: %s puts a secret value in the configuration", where, k))
		}
		l, ok := listenerEnv[k]
		if !ok {
			continue
		}
		p, err := listenerPort(k, v)
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

// hardening lists settings the unit must have, with accepted values.
var hardening = map[string][]string{
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

// checkUnit checks the unit's hardening, restarts, drain time, logging and
// that nothing writes to disk. It returns the listeners it configures.
func checkUnit(u unit, flags map[string]bool) (listeners []string, problems []string) {
	svc := u["Service"]
	if svc == nil {
		return nil, []string{"no [Service] section"}
	}
	exec, _ := u.last("Service", "ExecStart")
	args := strings.Fields(exec)
	if len(args) < 2 || filepath.Base(args[0]) != "meshmeet" || args[1] != "serve" {
		problems = append(problems, fmt.Sprintf("ExecStart=%s: want meshmeet serve", exec))
	}
	// Flags on the command line: only known ones, and never a secret value.
	env := u.env()
	for _, a := range args[min(2, len(args)):] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, _ := strings.Cut(a[2:], "=")
		if !flags[name] {
			problems = append(problems, fmt.Sprintf("ExecStart: unknown flag --%s", name))
		}
		env[envName(name)] = val
	}
	l, p := checkEnv("meshmeet.service", env, flags)
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

	for key, ok := range hardening {
		v, set := u.last("Service", key)
		if !set || !contains(ok, v) {
			problems = append(problems, fmt.Sprintf("%s=%q, want one of %v", key, v, ok))
		}
	}
	dyn, _ := u.last("Service", "DynamicUser")
	user, _ := u.last("Service", "User")
	if dyn != "yes" && dyn != "true" && (user == "" || user == "root" || user == "0") {
		problems = append(problems, "runs as root: set DynamicUser=yes or a dedicated User=")
	}
	families, _ := u.last("Service", "RestrictAddressFamilies")
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
	bounding, boundingSet := u.last("Service", "CapabilityBoundingSet")
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
	if r, _ := u.last("Service", "Restart"); r != "on-failure" && r != "always" {
		problems = append(problems, "Restart="+r+", want on-failure or always")
	}
	stop, _ := u.last("Service", "TimeoutStopSec")
	if d, err := parseTimespan(stop); err != nil || d < 2*time.Minute {
		problems = append(problems, fmt.Sprintf("TimeoutStopSec=%q: want at least 2min to drain (%v)", stop, err))
	}
	if s, _ := u.last("Service", "KillSignal"); s != "" && s != "SIGTERM" {
		problems = append(problems, "KillSignal="+s+": meshmeet drains on SIGTERM")
	}

	// Nothing on disk: no writable directories, logs to the journal.
	for _, key := range []string{"StateDirectory", "CacheDirectory", "LogsDirectory", "ReadWritePaths", "ReadWriteDirectories"} {
		if len(svc[key]) > 0 {
			problems = append(problems, key+" set: meshmeet keeps nothing on disk")
		}
	}
	for _, key := range []string{"StandardOutput", "StandardError"} {
		if v, ok := u.last("Service", key); ok && v != "journal" && v != "inherit" {
			problems = append(problems, key+"="+v+": log to the journal only")
		}
	}
	return listeners, problems
}

func hasCredential(u unit, id string) bool {
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

func readUnit(t *testing.T) (string, unit) {
	t.Helper()
	src, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(src))
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
			if len(m.inspect.ManagedResources)+len(m.inspect.ModuleCalls) == 0 {
				t.Errorf("%s: no resources or module calls", dir)
			}
		})
	}
}

func TestVariablesTypedDescribedAndNoSecretDefaults(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			m := mustLoad(t, dir)
			for _, p := range checkVariables(m) {
				t.Error(p)
			}
			for _, p := range checkSecrets(m) {
				t.Error(p)
			}
		})
	}
}

func TestReferencesResolve(t *testing.T) {
	for _, dir := range moduleDirs {
		t.Run(dir, func(t *testing.T) {
			m := mustLoad(t, dir)
			for _, p := range checkReferences(m) {
				t.Error(p)
			}
			for _, p := range checkTemplates(m) {
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
	for _, b := range m.blocks("ephemeral") {
		if b.Labels[0] == "random_password" {
			eph = b
		}
	}
	if eph == nil {
		t.Fatal("no ephemeral random_password for the cluster secret")
	}
	ver := m.resource("aws_secretsmanager_secret_version", "cluster")
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
	pol := m.resource("aws_secretsmanager_secret_policy", "cluster")
	if pol == nil {
		t.Fatal("no resource policy on the cluster secret")
	}
	// The policy denies reading to every principal but the nodes' role.
	var doc *hclsyntax.Block
	for _, b := range m.blocks("data") {
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
	sec := m.resource("aws_secretsmanager_secret", "cluster")
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
		ruleString("lb", "tcp", httpsPort, "anywhere"),
		ruleString("node", "tcp", defaults.HTTPPort, "sg:lb"),
		ruleString("node", "udp", defaults.RTCPort, "anywhere"),
		ruleString("node", "tcp", defaults.RTCPort, "anywhere"),
		ruleString("node", "udp", defaults.TURNPort, "anywhere"),
		ruleString("node", "tcp", defaults.TURNPort, "anywhere"),
		ruleString("node", "tcp", defaults.TURNTLSPort, "anywhere"),
		ruleString("node", "udp", defaults.GossipPort, "prefix-list:cluster"),
		ruleString("node", "tcp", defaults.GossipPort, "prefix-list:cluster"),
		ruleString("node", "tcp", defaults.RaftPort, "prefix-list:cluster"),
		ruleString("node", "udp", defaults.RelayPort, "prefix-list:cluster"),
	}
	sort.Strings(want)
	rules := securityGroupRules(t, region, ports)
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("security group ingress rules:\n%s\nwant exactly:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}

	// The cluster prefix list holds only the cluster's addresses.
	pl := region.resource("aws_ec2_managed_prefix_list", "cluster")
	if pl == nil {
		t.Fatal("no cluster prefix list")
	}
	for _, b := range pl.Body.Blocks {
		if b.Type == "dynamic" && b.Labels[0] == "entry" {
			fe := b.Body.Attributes["for_each"]
			trs := fe.Expr.Variables()
			if len(trs) != 1 || trs[0].RootName() != "var" || attrName(trs[0], 1) != "cluster_cidrs" {
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
	if p := attrInt(region.resource("aws_lb_listener", "https"), "port"); p != httpsPort {
		t.Errorf("listener port %d, want %d", p, httpsPort)
	}
	tg := region.resource("aws_lb_target_group", "http")
	if p := attrInt(tg, "port"); p != defaults.HTTPPort {
		t.Errorf("target group port %d, want %d", p, defaults.HTTPPort)
	}
	if p := attrInt(region.resource("aws_lb_target_group_attachment", "node"), "port"); p != defaults.HTTPPort {
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
	hc := region.resource("aws_route53_health_check", "region")
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
	listeners, problems := checkUnit(u, flags)
	for _, p := range problems {
		t.Error(p)
	}
	rendered := renderUserData(t, region, ports)
	l, problems := checkEnv("cloud-init", envAssignments(rendered), flags)
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
func renderUserData(t *testing.T, region *module, ports cty.Value) string {
	t.Helper()
	return renderUserDataWith(t, region, ports, nil)
}

// renderUserDataWith renders the user data with some template variables
// replaced.
func renderUserDataWith(t *testing.T, region *module, ports cty.Value, overrides map[string]cty.Value) string {
	t.Helper()
	calls, problems := templateCalls(region)
	if len(problems) > 0 || len(calls) != 1 {
		t.Fatalf("want one templatefile call in the region module: %v", problems)
	}
	tc := calls[0]
	// The unit is installed unchanged from deploy/systemd.
	unitExpr := tc.vars["systemd_unit"]
	call, ok := unitExpr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "file" {
		t.Fatal("systemd_unit must be file(...) of deploy/systemd/meshmeet.service")
	}
	pv, diags := call.Args[0].Value(&hcl.EvalContext{Variables: map[string]cty.Value{
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(region.dir)}),
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
	}
	for k, v := range overrides {
		samples[k] = v
	}
	for k := range tc.vars {
		if _, ok := samples[k]; !ok {
			t.Fatalf("renderUserData: no sample value for template variable %q", k)
		}
	}
	src := mustRead(t, tc.path)
	tmpl, diags := hclsyntax.ParseTemplate(src, tc.path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := tmpl.Value(&hcl.EvalContext{Variables: samples, Functions: map[string]function.Function{"indent": indentFunc}})
	if diags.HasErrors() {
		t.Fatalf("rendering %s: %s", tc.path, diags.Error())
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
	stop, _ := u.last("Service", "TimeoutStopSec")
	stopDur, err := parseTimespan(stop)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"modules/region", "modules/cluster"} {
		m := mustLoad(t, dir)
		v := m.inspect.Variables["drain_timeout_seconds"]
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
	asg := region.resource("aws_autoscaling_group", "node")
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
	tg := region.resource("aws_lb_target_group", "http")
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
			m, problems := loadModule(dir)
			if m.inspect != nil && len(problems) == 0 {
				problems = append(problems, checkVariables(m)...)
				problems = append(problems, checkSecrets(m)...)
				problems = append(problems, checkReferences(m)...)
				problems = append(problems, checkTemplates(m)...)
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
	m, problems := loadModule(dir)
	problems = append(problems, checkReferences(m)...)
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
	m, _ = loadModule(child)
	joined = strings.Join(checkTemplates(m), "\n")
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
		{"no hardening", "ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"},
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
			u, err := parseUnit(strings.Replace(src, tc.from, tc.to, 1))
			if err != nil {
				t.Fatal(err)
			}
			_, problems := checkUnit(u, cliFlags(t))
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
			for _, b := range m.blocks(typ) {
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
