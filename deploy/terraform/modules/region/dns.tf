# <region>.<domain> reaches this region (clients measure their RTT to each
# region's probe endpoint through it); <domain> is latency-routed to the
# nearest healthy region.

resource "aws_route53_record" "region" {
  zone_id = var.zone_id
  name    = "${var.region}.${var.domain}"
  type    = "A"

  alias {
    name                   = aws_lb.web.dns_name
    zone_id                = aws_lb.web.zone_id
    evaluate_target_health = true
  }
}

# The region is healthy while some node answers /readyz through the load
# balancer; when every node drains or dies, Route53 sends the region's
# participants to the next-nearest region.
resource "aws_route53_health_check" "region" {
  fqdn              = aws_route53_record.region.fqdn
  port              = local.ports.https
  type              = "HTTPS"
  resource_path     = "/readyz"
  enable_sni        = true
  request_interval  = 30
  failure_threshold = 3
  tags              = merge(local.tags, { Name = "${local.prefix}-readyz" })
}

resource "aws_route53_record" "latency" {
  zone_id         = var.zone_id
  name            = var.domain
  type            = "A"
  set_identifier  = var.region
  health_check_id = aws_route53_health_check.region.id

  latency_routing_policy {
    region = var.region
  }

  alias {
    name                   = aws_lb.web.dns_name
    zone_id                = aws_lb.web.zone_id
    evaluate_target_health = true
  }
}

# <node name>.<domain> reaches that fixed node only (its own load balancer,
# lb.tf): its --public-url.
resource "aws_route53_record" "node" {
  count = length(var.nodes)

  zone_id = var.zone_id
  name    = "${var.nodes[count.index].name}.${var.domain}"
  type    = "A"

  alias {
    name                   = aws_lb.node[count.index].dns_name
    zone_id                = aws_lb.node[count.index].zone_id
    evaluate_target_health = false
  }
}

# <region>-auto-<k>.<domain> reaches the autoscaled node that holds the
# k-th address of the region's pool, if any (lb.tf): its --public-url.
# These names are fixed, so nothing is left in DNS when a node goes; while
# no node holds the slot, its name answers 503.
resource "aws_route53_record" "auto" {
  count = length(local.slots)

  zone_id = var.zone_id
  name    = local.slots[count.index].host
  type    = "A"

  alias {
    name                   = aws_lb.auto[0].dns_name
    zone_id                = aws_lb.auto[0].zone_id
    evaluate_target_health = false
  }
}
