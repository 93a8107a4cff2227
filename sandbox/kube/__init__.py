"""The sandbox's Kubernetes: an API server that kubectl and the official client use
unchanged, with simulated controllers (Deployments, ReplicaSets, the backend pods, External
Secrets Operator) and a service endpoint per namespace."""

from sandbox.kube.cluster import KubeSandbox
from sandbox.kube.config import AwsConfig, Identity
from sandbox.kube.tls import ServerCert, kubeconfig, make_server_cert

__all__ = ["AwsConfig", "Identity", "KubeSandbox", "ServerCert", "kubeconfig",
           "make_server_cert"]
