output "url" {
  description = "Open this in a browser to start or join a meeting."
  value       = module.meshmeet.url
}

output "region_urls" {
  description = "Each region's own entry point."
  value       = module.meshmeet.region_urls
}

output "node_urls" {
  description = "Each fixed node's own URL, by region."
  value       = module.meshmeet.node_urls
}

output "autoscaled_node_urls" {
  description = "Own URLs of the autoscaled node slots, by region."
  value       = module.meshmeet.autoscaled_node_urls
}

output "voters" {
  description = "Raft voters."
  value       = module.meshmeet.voters
}

output "node_addresses" {
  description = "Public address of every fixed node."
  value       = module.meshmeet.node_addresses
}

output "autoscaling_groups" {
  description = "Autoscaling group by region."
  value       = module.meshmeet.autoscaling_groups
}
