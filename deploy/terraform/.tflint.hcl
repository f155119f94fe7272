# tflint with its bundled Terraform ruleset only (offline: no provider
# plugin is downloaded). Run by TestTFLint where tflint is installed.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}
