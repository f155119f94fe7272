# Security groups open exactly meshmeet's ports (internal/defaults):
#   load balancer: 443/tcp from anywhere (TLS, forwarded to the nodes' HTTP port)
#   nodes, public: RTC 7882 udp+tcp, TURN 3478 udp+tcp, TURN-TLS 5349 tcp (with a certificate)
#   nodes, from the load balancer only: HTTP 7880 tcp
#   nodes, from the cluster's own addresses only: gossip 7946 udp+tcp, raft 7947 tcp, relay 7443 udp
# The Go test in deploy/terraform holds this list against internal/defaults.

resource "aws_security_group" "lb" {
  region      = var.region
  name        = "${local.prefix}-lb"
  description = "meshmeet ${var.name}: HTTPS to the load balancer"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-lb" })
}

resource "aws_vpc_security_group_ingress_rule" "lb_https" {
  region            = var.region
  security_group_id = aws_security_group.lb.id
  description       = "HTTPS and WebSocket signaling"
  ip_protocol       = "tcp"
  from_port         = local.ports.https
  to_port           = local.ports.https
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "lb_to_nodes" {
  region                       = var.region
  security_group_id            = aws_security_group.lb.id
  description                  = "forward to the nodes' HTTP port and health checks"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.http
  to_port                      = local.ports.http
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_security_group" "node" {
  region      = var.region
  name        = "${local.prefix}-node"
  description = "meshmeet ${var.name}: nodes"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.prefix}-node" })
}

resource "aws_vpc_security_group_ingress_rule" "node_http" {
  region                       = var.region
  security_group_id            = aws_security_group.node.id
  description                  = "HTTP and WebSocket from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.http
  to_port                      = local.ports.http
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "node_rtc_udp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "WebRTC media (ICE UDP mux)"
  ip_protocol       = "udp"
  from_port         = local.ports.rtc
  to_port           = local.ports.rtc
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "node_rtc_tcp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "WebRTC media (ICE-TCP)"
  ip_protocol       = "tcp"
  from_port         = local.ports.rtc
  to_port           = local.ports.rtc
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "node_turn_udp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "TURN over UDP"
  ip_protocol       = "udp"
  from_port         = local.ports.turn
  to_port           = local.ports.turn
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "node_turn_tcp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "TURN over TCP"
  ip_protocol       = "tcp"
  from_port         = local.ports.turn
  to_port           = local.ports.turn
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "node_turn_tls" {
  count = local.turn_tls ? 1 : 0

  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "TURN over TLS"
  ip_protocol       = "tcp"
  from_port         = local.ports.turn_tls
  to_port           = local.ports.turn_tls
  cidr_ipv4         = "0.0.0.0/0"
}

# The cluster's own addresses (every node's Elastic IP, in every region).
resource "aws_ec2_managed_prefix_list" "cluster" {
  region         = var.region
  name           = "${local.prefix}-cluster"
  address_family = "IPv4"
  max_entries    = length(var.cluster_cidrs)

  dynamic "entry" {
    for_each = var.cluster_cidrs

    content {
      cidr        = entry.value
      description = "meshmeet node"
    }
  }

  tags = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "node_gossip_udp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "memberlist gossip (UDP) from cluster nodes"
  ip_protocol       = "udp"
  from_port         = local.ports.gossip
  to_port           = local.ports.gossip
  prefix_list_id    = aws_ec2_managed_prefix_list.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "node_gossip_tcp" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "memberlist gossip (TCP) from cluster nodes"
  ip_protocol       = "tcp"
  from_port         = local.ports.gossip
  to_port           = local.ports.gossip
  prefix_list_id    = aws_ec2_managed_prefix_list.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "node_raft" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "raft (mutual TLS) from cluster nodes"
  ip_protocol       = "tcp"
  from_port         = local.ports.raft
  to_port           = local.ports.raft
  prefix_list_id    = aws_ec2_managed_prefix_list.cluster.id
}

resource "aws_vpc_security_group_ingress_rule" "node_relay" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "QUIC media relay from cluster nodes"
  ip_protocol       = "udp"
  from_port         = local.ports.relay
  to_port           = local.ports.relay
  prefix_list_id    = aws_ec2_managed_prefix_list.cluster.id
}

# Nodes send media to participants anywhere, talk to other regions and to
# the AWS APIs (Secrets Manager, EC2, S3).
resource "aws_vpc_security_group_egress_rule" "node_all" {
  region            = var.region
  security_group_id = aws_security_group.node.id
  description       = "all outbound"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
