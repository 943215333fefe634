"""The Kubernetes Ingress provider (``providers.kubernetesIngress``): records, builder, watch."""
