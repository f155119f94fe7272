variable "name" {
  type        = string
  description = "Cluster name: prefix of every resource name and value of the meshmeet-cluster tag."
  default     = "meshmeet"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "regions" {
  type = map(object({
    nodes         = optional(number, 1)
    voters        = optional(number)
    instance_type = optional(string)
    ami_id        = optional(string)
    binary = optional(object({
      url    = string
      sha256 = string
    }))
    location = optional(object({
      lat = number
      lon = number
    }))
    autoscaling = optional(object({
      min_size   = number
      max_size   = number
      cpu_target = optional(number, 60)
    }))
    vpc_cidr        = optional(string, "10.80.0.0/16")
    certificate_arn = optional(string)
  }))
  description = <<-EOT
    The regions of the cluster, keyed by AWS region name. Per region: fixed
    nodes (nodes, default 1), how many of them are raft voters (voters; set it
    in every region to pin the placement, or leave it out everywhere for
    round-robin), instance_type, ami_id and binary overriding the
    cluster defaults (a new binary in one region at a time is how to roll out a
    version), location (lat/lon for --lat/--lon), an optional autoscaling
    group of extra non-voting nodes, the VPC range, and an optional ACM
    certificate ARN for domain and *.domain in that region.
  EOT

  validation {
    condition     = length(var.regions) > 0 && alltrue([for k, r in var.regions : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", k)) && r.nodes >= 0])
    error_message = "regions must be keyed by AWS region names, each with nodes >= 0."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.voters == null || try(r.voters >= 0 && r.voters <= r.nodes, false)])
    error_message = "A region's voters must be between 0 and its nodes."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.voters == null]) || sum([for r in values(var.regions) : coalesce(r.voters, 0)]) == var.voters
    error_message = "With voters set per region, they must add up to the cluster's voters."
  }
}

variable "voters" {
  type        = number
  description = "Raft voters in the whole cluster (3 or 5), spread round-robin over the regions' fixed nodes so that losing one region keeps a majority."
  default     = 3

  validation {
    condition     = contains([3, 5], var.voters)
    error_message = "voters must be 3 or 5."
  }
}

variable "binary" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "Default meshmeet binary for the nodes' architecture: https:// URL or s3://bucket/key, and its SHA-256 (hex)."
}

variable "ami_id" {
  type        = string
  description = "AMI of every node. null: the latest Amazon Linux 2023 for the instance type's architecture at the first apply, kept until this changes (a new AMI replaces the nodes, like an upgrade)."
  default     = null
}

variable "instance_type" {
  type        = string
  description = "Default EC2 instance type of the nodes (docs/deploy.md, Sizing)."
  default     = "c7g.xlarge"
}

variable "domain" {
  type        = string
  description = "The name participants open, e.g. meet.example.com. Latency-routed to the nearest healthy region; <region>.<domain> reaches one region."
}

variable "zone_id" {
  type        = string
  description = "ID of the Route53 public hosted zone that holds domain."
}

variable "secret_region" {
  type        = string
  description = "Region of the primary copy of the cluster secret (replicated to every other region). null: the first region in alphabetical order."
  default     = null
}

variable "cluster_secret_version" {
  type        = number
  description = "Bump to write a new random cluster secret (then replace every node: nodes with different secrets do not form one cluster)."
  default     = 1
}

variable "turn_tls_secret_arn" {
  type        = string
  description = "ARN of a Secrets Manager secret with a JSON {\"cert\": PEM chain, \"key\": PEM key} for TURN over TLS on every node. null: no TURN over TLS."
  default     = null
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM principals (role or user ARNs) allowed to read the cluster secret besides the nodes' role and the principal running this apply: every other identity that runs Terraform on this cluster (the AWS provider reads the secret version back on refresh), and break-glass admins."
  default     = []
}

variable "drain_timeout_seconds" {
  type        = number
  description = "How long a stopping node may take to stop (at most the unit's TimeoutStopSec, 600 s): today it ends its participants' sessions; moving them away first is planned."
  default     = 600
}

variable "enable_ssm" {
  type        = bool
  description = "Let operators reach the nodes with AWS Systems Manager Session Manager (no SSH port is opened)."
  default     = true
}

variable "log_level" {
  type        = string
  description = "meshmeet --log-level on every node."
  default     = "info"
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}
