locals {
  # meshmeet's default ports (internal/defaults/defaults.go; the Go test in
  # deploy/terraform checks that these match it and the systemd unit).
  ports = {
    http     = 7880 # HTTP + WebSocket behind the load balancer's TLS listener
    rtc      = 7882 # WebRTC media, UDP (ICE mux) and ICE-TCP
    gossip   = 7946 # memberlist, UDP and TCP, cluster only
    raft     = 7947 # raft over mutual TLS, TCP, cluster only
    relay    = 7443 # QUIC relay, UDP, cluster only
    turn     = 3478 # TURN over UDP and TCP
    turn_tls = 5349 # TURN over TLS, only with a certificate
    https    = 443  # the load balancer's TLS listener
  }

  # Lifecycle hook that holds a terminating autoscaled node until it has
  # drained (see the lifecycle watcher in cloud-init.yaml.tftpl).
  drain_hook = "meshmeet-drain"

  prefix   = "${var.name}-${var.region}"
  turn_tls = var.turn_tls_secret_arn != null
  arch     = contains(data.aws_ec2_instance_type.node.supported_architectures, "arm64") ? "arm64" : "x86_64"
  tags     = merge(var.tags, { meshmeet-cluster = var.name })

  # Tags every node carries (EC2 tag values allow no commas: space-separated).
  node_tags = { meshmeet-join = join(" ", var.join) }

  # Autoscaled nodes' own names: one slot per address of the pool, in the
  # pool's order. The node that holds the k-th address answers on
  # <region>-auto-<k>.<domain> (lb.tf, dns.tf).
  slots = var.autoscaling == null ? [] : [
    for i, a in var.pool_allocation_ids : {
      allocation_id = a
      host          = "${var.region}-auto-${i + 1}.${var.domain}"
    }
  ]
  # Slot target groups are named this prefix + the allocation ID without
  # "eipalloc-"; the boot script and the node role's policy (cluster
  # module) rely on it.
  slot_target_group_prefix = "mma-"
}

data "aws_availability_zones" "available" {
  region = var.region
  state  = "available"
}

data "aws_ec2_instance_type" "node" {
  region        = var.region
  instance_type = var.instance_type
}

data "aws_ssm_parameter" "al2023" {
  region = var.region
  name   = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${local.arch}"
}

# The AMI, resolved once: the latest Amazon Linux 2023 moves every few weeks,
# and a new image is a new launch template version, which replaces the nodes.
# It changes only when ami_id or instance_type does.
resource "terraform_data" "ami" {
  input            = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.al2023.insecure_value
  triggers_replace = [var.ami_id, var.instance_type]

  lifecycle {
    ignore_changes = [input]
  }
}

# ---------------------------------------------------------------- network

resource "aws_vpc" "this" {
  region               = var.region
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = local.prefix })
}

resource "aws_internet_gateway" "this" {
  region = var.region
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = local.prefix })
}

resource "aws_subnet" "public" {
  count = min(3, length(data.aws_availability_zones.available.names))

  region                  = var.region
  vpc_id                  = aws_vpc.this.id
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = true
  tags                    = merge(local.tags, { Name = "${local.prefix}-${data.aws_availability_zones.available.names[count.index]}" })
}

resource "aws_route_table" "public" {
  region = var.region
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = merge(local.tags, { Name = local.prefix })
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  region         = var.region
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# ---------------------------------------------------------------- nodes

resource "aws_launch_template" "node" {
  region        = var.region
  name_prefix   = "${local.prefix}-"
  image_id      = terraform_data.ami.output
  instance_type = var.instance_type
  # gzip: cloud-init unpacks it; EC2 allows 16 KB of user data.
  user_data = base64gzip(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    systemd_unit        = file("${path.module}/../../../systemd/meshmeet.service")
    binary_url          = var.binary.url
    binary_sha256       = var.binary.sha256
    cluster_secret_name = var.cluster_secret_name
    turn_tls_secret_arn = local.turn_tls ? var.turn_tls_secret_arn : ""
    turn_tls_port       = local.ports.turn_tls
    pool_tag            = local.prefix
    lat                 = var.location == null ? "" : tostring(var.location.lat)
    lon                 = var.location == null ? "" : tostring(var.location.lon)
    log_level           = var.log_level
    drain_hook          = local.drain_hook
    cluster_url         = "https://${var.domain}"
    slot_prefix         = local.slot_target_group_prefix
  }))

  iam_instance_profile {
    name = var.instance_profile_name
  }

  vpc_security_group_ids = [aws_security_group.node.id]

  # IMDSv2 only; instance tags readable from the instance (voter flag,
  # node name, Elastic IP allocation).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 16
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = local.prefix })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

# Fixed nodes: the voters and the region's baseline capacity.
resource "aws_instance" "node" {
  count = length(var.nodes)

  region    = var.region
  subnet_id = aws_subnet.public[count.index % length(aws_subnet.public)].id

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # Per-node settings, read from the instance metadata at boot. Tags, not
  # user data: changing the voters or the join list updates them in place
  # instead of replacing every node (a node reads them when it restarts).
  tags = merge(local.tags, local.node_tags, {
    Name                      = var.nodes[count.index].name
    meshmeet-node-name        = var.nodes[count.index].name
    meshmeet-voter            = var.nodes[count.index].voter ? "true" : "false"
    meshmeet-bootstrap-expect = tostring(var.bootstrap_expect)
    meshmeet-eip-allocation   = var.nodes[count.index].allocation_id
    # Its own name (lb.tf, dns.tf), gossiped as --public-url.
    meshmeet-public-url = "https://${var.nodes[count.index].name}.${var.domain}"
  })

  lifecycle {
    # A new binary or setting is a new launch template version: replace the
    # node (docs/deploy.md, "Upgrading", drains it first).
    replace_triggered_by = [aws_launch_template.node.latest_version]

    precondition {
      condition     = length("https://${var.nodes[count.index].name}.${var.domain}") <= 64 && var.nodes[count.index].name != var.region
      error_message = "a node's own URL, https://<node name>.<domain>, must fit meshmeet's 64-byte --public-url, and a node may not be named like its region (<region>.<domain> is the region's name)."
    }
  }
}

# Extra, non-voting nodes that come and go with the load.
resource "aws_autoscaling_group" "node" {
  count = var.autoscaling == null ? 0 : 1

  region                    = var.region
  name                      = "${local.prefix}-asg"
  min_size                  = var.autoscaling.min_size
  max_size                  = var.autoscaling.max_size
  vpc_zone_identifier       = aws_subnet.public[*].id
  target_group_arns         = [aws_lb_target_group.http.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 300

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # A terminating node stays in Terminating:Wait until its lifecycle watcher
  # has stopped meshmeet (which drains) and completed the action.
  initial_lifecycle_hook {
    name                 = local.drain_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    default_result       = "CONTINUE"
    heartbeat_timeout    = var.drain_timeout_seconds + 120
  }

  # A new launch template version rolls through the group.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, local.node_tags, { Name = "${local.prefix}-auto" })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # A node boots once its own name can reach it.
  depends_on = [aws_lb_listener_rule.auto, aws_route53_record.auto]

  lifecycle {
    precondition {
      condition     = length(var.pool_allocation_ids) >= var.autoscaling.max_size
      error_message = "pool_allocation_ids needs one Elastic IP per autoscaled node (max_size)."
    }
    precondition {
      condition     = length(local.slots) <= 100 && alltrue([for s in local.slots : length("https://${s.host}") <= 64 && !contains([for n in var.nodes : "${n.name}.${var.domain}"], s.host)])
      error_message = "an autoscaled node's own URL, https://<region>-auto-<k>.<domain>, must fit meshmeet's 64-byte --public-url and be no fixed node's name, and a region has at most 100 pool addresses (the load balancer's rules per listener)."
    }
  }
}

resource "aws_autoscaling_policy" "cpu" {
  count = var.autoscaling == null ? 0 : 1

  region                 = var.region
  name                   = "${local.prefix}-cpu"
  autoscaling_group_name = aws_autoscaling_group.node[0].name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.autoscaling.cpu_target
  }
}
