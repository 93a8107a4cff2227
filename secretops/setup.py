"""``secretops setup``: everything a Prefect server needs before the deployments run.

Idempotent; each step says what it created, changed or left alone, and never prints a value:

1. Work pools: ``secretops-process`` (one machine: flows run in the project folder) and
   ``secretops-kubernetes`` (production: the worker image, service account and namespace are
   the pool's job variables; see docs/kubernetes.md). The only environment either gives a
   run is the inventory's path and the heartbeat interval.
2. One global concurrency limit per secret (:func:`ensure_concurrency_limits`).
3. The inventory's ``block:`` credentials as Prefect ``Secret`` blocks, each from the
   environment variable named after the block (:func:`env_var_for`): ``openai-admin-key``
   from ``OPENAI_ADMIN_KEY``. A block that exists is kept when its variable is not set.
4. The notification block ``secretops-notify`` (a webhook with a Slack-compatible body; the
   URL sits in its secret field), from the inventory credential ``notify-webhook``.
5. The automations of :mod:`secretops.automations`; the leak and leak-alert ones once the
   leak flow's deployment exists (run setup again after ``prefect deploy --all``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from secretops import automations
from secretops.credentials import resolve_credential
from secretops.errors import SecretopsError
from secretops.inventory import Inventory
from secretops.prefect_setup import ensure_concurrency_limits

PROCESS_POOL = "secretops-process"
KUBERNETES_POOL = "secretops-kubernetes"
NOTIFY_CREDENTIAL = "notify-webhook"
NOTIFY_BLOCK = "secretops-notify"
IMAGE_INVENTORY = "/opt/secretops/inventory.yaml"


class SetupError(SecretopsError):
    """The Prefect server could not be set up."""


@dataclass(frozen=True)
class KubernetesJob:
    """Where production runs start on Kubernetes: the job variables of the Kubernetes pool."""

    image: str = "ghcr.io/intelliprompt/secretops:0.1.0"
    service_account: str = "secretops"
    namespace: str = "secretops"


@dataclass
class SetupReport:
    """What setup did, line by line, and what an operator still has to do."""

    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.done, *(f"to do: {line}" for line in self.todo)]


def env_var_for(block: str) -> str:
    """The environment variable setup reads a block's value from: ``openai-admin-key`` ->
    ``OPENAI_ADMIN_KEY``."""
    return block.upper().replace("-", "_")


def _base_job_template(pool_type: str) -> dict[str, Any]:
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    template = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type(pool_type))
    if not template:
        raise SetupError(f"no worker of type {pool_type!r} is installed (for 'kubernetes': "
                         "pip install prefect-kubernetes)")
    return dict(template)


def _with_defaults(template: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    properties = template["variables"]["properties"]
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template


def pool_templates(project_dir: Path, inventory_path: Path,
                   kubernetes: KubernetesJob) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each work pool's type and base job template (defaults filled in)."""
    heartbeat = str(automations.HEARTBEAT_SECONDS)
    process = _with_defaults(_base_job_template("process"), {
        "working_dir": str(project_dir),
        "env": {"SECRETOPS_INVENTORY": str(inventory_path),
                automations.HEARTBEAT_SETTING: heartbeat},
    })
    cluster = _with_defaults(_base_job_template("kubernetes"), {
        "image": kubernetes.image,
        "service_account_name": kubernetes.service_account,
        "namespace": kubernetes.namespace,
        "env": {"SECRETOPS_INVENTORY": IMAGE_INVENTORY,
                automations.HEARTBEAT_SETTING: heartbeat},
    })
    return {PROCESS_POOL: ("process", process), KUBERNETES_POOL: ("kubernetes", cluster)}


def ensure_work_pools(templates: Mapping[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """Create each pool, or bring its base job template up to date."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    done = []
    with get_client(sync_client=True) as client:
        for name, (pool_type, template) in templates.items():
            try:
                pool = client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type=pool_type, base_job_template=template,
                    description="secretops: the runbook's flows run here",
                ))
                done.append(f"created work pool {name} ({pool_type})")
                continue
            if pool.type != pool_type:
                raise SetupError(f"work pool {name} exists with type {pool.type!r}, not "
                                 f"{pool_type!r}: delete it or rename it")
            if pool.base_job_template != template:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
                done.append(f"updated work pool {name} (job variables)")
            else:
                done.append(f"work pool {name} is up to date")
    return done


def ensure_credential_blocks(inventory: Inventory, environ: Mapping[str, str],
                             report: SetupReport) -> None:
    """A Prefect Secret block for each ``block:`` credential, from its environment variable."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    for name, ref in inventory.credentials.items():
        if ref.block is None:
            continue
        variable = env_var_for(ref.block)
        value = environ.get(variable, "")
        try:
            current: Any = Secret.load(ref.block, _sync=True)  # type: ignore[call-arg]
        except (ValueError, ObjectNotFound):
            current = None
        if not value:
            if current is None:
                report.todo.append(f"block {ref.block} (credential {name}) is missing: set "
                                   f"{variable} and run setup again")
            else:
                report.done.append(f"block {ref.block} kept ({variable} is not set)")
            continue
        if current is not None and current.get() == value:
            report.done.append(f"block {ref.block} is up to date (from {variable})")
            continue
        Secret(value=value).save(ref.block, overwrite=True, _sync=True)  # type: ignore[call-arg]
        verb = "updated" if current is not None else "created"
        report.done.append(f"{verb} Secret block {ref.block} from {variable}")


def ensure_notify_block(inventory: Inventory, report: SetupReport) -> UUID | None:
    """The webhook block the failed-run automation sends through; ``None`` when the inventory
    names no ``notify-webhook`` credential or it has no value yet."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.exceptions import ObjectNotFound

    if NOTIFY_CREDENTIAL not in inventory.credentials:
        report.todo.append(f"the inventory names no {NOTIFY_CREDENTIAL!r} credential: failed "
                           "runs notify nobody")
        return None
    try:
        url = resolve_credential(inventory, NOTIFY_CREDENTIAL)
    except SecretopsError as exc:
        report.todo.append(f"no notification webhook yet ({exc})")
        return None
    wanted = CustomWebhookNotificationBlock(
        name="secretops",
        url="{{webhook_url}}",
        method="POST",
        json_data={"text": "*{{subject}}*\n{{body}}"},
        secrets={"webhook_url": url.reveal()},
    )
    try:
        current: Any = CustomWebhookNotificationBlock.load(NOTIFY_BLOCK, _sync=True)  # type: ignore[call-arg]
    except (ValueError, ObjectNotFound):
        current = None
    if current is not None and _webhook_fields(current) == _webhook_fields(wanted):
        report.done.append(f"notification block {NOTIFY_BLOCK} is up to date")
        return UUID(str(current._block_document_id))
    block_id = wanted.save(NOTIFY_BLOCK, overwrite=True, _sync=True)  # type: ignore[call-arg]
    report.done.append(f"{'updated' if current else 'created'} notification block "
                       f"{NOTIFY_BLOCK} (webhook from credential {NOTIFY_CREDENTIAL})")
    return UUID(str(block_id))


def _webhook_fields(block: Any) -> tuple[Any, ...]:
    secrets = block.secrets.get_secret_value()
    return (block.url, block.method, block.json_data, secrets)


def _leak_deployment() -> UUID | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        found = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[automations.LEAK_FLOW])),
            deployment_filter=DeploymentFilter(),
        )
    return found[0].id if found else None


def run_setup(inventory: Inventory, inventory_path: Path, project_dir: Path,
              kubernetes: KubernetesJob | None = None,
              environ: Mapping[str, str] | None = None) -> SetupReport:
    """Every step of the module doc, against the Prefect API of the current settings."""
    report = SetupReport()
    templates = pool_templates(project_dir.resolve(), inventory_path.resolve(),
                               kubernetes or KubernetesJob())
    report.done += ensure_work_pools(templates)
    limits = ensure_concurrency_limits(inventory)
    report.done += limits or ["per-secret concurrency limits are up to date"]
    ensure_credential_blocks(inventory, os.environ if environ is None else environ, report)
    notify = ensure_notify_block(inventory, report)
    if notify is not None:
        report.done.append(automations.ensure_automation(
            automations.failed_run_automation(notify)))
    report.done.append(automations.ensure_automation(automations.zombie_automation()))
    leak = _leak_deployment()
    if leak is None:
        report.todo.append(f"no {automations.LEAK_FLOW} deployment yet: run `prefect deploy "
                           "--all`, then `secretops setup` again for the leak automation")
    else:
        report.done.append(automations.ensure_automation(automations.leak_automation(leak)))
        report.done.append(automations.ensure_automation(automations.alert_automation(leak)))
    return report
