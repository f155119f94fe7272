package tfcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/terraform-config-inspect/tfconfig"
)

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

// CheckReferences resolves every reference and function call of m, checks
// module calls against local child modules, and reports unused variables
// and locals.
func CheckReferences(m *Module) []string {
	c := &refChecker{m: m, usedVars: map[string]bool{}, usedLocals: map[string]bool{}}
	for _, body := range m.Files {
		for _, b := range body.Blocks {
			c.block(b)
		}
	}
	for name, v := range m.Inspect.Variables {
		if !c.usedVars[name] {
			c.problems = append(c.problems, fmt.Sprintf("%s: variable %q is never used", posString(&v.Pos), name))
		}
	}
	for name, a := range m.Locals {
		if !c.usedLocals[name] {
			c.problems = append(c.problems, fmt.Sprintf("%s: local.%s is never used", a.SrcRange, name))
		}
	}
	return c.problems
}

type refChecker struct {
	m          *Module
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

// AttrName returns the name of the traversal step i if it is an attribute
// access (a.b), or "".
func AttrName(tr hcl.Traversal, i int) string {
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
		if n := AttrName(tr, 1); n != "key" && n != "value" {
			c.addf(rng, "%s.%s: a dynamic iterator has only key and value", root, n)
		}
		return
	}
	name := AttrName(tr, 1)
	switch root {
	case "var":
		if _, ok := c.m.Inspect.Variables[name]; !ok {
			c.addf(rng, "undefined variable var.%s", name)
		}
		c.usedVars[name] = true
	case "local":
		if _, ok := c.m.Locals[name]; !ok {
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
		mc, ok := c.m.Inspect.ModuleCalls[name]
		if !ok {
			c.addf(rng, "undefined module.%s", name)
			return
		}
		// module.NAME.OUTPUT or module.NAME[KEY].OUTPUT
		out := AttrName(tr, 2)
		if out == "" {
			if _, ok := tr[min(2, len(tr)-1)].(hcl.TraverseIndex); ok {
				out = AttrName(tr, 3)
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
		key := "data." + name + "." + AttrName(tr, 2)
		if _, ok := c.m.Inspect.DataResources[key]; !ok {
			c.addf(rng, "undefined %s", key)
		}
	case "ephemeral":
		key := name + "." + AttrName(tr, 2)
		if !c.m.Ephemerals[key] {
			c.addf(rng, "undefined ephemeral.%s", key)
		}
	default:
		key := root + "." + name
		if _, ok := c.m.Inspect.ManagedResources[key]; !ok {
			c.addf(rng, "undefined reference %s", key)
		}
	}
}

// childModule loads the module a call refers to when its source is local.
func childModule(m *Module, mc *tfconfig.ModuleCall) *tfconfig.Module {
	if !strings.HasPrefix(mc.Source, "./") && !strings.HasPrefix(mc.Source, "../") {
		return nil
	}
	child, diags := tfconfig.LoadModule(filepath.Join(m.Dir, mc.Source))
	if diags.HasErrors() {
		return nil
	}
	return child
}

// moduleCall checks a call's arguments against the child's variables.
func (c *refChecker) moduleCall(b *hclsyntax.Block) {
	mc := c.m.Inspect.ModuleCalls[b.Labels[0]]
	if mc == nil {
		c.addf(b.DefRange(), "module %q unknown to terraform-config-inspect", b.Labels[0])
		return
	}
	dir := filepath.Join(c.m.Dir, mc.Source)
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
