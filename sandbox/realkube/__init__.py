"""A real Kubernetes control plane for the sandbox: etcd, kube-apiserver,
kube-controller-manager and External Secrets Operator as processes on loopback, with the
sandbox's kubelet running the backend pods (``secretops sandbox up --kubernetes real``)."""
