// Package terraform holds meshmeet's Terraform modules for AWS (modules/region,
// modules/cluster) and an example root (examples/three-regions). It has no Go
// code: its tests validate the modules offline, since no terraform binary can
// run in CI. They load every module with terraform-config-inspect and
// hcl/v2, resolve every reference, check variables and secrets, and hold the
// security groups and deploy/systemd/meshmeet.service against the default
// ports in internal/defaults. docs/deploy.md explains how to use them.
package terraform
