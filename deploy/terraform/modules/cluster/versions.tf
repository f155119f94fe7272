terraform {
  # 1.11: write-only arguments (the cluster secret never enters the state).
  required_version = ">= 1.11"

  required_providers {
    # 6.0: a `region` argument on every regional resource, so one provider
    # configuration builds all regions in one apply.
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    # 3.7: the ephemeral random_password.
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7"
    }
  }
}
