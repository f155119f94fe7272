// Package tfcheck checks meshmeet's deployment files where Terraform and
// systemd cannot run: the Terraform modules under deploy/terraform and the
// systemd unit under deploy/systemd. The tests of deploy/terraform use it.
//
// Terraform itself cannot be installed on the build machines, so a Module
// is loaded twice, by terraform-config-inspect (what Terraform's loader
// sees) and as raw hclsyntax bodies, and checked for what
// terraform-config-inspect does not catch: undefined references and
// functions, module calls against their child's variables, template
// variables passed and used, variables without type or description, secrets
// with defaults or kept in the state (CheckVariables, CheckSecrets,
// CheckReferences, CheckTemplates). SecurityGroupRules evaluates the
// firewall rules so a test can compare them with internal/defaults.
//
// A Unit is a parsed systemd unit; CheckUnit checks its hardening, that it
// runs meshmeet serve with known flags and no secret on the command line,
// that its listeners use the default ports, and that nothing is written to
// disk.
//
// Every check returns problems as "position: what is wrong" strings, empty
// when all is well, so a test can list all of them at once.
package tfcheck
