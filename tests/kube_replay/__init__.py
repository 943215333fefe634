"""A recorded Kubernetes API conversation and the server that replays it (Kubernetes Ingress tests)."""
