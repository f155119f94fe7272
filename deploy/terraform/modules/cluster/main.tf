# A meshmeet cluster across AWS regions: one Elastic IP per node, the raft
# voters spread over the regions, one cluster secret (random, written once,
# readable only by the nodes' role), DNS validation of the web certificate,
# and one ../region module per region.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The principal running Terraform (a role, not its session): the AWS provider
# reads a secret version back on every refresh, so it must be let through.
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  # memberlist's default port (internal/defaults.GossipPort; checked by the
  # Go test in deploy/terraform).
  gossip_port = 7946

  tags        = merge(var.tags, { meshmeet-cluster = var.name })
  region_keys = sort(keys(var.regions))
  primary     = coalesce(var.secret_region, local.region_keys[0])

  # Fixed nodes, keyed "<region>/<index>".
  nodes = merge([
    for k in local.region_keys : {
      for i in range(var.regions[k].nodes) : "${k}/${i}" => {
        region = k
        name   = "${k}-${i + 1}"
      }
    }
  ]...)

  # Voters: as pinned per region, or else round-robin over the regions (the
  # first node of every region, then the second, ...) so that no region
  # holds a majority while there are at least as many regions as voters.
  # Round-robin follows the sorted region names: adding a region can move a
  # voter, so pin them in a cluster that grows.
  max_nodes   = max(0, [for k in local.region_keys : var.regions[k].nodes]...)
  voter_order = flatten([for i in range(local.max_nodes) : [for k in local.region_keys : "${k}/${i}" if i < var.regions[k].nodes]])
  pinned      = anytrue([for k in local.region_keys : var.regions[k].voters != null])
  voter_keys = (local.pinned
    ? flatten([for k in local.region_keys : [for i in range(coalesce(var.regions[k].voters, 0)) : "${k}/${i}"]])
    : slice(local.voter_order, 0, min(var.voters, length(local.voter_order)))
  )

  # Elastic IPs for autoscaled nodes: one per possible node (max_size).
  pool = merge([
    for k in local.region_keys : {
      for i in range(try(var.regions[k].autoscaling.max_size, 0)) : "${k}/pool-${i}" => { region = k }
    }
  ]...)

  cluster_cidrs = [for e in concat(values(aws_eip.node), values(aws_eip.pool)) : "${e.public_ip}/32"]
  join          = [for k in local.voter_keys : "${aws_eip.node[k].public_ip}:${local.gossip_port}"]

  # s3:// binaries the nodes must be allowed to read.
  binary_urls = distinct(concat([var.binary.url], [for k, r in var.regions : r.binary.url if r.binary != null]))
  s3_binaries = [for u in local.binary_urls : regex("^s3://([^/]+)/(.+)$", u) if startswith(u, "s3://")]

  need_certificate = anytrue([for k, r in var.regions : r.certificate_arn == null])

  # The region module names its autoscaled nodes' target groups with this
  # prefix (its local.slot_target_group_prefix; the Go test checks both).
  slot_target_group_prefix = "mma-"
}

# ---------------------------------------------------------------- addresses

resource "aws_eip" "node" {
  for_each = local.nodes

  region = each.value.region
  domain = "vpc"
  tags   = merge(local.tags, { Name = each.value.name, meshmeet-node-name = each.value.name })
}

resource "aws_eip" "pool" {
  for_each = local.pool

  region = each.value.region
  domain = "vpc"
  # The region module's boot script looks the pool up by this tag.
  tags = merge(local.tags, { Name = "${var.name}-${each.value.region}-pool", meshmeet-pool = "${var.name}-${each.value.region}" })
}

# ---------------------------------------------------------------- cluster secret

# Generated at apply time and written once (write-only argument): it is in
# neither the plan nor the state. Bump cluster_secret_version to rotate.
#
# The text form `meshmeet cluster init` prints (mesh.ParseSecret): the prefix
# "meshmeet-cs1:" and 32 random bytes in unpadded base64url, i.e. 43
# characters of A-Z a-z 0-9 - _ (each drawn uniformly: 258 random bits, of
# which the decoder keeps 256).
ephemeral "random_password" "cluster_secret" {
  length           = 43
  special          = true
  override_special = "-_"
}

resource "aws_secretsmanager_secret" "cluster" {
  region                  = local.primary
  name_prefix             = "${var.name}/cluster-secret-"
  description             = "meshmeet cluster ${var.name}: the one cluster secret (DESIGN.md section 9)"
  recovery_window_in_days = 7

  # A replica in every other region, so each node reads it locally.
  dynamic "replica" {
    for_each = [for k in local.region_keys : k if k != local.primary]

    content {
      region = replica.value
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(local.voter_order) >= var.voters
      error_message = "The regions have fewer fixed nodes than voters: add nodes or lower voters."
    }
    precondition {
      condition     = contains(local.region_keys, local.primary)
      error_message = "secret_region must be one of the regions."
    }
  }
}

resource "aws_secretsmanager_secret_version" "cluster" {
  region                   = local.primary
  secret_id                = aws_secretsmanager_secret.cluster.id
  secret_string_wo         = "meshmeet-cs1:${ephemeral.random_password.cluster_secret.result}"
  secret_string_wo_version = var.cluster_secret_version
}

# Nobody but the nodes' role may read the value, besides the principal that
# runs Terraform (the provider reads the version back on refresh, without
# storing it) and the listed admins.
data "aws_iam_policy_document" "secret" {
  statement {
    sid       = "OnlyMeshmeetNodes"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:PrincipalArn"
      values   = distinct(concat([aws_iam_role.node.arn, data.aws_iam_session_context.current.issuer_arn], var.admin_principal_arns))
    }
  }
}

resource "aws_secretsmanager_secret_policy" "cluster" {
  region              = local.primary
  secret_arn          = aws_secretsmanager_secret.cluster.arn
  policy              = data.aws_iam_policy_document.secret.json
  block_public_policy = true
}

# ---------------------------------------------------------------- node role

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.name}-node-"
  description        = "meshmeet ${var.name} nodes"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.name}-node-"
  role        = aws_iam_role.node.name
  tags        = local.tags
}

data "aws_iam_policy_document" "node" {
  statement {
    sid     = "ReadClusterSecret"
    actions = ["secretsmanager:GetSecretValue"]
    # The primary and its replicas: same name in every region.
    resources = ["arn:${data.aws_partition.current.partition}:secretsmanager:*:${data.aws_caller_identity.current.account_id}:secret:${aws_secretsmanager_secret.cluster.name}-??????"]
  }

  dynamic "statement" {
    for_each = var.turn_tls_secret_arn == null ? [] : [var.turn_tls_secret_arn]

    content {
      sid       = "ReadTurnTLS"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "TakeOwnElasticIP"
    actions   = ["ec2:AssociateAddress"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/meshmeet-cluster"
      values   = [var.name]
    }
  }

  # An autoscaled node joins and leaves the target group of the pool
  # address it holds (region module, lb.tf): the slot groups of this
  # cluster only, which the name prefix and the two tags single out. It
  # cannot create, change or delete any load balancer, listener, rule,
  # target group or DNS record.
  statement {
    sid       = "ServeOwnName"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["arn:${data.aws_partition.current.partition}:elasticloadbalancing:*:${data.aws_caller_identity.current.account_id}:targetgroup/${local.slot_target_group_prefix}*/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/meshmeet-cluster"
      values   = [var.name]
    }

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/meshmeet-eip-allocation"
      values   = ["false"]
    }
  }

  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAddresses",
      "autoscaling:DescribeAutoScalingInstances",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "FinishDrain"
    actions   = ["autoscaling:CompleteLifecycleAction"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "autoscaling:ResourceTag/meshmeet-cluster"
      values   = [var.name]
    }
  }

  dynamic "statement" {
    for_each = length(local.s3_binaries) == 0 ? [] : [1]

    content {
      sid       = "ReadBinary"
      actions   = ["s3:GetObject"]
      resources = [for b in local.s3_binaries : "arn:${data.aws_partition.current.partition}:s3:::${b[0]}/${b[1]}"]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name_prefix = "meshmeet-node-"
  role        = aws_iam_role.node.id
  policy      = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count = var.enable_ssm ? 1 : 0

  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# ---------------------------------------------------------------- web certificate

# ACM validates domain and *.domain by one CNAME per account, the same in
# every region: create it once here (from a certificate in the secret's
# region) and let every region's own certificate use it.
resource "aws_acm_certificate" "validation" {
  count = local.need_certificate ? 1 : 0

  region                    = local.primary
  domain_name               = var.domain
  subject_alternative_names = ["*.${var.domain}"]
  validation_method         = "DNS"
  tags                      = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = local.need_certificate ? { for o in aws_acm_certificate.validation[0].domain_validation_options : o.domain_name => o } : {}

  zone_id         = var.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

# ---------------------------------------------------------------- regions

module "region" {
  source   = "../region"
  for_each = var.regions

  name     = var.name
  region   = each.key
  location = each.value.location
  nodes = [
    for i in range(each.value.nodes) : {
      name          = local.nodes["${each.key}/${i}"].name
      allocation_id = aws_eip.node["${each.key}/${i}"].allocation_id
      voter         = contains(local.voter_keys, "${each.key}/${i}")
    }
  ]
  # In numeric order, so that raising max_size appends: the k-th address
  # is the slot <region>-auto-<k>.
  pool_allocation_ids          = [for i in range(try(each.value.autoscaling.max_size, 0)) : aws_eip.pool["${each.key}/pool-${i}"].allocation_id]
  cluster_cidrs                = local.cluster_cidrs
  join                         = local.join
  bootstrap_expect             = var.voters
  instance_type                = coalesce(each.value.instance_type, var.instance_type)
  ami_id                       = each.value.ami_id != null ? each.value.ami_id : var.ami_id
  binary                       = each.value.binary != null ? each.value.binary : var.binary
  cluster_secret_name          = aws_secretsmanager_secret.cluster.name
  turn_tls_secret_arn          = var.turn_tls_secret_arn
  instance_profile_name        = aws_iam_instance_profile.node.name
  vpc_cidr                     = each.value.vpc_cidr
  autoscaling                  = each.value.autoscaling
  drain_timeout_seconds        = var.drain_timeout_seconds
  domain                       = var.domain
  zone_id                      = var.zone_id
  certificate_arn              = each.value.certificate_arn
  certificate_validation_fqdns = [for r in aws_route53_record.validation : r.fqdn]
  log_level                    = var.log_level
  tags                         = var.tags

  # Nodes boot only once their secret and permissions exist.
  depends_on = [
    aws_secretsmanager_secret_version.cluster,
    aws_secretsmanager_secret_policy.cluster,
    aws_iam_role_policy.node,
  ]
}
