package tfcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/terraform-config-inspect/tfconfig"
	"github.com/zclconf/go-cty/cty"
)

// Module is one Terraform module, loaded twice: by terraform-config-inspect
// (what Terraform's own loader sees) and as raw hclsyntax bodies (for the
// checks terraform-config-inspect does not do).
type Module struct {
	Dir        string
	Inspect    *tfconfig.Module
	Files      map[string]*hclsyntax.Body // by file name
	Locals     map[string]*hclsyntax.Attribute
	Ephemerals map[string]bool // "type.name"
}

// topLevelBlocks are the block types a Terraform file may hold, with their
// label counts.
var topLevelBlocks = map[string]int{
	"terraform": 0, "variable": 1, "output": 1, "locals": 0, "provider": 1,
	"resource": 2, "data": 2, "ephemeral": 2, "module": 1, "moved": 0,
	"import": 0, "check": 1, "removed": 0,
}

// Load loads dir and returns it with every diagnostic as a problem.
func Load(dir string) (*Module, []string) {
	var problems []string
	m := &Module{
		Dir:        dir,
		Files:      map[string]*hclsyntax.Body{},
		Locals:     map[string]*hclsyntax.Attribute{},
		Ephemerals: map[string]bool{},
	}
	inspect, diags := tfconfig.LoadModule(dir)
	for _, d := range diags {
		problems = append(problems, fmt.Sprintf("terraform-config-inspect: %s: %s (%s)", d.Summary, d.Detail, posString(d.Pos)))
	}
	m.Inspect = inspect

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
		m.Files[name] = body
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
					if _, dup := m.Locals[name]; dup {
						problems = append(problems, fmt.Sprintf("%s: local.%s defined twice", a.SrcRange, name))
					}
					m.Locals[name] = a
				}
			case "ephemeral":
				m.Ephemerals[b.Labels[0]+"."+b.Labels[1]] = true
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

// Blocks returns every top-level block of type typ, in file order.
func (m *Module) Blocks(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, b := range m.Files[n].Blocks {
			if b.Type == typ {
				out = append(out, b)
			}
		}
	}
	return out
}

// Resource returns the managed resource block type.name, or nil.
func (m *Module) Resource(typ, name string) *hclsyntax.Block {
	for _, b := range m.Blocks("resource") {
		if b.Labels[0] == typ && b.Labels[1] == name {
			return b
		}
	}
	return nil
}

// EvalLocal evaluates local.NAME of m, which must be a constant.
func (m *Module) EvalLocal(name string) (cty.Value, error) {
	a, ok := m.Locals[name]
	if !ok {
		return cty.NilVal, fmt.Errorf("%s: no local.%s", m.Dir, name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("%s: local.%s is not a constant: %s", m.Dir, name, diags.Error())
	}
	return v, nil
}

// AsInt returns v as an int if it is a known whole number.
func AsInt(v cty.Value) (int, error) {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0, fmt.Errorf("not a number: %#v", v)
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != 0 {
		return 0, fmt.Errorf("not an integer: %s", bf)
	}
	return int(i), nil
}
