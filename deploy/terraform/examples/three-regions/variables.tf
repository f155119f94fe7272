variable "home_region" {
  type        = string
  description = "Region of the provider configuration (API calls for global services) and of the primary copy of the cluster secret."
  default     = "eu-west-1"
}

variable "domain" {
  type        = string
  description = "The name participants open, e.g. meet.example.com (in zone_id's zone)."
}

variable "zone_id" {
  type        = string
  description = "ID of the Route53 public hosted zone that holds domain."
}

variable "binary" {
  type = object({
    url    = string
    sha256 = string
  })
  description = "The meshmeet binary for the instance type's architecture (arm64 for the default c7g types): https:// URL or s3://bucket/key, and its SHA-256."
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of every node."
  default     = "c7g.xlarge"
}
