"""Generated protobuf and gRPC code for kvserve/v1/kvserve.proto (do not edit; regenerate)."""
