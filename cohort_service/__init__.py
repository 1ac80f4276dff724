"""cohort-service: composable cohort drafts and the catalog they point at, over gRPC."""
