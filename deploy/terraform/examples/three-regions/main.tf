# A meshmeet cluster in three regions, one voter in each: losing any one
# region keeps the room directory writable (2 of 3 voters). eu-west-1 also
# has an autoscaling group of extra nodes for its busy hours.

module "meshmeet" {
  source = "../../modules/cluster"

  name          = "meshmeet"
  domain        = var.domain
  zone_id       = var.zone_id
  binary        = var.binary
  instance_type = var.instance_type
  secret_region = var.home_region
  voters        = 3

  regions = {
    "eu-west-1" = {
      nodes    = 1
      voters   = 1
      location = { lat = 53.35, lon = -6.26 }
      autoscaling = {
        min_size = 0
        max_size = 4
      }
    }
    "us-east-1" = {
      nodes    = 1
      voters   = 1
      location = { lat = 38.95, lon = -77.45 }
    }
    "ap-southeast-1" = {
      nodes    = 1
      voters   = 1
      location = { lat = 1.29, lon = 103.85 }
    }
  }
}
