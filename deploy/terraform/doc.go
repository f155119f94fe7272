// Package terraform holds meshmeet's Terraform modules for AWS (modules/region,
// modules/cluster) and an example root (examples/three-regions). It has no Go
// code: its tests validate the modules offline, since no terraform binary can
// run in CI. They load every module with terraform-config-inspect and
// hcl/v2, resolve every reference, check variables and secrets, hold the
// security groups and deploy/systemd/meshmeet.service against the default
// ports in internal/defaults, and run the nodes' boot scripts against fakes
// of the instance metadata service and the aws CLI. docs/deploy.md explains
// how to use the modules.
package terraform
