terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7"
    }
  }

  # Keep the state in a remote, encrypted backend shared by the operators,
  # e.g.:
  # backend "s3" {
  #   bucket       = "example-terraform-state"
  #   key          = "meshmeet/three-regions.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

# One provider configuration: the AWS provider 6 takes each resource's region
# from its `region` argument. IAM and Route53 are global.
provider "aws" {
  region = var.home_region

  default_tags {
    tags = {
      project = "meshmeet"
    }
  }
}
