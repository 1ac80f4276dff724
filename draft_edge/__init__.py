"""draft-edge: Envoy in front of both services (REST/JSON, gRPC, gRPC-Web on one port)."""
