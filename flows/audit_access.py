"""Runbook: Access Control / Audit Access (``kubectl get rolebindings``, ``aws iam get-role``).

For every environment: the RoleBindings and ClusterRoleBindings that grant get/list/watch on
Secrets in its namespace, resolved to users, groups and service accounts, and the IAM roles
that can read its AWS secrets with the principals their trust policies let in. Each is judged
against the inventory's policy (production: devops only; staging: dev team; development: all
developers) and shown in a table artifact; the run fails when the policy is broken.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import acreate_table_artifact

from flows.common import inventory_path
from secretops.errors import SecretopsError
from tasks.audit import Finding, find_secret_readers
from tasks.common import inventory_at, one_prefect_client


class PolicyBroken(SecretopsError):
    """Someone outside the policy can read secrets."""


@flow(name="audit-access", flow_run_name="audit-access", log_prints=False)
async def audit_access(inventory: str | None = None) -> str:
    """Audit who can read the secrets of every environment; see the module doc."""
    with one_prefect_client():
        path = inventory_path(inventory)
        environments = [env.value for env in inventory_at(path).environment_names()]
        futures = [find_secret_readers.submit(env, path) for env in environments]
        findings: list[Finding] = [f for future in futures for f in future.result()]
        await acreate_table_artifact(
            table=[{"environment": f.environment, "subject": f.subject, "via": f.via,
                    "verdict": f.verdict} for f in findings],
            key="access-audit",
            description="Who can read secrets, judged against the inventory's access policy",
        )
        broken = [f for f in findings if f.violation]
        if broken:
            raise PolicyBroken("the access policy is broken: " + "; ".join(
                f"{f.environment}: {f.subject} via {f.via}" for f in broken))
        return f"{len(findings)} grant(s) in {len(environments)} environment(s); policy respected"
