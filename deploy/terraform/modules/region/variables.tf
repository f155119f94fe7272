variable "name" {
  type        = string
  description = "Cluster name: prefix of every resource name and value of the meshmeet-cluster tag."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region of this part of the cluster, e.g. eu-west-1. Also meshmeet's --region."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "location" {
  type = object({
    lat = number
    lon = number
  })
  description = "Latitude and longitude given to meshmeet (--lat, --lon), gossiped for choosing the nearest region (planned); null leaves them unset."
  default     = null
}

variable "nodes" {
  type = list(object({
    name          = string
    allocation_id = string
    voter         = bool
  }))
  description = "Fixed nodes of this region, one instance each: meshmeet node name, Elastic IP allocation the node takes at boot, and whether it is a raft voter."

  validation {
    condition     = alltrue([for n in var.nodes : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", n.name))])
    error_message = "node names must be lower-case letters, digits and dashes."
  }
}

variable "pool_allocation_ids" {
  type        = list(string)
  description = "Elastic IP allocations for autoscaled nodes; an autoscaled node takes a free one at boot, and with it that address's own name: the k-th (from 1) is <region>-auto-<k>.<domain>. Needs at least autoscaling.max_size entries; append, never reorder (a running node keeps the name it booted with)."
  default     = []
}

variable "cluster_cidrs" {
  type        = list(string)
  description = "Every address of the cluster (all regions) as /32 CIDRs: the only sources allowed on the gossip, raft and relay ports."

  validation {
    condition     = length(var.cluster_cidrs) > 0 && alltrue([for c in var.cluster_cidrs : can(cidrhost(c, 0))])
    error_message = "cluster_cidrs must be a non-empty list of CIDRs."
  }
}

variable "join" {
  type        = list(string)
  description = "Gossip addresses (host:port) of the voters, given to every node as --join."

  validation {
    condition     = length(join(" ", var.join)) <= 256 && alltrue([for a in var.join : can(regex("^[0-9.]+:[0-9]+$", a))])
    error_message = "join must be IPv4 host:port addresses, at most 256 characters in all (an EC2 tag value)."
  }
}

variable "bootstrap_expect" {
  type        = number
  description = "Number of raft voters in the whole cluster (--bootstrap-expect on voters)."

  validation {
    condition     = contains([1, 3, 5], var.bootstrap_expect)
    error_message = "bootstrap_expect must be 1, 3 or 5."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of the nodes; the AMI architecture (arm64 or x86_64) follows from it."
  default     = "c7g.xlarge"
}

variable "ami_id" {
  type        = string
  description = "AMI of the nodes. null: the latest Amazon Linux 2023 for the instance type's architecture at the first apply, kept until ami_id or instance_type changes (so a new AWS image never replaces nodes by surprise)."
  default     = null
}

variable "binary" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "The meshmeet binary for the instance architecture: an https:// URL or an s3://bucket/key object, and its SHA-256 (hex). The node refuses to start a binary whose checksum differs."

  validation {
    condition     = can(regex("^(https|s3)://[A-Za-z0-9._~:/?#@!&+,;=%-]+$", var.binary.url))
    error_message = "binary.url must be an https:// or s3:// URL without quotes or spaces."
  }
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.binary.sha256))
    error_message = "binary.sha256 must be 64 lower-case hex digits."
  }
}

variable "cluster_secret_name" {
  type        = string
  description = "Name of the Secrets Manager secret holding the cluster secret; it must exist (or have a replica) in this region."
}

variable "turn_tls_secret_arn" {
  type        = string
  description = "ARN of a Secrets Manager secret with a JSON {\"cert\": PEM chain, \"key\": PEM key} for TURN over TLS. null: no TURN over TLS, and its port stays closed."
  default     = null
}

variable "instance_profile_name" {
  type        = string
  description = "IAM instance profile of the nodes (created by the cluster module)."
}

variable "vpc_cidr" {
  type        = string
  description = "Address range of this region's VPC."
  default     = "10.80.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a CIDR."
  }
}

variable "autoscaling" {
  type = object({
    min_size   = number
    max_size   = number
    cpu_target = optional(number, 60)
  })
  description = "Optional autoscaling group of extra non-voting nodes, scaled on average CPU. null: fixed nodes only."
  default     = null

  validation {
    condition     = var.autoscaling == null || (try(var.autoscaling.min_size >= 0 && var.autoscaling.max_size >= var.autoscaling.min_size, false))
    error_message = "autoscaling needs 0 <= min_size <= max_size."
  }
}

variable "drain_timeout_seconds" {
  type        = number
  description = "How long a stopping node may take to stop (today it ends its participants' sessions; moving them away first is planned). Must not exceed the unit's TimeoutStopSec (10 minutes)."
  default     = 600

  validation {
    condition     = var.drain_timeout_seconds >= 60 && var.drain_timeout_seconds <= 600
    error_message = "drain_timeout_seconds must be between 60 and 600."
  }
}

variable "domain" {
  type        = string
  description = "The meeting name participants open, e.g. meet.example.com; this region also answers on <region>.<domain>."
}

variable "zone_id" {
  type        = string
  description = "Route53 hosted zone that holds domain."
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate (in this region) for domain and *.domain. null: the module requests one, validated by the records in certificate_validation_fqdns."
  default     = null
}

variable "certificate_validation_fqdns" {
  type        = list(string)
  description = "FQDNs of the DNS validation records of domain and *.domain (created once by the cluster module); used only when certificate_arn is null."
  default     = []
}

variable "log_level" {
  type        = string
  description = "meshmeet --log-level."
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}
