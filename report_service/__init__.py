"""report-service: reports and their per-user draft workflow, over gRPC."""
