output "url" {
  description = "The meeting URL: latency-routed to the nearest healthy region."
  value       = "https://${var.domain}/"
}

output "region_urls" {
  description = "Each region's own entry point, by region."
  value       = { for k, m in module.region : k => m.url }
}

output "voters" {
  description = "Node names of the raft voters."
  value       = [for k in local.voter_keys : local.nodes[k].name]
}

output "node_addresses" {
  description = "Public address of every fixed node, by node name."
  value       = { for k, n in local.nodes : n.name => aws_eip.node[k].public_ip }
}

output "node_urls" {
  description = "Each fixed node's own URL (its --public-url), by region."
  value       = { for k, m in module.region : k => m.node_urls }
}

output "autoscaled_node_urls" {
  description = "By region, the own URL of each autoscaled node slot (one per pool address): the autoscaled node holding that address answers there and gossips it as its --public-url."
  value       = { for k, m in module.region : k => m.autoscaled_node_urls }
}

output "instance_ids" {
  description = "Instance IDs of the fixed nodes, by region."
  value       = { for k, m in module.region : k => m.instance_ids }
}

output "autoscaling_groups" {
  description = "Autoscaling group name by region (null where there is none)."
  value       = { for k, m in module.region : k => m.autoscaling_group_name }
}

output "cluster_secret_arn" {
  description = "ARN of the cluster secret (primary copy). Its value is readable only by the nodes' role."
  value       = aws_secretsmanager_secret.cluster.arn
}

output "node_role_arn" {
  description = "IAM role of the nodes."
  value       = aws_iam_role.node.arn
}
