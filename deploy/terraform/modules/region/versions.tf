terraform {
  # 1.11: write-only arguments and ephemeral resources (used by the cluster module).
  required_version = ">= 1.11"

  required_providers {
    # 6.0: every regional resource takes a `region` argument, so one provider
    # configuration manages all regions and the cluster module can call this
    # module with for_each.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
