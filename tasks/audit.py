"""Runbook: Access Control / Audit Access, and step 4 of Secret Leaked (audit access logs).

Who *can* read a secret: Kubernetes RBAC in the environment's namespace (``kubectl get
rolebindings``) and, for secrets kept in AWS Secrets Manager, the IAM roles whose policies
allow ``GetSecretValue`` with their trust policies (``aws iam get-role``). Who *did* read it:
the API server's audit log and CloudTrail. Each grant is compared with the inventory's access
policy (production: devops only; staging: dev team; development: all developers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from secretops.inventory import AwsSecretStoreSpec, KubernetesSecretStoreSpec
from secretops.models import AccessGrant
from tasks.common import RETRIES, inventory_at, runbook_step, transient_only, wiring_for

WORKLOAD_KINDS = ("ServiceAccount",)


@dataclass(frozen=True)
class Finding:
    """One subject that can read secrets, with the policy's verdict."""

    environment: str
    subject: str
    via: str
    verdict: str  # allowed | workload | VIOLATION

    @property
    def violation(self) -> bool:
        return self.verdict == "VIOLATION"


def judge(grant: AccessGrant, allowed_groups: list[str]) -> Finding:
    """The policy names groups: a group outside it, or a user bound by name, breaks it.
    Service accounts and federated (workload) identities are reported as workloads, and so
    are Kubernetes' own components: users named ``system:...`` (the controller manager, the
    scheduler, nodes), a prefix Kubernetes reserves for itself, bound by the bootstrap RBAC
    that every real cluster has."""
    subject = f"{grant.subject_kind} {grant.subject}"
    if grant.subject_kind == "Group":
        ok = grant.subject in allowed_groups or grant.subject.startswith("system:")
        verdict = "allowed" if ok else "VIOLATION"
    elif grant.subject_kind in WORKLOAD_KINDS or grant.subject.startswith(
            ("Federated:", "Service:")) or (grant.subject_kind == "User"
                                            and grant.subject.startswith("system:")):
        verdict = "workload"
    else:
        verdict = "VIOLATION"
    return Finding(grant.environment, subject, grant.via, verdict)


def secret_names(secret: str, environment: str, inventory: str) -> list[str]:
    """The Kubernetes Secrets that hold the secret in the environment: its own stores and the
    targets of the ExternalSecrets that feed it."""
    inv = inventory_at(inventory)
    names: list[str] = []
    for spec in inv.stores(secret, environment):
        if isinstance(spec, KubernetesSecretStoreSpec):
            names.append(spec.name)
        external = getattr(spec, "external_secret", None)
        if external:
            names.append(inv.external_secret_target(environment, external))
    return list(dict.fromkeys(names))


def _aws_ids(secret: str, environment: str, inventory: str) -> list[str]:
    return [spec.secret_id for spec in inventory_at(inventory).stores(secret, environment)
            if isinstance(spec, AwsSecretStoreSpec)]


@runbook_step("4. Audit access logs")
def audit_access_logs(secret: str, environment: str, inventory: str,
                      since: datetime) -> list[str]:
    """Reads of the secret since the exposure began: the Kubernetes audit log (get/list/watch
    of its Secrets) and CloudTrail (``GetSecretValue`` on its ARN)."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    evidence = []
    if namespace:
        for name in secret_names(secret, environment, inventory):
            events = wiring.cluster().secret_read_events(namespace, name, since)
            evidence += [f"kubernetes audit: {e.actor} {e.action} {e.target} at "
                         f"{e.time.isoformat()} {e.detail}".rstrip() for e in events]
    for secret_id in _aws_ids(secret, environment, inventory):
        events = wiring.aws(environment).secret_read_events(secret_id, since)
        evidence += [f"cloudtrail: {e.actor} {e.action} {e.target} at {e.time.isoformat()} "
                     f"{e.detail}".rstrip() for e in events]
    return evidence or [f"no read of {secret} in {environment} since {since.isoformat()}"]


def readers(secret: str | None, environment: str, inventory: str) -> list[AccessGrant]:
    """Every grant to read the environment's Secrets (RBAC), and the IAM grants on the AWS
    secrets of ``secret`` (every secret of the inventory when None)."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    namespace = inv.namespace(environment)
    grants = list(wiring.cluster().secret_readers(namespace)) if namespace else []
    secrets = [secret] if secret else [s for s in inv.secret_ids()
                                      if environment in inv.environments_of(s)]
    aws_ids = dict.fromkeys(i for s in secrets for i in _aws_ids(s, environment, inventory))
    for secret_id in aws_ids:
        grants += wiring.aws(environment).secret_readers(secret_id)
    return grants


@runbook_step("4. Who can read it (RBAC and IAM)")
def list_readers(secret: str, environment: str, inventory: str) -> list[str]:
    """Subjects allowed to read the secret, each judged against the inventory's policy."""
    allowed = inventory_at(inventory).allowed_groups(environment)
    findings = [judge(g, allowed) for g in readers(secret, environment, inventory)]
    return [f"{f.verdict}: {f.subject} via {f.via}" for f in findings] or ["nobody"]


@task(name="find_secret_readers", task_run_name="Who can read secrets ({environment})",
      retries=RETRIES, retry_condition_fn=transient_only, persist_result=False,
      cache_policy=NO_CACHE)
def find_secret_readers(environment: str, inventory: str) -> list[Finding]:
    """Every grant to read secrets in the environment, judged against the policy."""
    allowed = inventory_at(inventory).allowed_groups(environment)
    return [judge(g, allowed) for g in readers(None, environment, inventory)]


TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


@runbook_step("Check the emergency credentials (Secret names only)", retries=2)
def check_emergency_access(environment: str, inventory: str) -> list[str]:
    """``kubectl --context emergency-admin get secrets -n NS``: the server-side table that
    kubectl prints carries names, never data. Fails when the emergency identity cannot list."""
    namespace = inventory_at(inventory).namespace(environment)
    if namespace is None:
        return [f"{environment} keeps its secrets in local files: nothing to check"]
    cluster = wiring_for(inventory).cluster(emergency=True)
    table = cluster.call("list secrets (names)", namespace, cluster.core.list_namespaced_secret,
                         namespace, _headers={"Accept": TABLE_ACCEPT})
    names = sorted(str(row["cells"][0]) for row in table.get("rows") or [])
    return [f"emergency identity lists {len(names)} Secret(s) in {namespace}: "
            f"{', '.join(names)}"]
