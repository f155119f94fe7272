output "url" {
  description = "URL of this region's entry point (<region>.<domain>)."
  value       = "https://${aws_route53_record.region.fqdn}/"
}

output "node_urls" {
  description = "Each fixed node's own URL (its --public-url), in the order of var.nodes."
  value       = [for r in aws_route53_record.node : "https://${r.fqdn}"]
}

output "autoscaled_node_urls" {
  description = "The own URL of each autoscaled node slot (one per pool address, in the pool's order): the node holding that address answers there."
  value       = [for r in aws_route53_record.auto : "https://${r.fqdn}"]
}

output "load_balancer_dns_name" {
  description = "DNS name of the region's network load balancer."
  value       = aws_lb.web.dns_name
}

output "instance_ids" {
  description = "Instance IDs of the fixed nodes, in the order of var.nodes."
  value       = aws_instance.node[*].id
}

output "autoscaling_group_name" {
  description = "Name of the autoscaling group, or null without one."
  value       = one(aws_autoscaling_group.node[*].name)
}

output "health_check_id" {
  description = "Route53 health check of the region (/readyz through the load balancer)."
  value       = aws_route53_health_check.region.id
}
