# One network load balancer per region terminates TLS for the web client and
# WebSocket signaling (an ACM certificate: no private key on the nodes) and
# forwards to the nodes' HTTP port. It only sends new connections to nodes
# whose /readyz answers 200, so a draining node (503) gets no new
# participants while its open WebSockets continue.

resource "aws_lb" "web" {
  region                           = var.region
  name                             = trimsuffix(substr("${var.name}-${var.region}", 0, 32), "-")
  load_balancer_type               = "network"
  subnets                          = aws_subnet.public[*].id
  security_groups                  = [aws_security_group.lb.id]
  enable_cross_zone_load_balancing = true
  tags                             = local.tags
}

resource "aws_lb_target_group" "http" {
  region               = var.region
  name_prefix          = "mm-"
  port                 = local.ports.http
  protocol             = "TCP"
  vpc_id               = aws_vpc.this.id
  target_type          = "instance"
  preserve_client_ip   = true
  deregistration_delay = var.drain_timeout_seconds

  # Keep established WebSockets open while a node drains: neither
  # deregistration nor a failing /readyz (503 while draining) cuts them.
  connection_termination = false

  target_health_state {
    enable_unhealthy_connection_termination = false
    unhealthy_draining_interval             = var.drain_timeout_seconds
  }

  health_check {
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_target_group_attachment" "node" {
  count = length(aws_instance.node)

  region           = var.region
  target_group_arn = aws_lb_target_group.http.arn
  target_id        = aws_instance.node[count.index].id
  port             = local.ports.http
}

resource "aws_acm_certificate" "web" {
  count = var.certificate_arn == null ? 1 : 0

  region                    = var.region
  domain_name               = var.domain
  subject_alternative_names = ["*.${var.domain}"]
  validation_method         = "DNS"
  tags                      = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate_validation" "web" {
  count = var.certificate_arn == null ? 1 : 0

  region                  = var.region
  certificate_arn         = aws_acm_certificate.web[0].arn
  validation_record_fqdns = var.certificate_validation_fqdns
}

resource "aws_lb_listener" "https" {
  region            = var.region
  load_balancer_arn = aws_lb.web.arn
  port              = local.ports.https
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn == null ? aws_acm_certificate_validation.web[0].certificate_arn : var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }

  tags = local.tags
}

# Each fixed node also answers on a name of its own, <node name>.<domain>,
# through a small load balancer of its own (TLS on 443 with the region's
# certificate, which covers *.<domain>) that forwards to that node only.
# The node gossips it as its --public-url: placement redirects participants
# to the node that should hold them, and their pages time its /probe
# (docs/cluster.md, Placement). Autoscaled nodes get theirs from the
# application load balancer below.
resource "aws_lb" "node" {
  count = length(var.nodes)

  region             = var.region
  name               = "mm-${substr(md5("${var.name}/${var.region}/${var.nodes[count.index].name}"), 0, 20)}"
  load_balancer_type = "network"
  subnets            = [aws_subnet.public[count.index % length(aws_subnet.public)].id]
  security_groups    = [aws_security_group.lb.id]
  tags               = merge(local.tags, { Name = "${local.prefix}-${var.nodes[count.index].name}" })
}

resource "aws_lb_target_group" "node" {
  count = length(var.nodes)

  region               = var.region
  name_prefix          = "mmn-"
  port                 = local.ports.http
  protocol             = "TCP"
  vpc_id               = aws_vpc.this.id
  target_type          = "instance"
  preserve_client_ip   = true
  deregistration_delay = var.drain_timeout_seconds

  # Participants moved to this node, or placed on it, keep their
  # WebSockets while it drains, as on the region's load balancer.
  connection_termination = false

  target_health_state {
    enable_unhealthy_connection_termination = false
    unhealthy_draining_interval             = var.drain_timeout_seconds
  }

  # Liveness only: placement, not the load balancer, decides who joins
  # here (a draining node is never chosen).
  health_check {
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_target_group_attachment" "node_own" {
  count = length(var.nodes)

  region           = var.region
  target_group_arn = aws_lb_target_group.node[count.index].arn
  target_id        = aws_instance.node[count.index].id
  port             = local.ports.http
}

resource "aws_lb_listener" "node" {
  count = length(var.nodes)

  region            = var.region
  load_balancer_arn = aws_lb.node[count.index].arn
  port              = local.ports.https
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn == null ? aws_acm_certificate_validation.web[0].certificate_arn : var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.node[count.index].arn
  }

  tags = local.tags
}

# Autoscaled nodes come and go, so a load balancer of their own each, made
# by Terraform, is not possible. Instead every address of the region's pool
# is a slot with a name of its own, <region>-auto-<k>.<domain> (dns.tf), and
# one application load balancer per region terminates TLS for all of them
# (the region's ACM certificate again: no private key on any node). Its
# listener sends each slot's name, by the Host header, to that slot's target
# group. A node that takes a pool address at boot (cloud-init) joins the
# slot's target group, which it finds by name, and gossips the URL of the
# group's meshmeet-public-url tag as its --public-url. It leaves the group
# when the autoscaling group terminates it (lifecycle watcher); a target
# left behind by an instance that died is never healthy, so it gets no
# traffic, and the next node to take the address removes it.
resource "aws_lb" "auto" {
  count = length(local.slots) > 0 ? 1 : 0

  region                     = var.region
  name                       = "mm-${substr(md5("${var.name}/${var.region}/autoscaled"), 0, 20)}"
  load_balancer_type         = "application"
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.lb.id]
  drop_invalid_header_fields = true
  # Idle WebSockets close after this; the web client pings every 10 s.
  idle_timeout = 60
  tags         = merge(local.tags, { Name = "${local.prefix}-autoscaled" })
}

resource "aws_lb_listener" "auto" {
  count = length(local.slots) > 0 ? 1 : 0

  region            = var.region
  load_balancer_arn = aws_lb.auto[0].arn
  port              = local.ports.https
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn == null ? aws_acm_certificate_validation.web[0].certificate_arn : var.certificate_arn

  # A name that is no slot's.
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "no such meshmeet node"
      status_code  = "404"
    }
  }

  tags = local.tags
}

# One per slot, named after the slot's Elastic IP allocation (the boot
# script derives the name from the address it took) and tagged with the
# slot's URL. It starts empty: the node that takes the address registers
# itself (the cluster module's node role may register and deregister
# targets of these groups only).
resource "aws_lb_target_group" "auto" {
  count = length(local.slots)

  region               = var.region
  name                 = "${local.slot_target_group_prefix}${trimprefix(local.slots[count.index].allocation_id, "eipalloc-")}"
  port                 = local.ports.http
  protocol             = "HTTP"
  vpc_id               = aws_vpc.this.id
  target_type          = "instance"
  deregistration_delay = var.drain_timeout_seconds

  # Liveness only, as for fixed nodes' own load balancers: placement
  # decides who joins here.
  health_check {
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = merge(local.tags, {
    meshmeet-eip-allocation = local.slots[count.index].allocation_id
    meshmeet-public-url     = "https://${local.slots[count.index].host}"
  })
}

resource "aws_lb_listener_rule" "auto" {
  count = length(local.slots)

  region       = var.region
  listener_arn = aws_lb_listener.auto[0].arn
  priority     = count.index + 1

  condition {
    host_header {
      values = [local.slots[count.index].host]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.auto[count.index].arn
  }

  tags = local.tags
}
