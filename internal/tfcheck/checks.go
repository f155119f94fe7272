package tfcheck

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// SecretName matches variable names that hold a secret value (not the name,
// ARN, region or version of a secret).
var SecretName = regexp.MustCompile(`(?i)(secret|password|passphrase|token|private_key|credential)s?$`)

// CheckVariables: every variable has a type and a description; a secret
// variable is sensitive and has no default.
func CheckVariables(m *Module) []string {
	var problems []string
	for name, v := range m.Inspect.Variables {
		at := posString(&v.Pos)
		if strings.TrimSpace(v.Type) == "" {
			problems = append(problems, fmt.Sprintf("%s: variable %q has no type", at, name))
		}
		if strings.TrimSpace(v.Description) == "" {
			problems = append(problems, fmt.Sprintf("%s: variable %q has no description", at, name))
		}
		if v.Sensitive || SecretName.MatchString(name) {
			if !v.Required {
				problems = append(problems, fmt.Sprintf("%s: secret variable %q has a default", at, name))
			}
			if !v.Sensitive {
				problems = append(problems, fmt.Sprintf("%s: secret variable %q is not sensitive", at, name))
			}
		}
	}
	for name, o := range m.Inspect.Outputs {
		if strings.TrimSpace(o.Description) == "" {
			problems = append(problems, fmt.Sprintf("%s: output %q has no description", posString(&o.Pos), name))
		}
	}
	return problems
}

// CheckSecrets: no secret value is written as a literal or kept in the
// state: a secrets manager value is written only through the write-only
// argument, from an ephemeral value.
func CheckSecrets(m *Module) []string {
	var problems []string
	for _, b := range m.Blocks("resource") {
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
	for _, b := range m.Blocks("resource") {
		if b.Labels[0] == "random_password" || b.Labels[0] == "random_string" {
			problems = append(problems, fmt.Sprintf("%s: resource %s.%s stores the secret in the state; use an ephemeral block", b.DefRange(), b.Labels[0], b.Labels[1]))
		}
	}
	return problems
}

// TemplateCall is one templatefile(path, {vars}) call.
type TemplateCall struct {
	Path  string                          // the template file
	Vars  map[string]hclsyntax.Expression // the variables passed, by name
	Range hcl.Range                       // the call
}

// TemplateCalls finds every templatefile call of m whose arguments are a
// "${path.module}/..." path and an object constructor.
func TemplateCalls(m *Module) ([]TemplateCall, []string) {
	var calls []TemplateCall
	var problems []string
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.Dir)}),
	}}
	for _, body := range m.Files {
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
			tc := TemplateCall{Path: path, Vars: map[string]hclsyntax.Expression{}, Range: call.NameRange}
			obj, ok := call.Args[1].(*hclsyntax.ObjectConsExpr)
			if len(call.Args) != 2 || !ok {
				problems = append(problems, fmt.Sprintf("%s: templatefile needs an object of variables", call.NameRange))
				return nil
			}
			for _, item := range obj.Items {
				key := hcl.ExprAsKeyword(item.KeyExpr)
				tc.Vars[key] = item.ValueExpr
			}
			calls = append(calls, tc)
			return nil
		})
	}
	return calls, problems
}

// CheckTemplates: every variable a template uses is passed, and every
// variable passed is used.
func CheckTemplates(m *Module) []string {
	calls, problems := TemplateCalls(m)
	for _, tc := range calls {
		src, _ := os.ReadFile(tc.Path)
		tmpl, diags := hclsyntax.ParseTemplate(src, tc.Path, hcl.InitialPos)
		if diags.HasErrors() {
			problems = append(problems, "template: "+diags.Error())
			continue
		}
		used := map[string]bool{}
		for _, tr := range hclsyntax.Variables(tmpl) {
			used[tr.RootName()] = true
			if _, ok := tc.Vars[tr.RootName()]; !ok {
				problems = append(problems, fmt.Sprintf("%s: template variable %q is not passed by templatefile at %s", tr.SourceRange(), tr.RootName(), tc.Range))
			}
		}
		for k := range tc.Vars {
			if !used[k] {
				problems = append(problems, fmt.Sprintf("%s: templatefile passes %q, which %s never uses", tc.Range, k, tc.Path))
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
