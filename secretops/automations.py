"""The automations ``secretops setup`` creates on the Prefect server.

- ``secretops: run failed or crashed``: a run of a runbook flow that ends Failed or Crashed
  sends a notification through the webhook block (Slack-compatible JSON ``{"text": ...}``).
  The text names the run, its state and message (never a value: the flows' messages hold
  none) and links to the run in the UI.
- ``secretops: leak reported``: the event ``secretops.leak.reported`` runs the leak flow's
  deployment with the secret and environments the event names (see :data:`LEAK_EVENT`).
- ``secretops: leak alert``: the event ``secretops.leak.alerted``, which the alert receiver
  (``secretops alerts serve``) emits for a detector's finding of a live value, runs the same
  deployment for the secret, the environments that hold the value and the value's
  fingerprint. One run per leaked value: the trigger fires on the first event of a value and
  then ignores that value's events for :data:`ALERT_WINDOW` (the receiver itself joins later
  alerts to the running response).
- ``secretops: crash zombie runs``: Prefect's zombie-flow automation (``docs.prefect.io``,
  "detect zombie flows"): after a heartbeat, a run that sends neither another heartbeat nor a
  final state within three heartbeat intervals is marked Crashed, which frees its deployment
  slot and lets ``secretops unlock`` free its secret's lock. ``Paused`` and ``Suspended`` are
  in the expected list: a run waiting for a person in the UI is not a zombie.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from uuid import UUID

RUNBOOK_FLOWS = ("rotate-api-key", "rotate-db-password", "respond-to-leak", "audit-access",
                 "break-glass")
LEAK_FLOW = "respond-to-leak"

# The event an incident responder (or a scanner) emits to start the leak response
# (flows.respond_to_leak.leak_event builds it):
#   emit_event(event="secretops.leak.reported",
#              resource={"prefect.resource.id": "secretops.secret.openai"},
#              payload={"secret": "openai", "environments": ["production"] or null,
#                       "exposed_since": "<ISO 8601>" or null, "reason": "...", "drill": false})
LEAK_EVENT = "secretops.leak.reported"

ALERT_EVENT = "secretops.leak.alerted"
ALERT_FINGERPRINT_LABEL = "secretops.leak.fingerprint"
ALERT_WINDOW = timedelta(minutes=30)

HEARTBEAT_SECONDS = 30
ZOMBIE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
HEARTBEAT_SETTING = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def use_heartbeats() -> None:
    """Flow runs this process starts send a heartbeat every ``HEARTBEAT_SECONDS``, as the work
    pools' runs do, unless the operator chose otherwise. Prefect's default (180 s) is longer
    than the zombie automation's window: a run from the command line longer than that would
    be marked Crashed while it works. Call before Prefect is imported."""
    os.environ.setdefault(HEARTBEAT_SETTING, str(HEARTBEAT_SECONDS))

FAILED = "secretops: run failed or crashed"
LEAK = "secretops: leak reported"
ALERT = "secretops: leak alert"
ZOMBIE = "secretops: crash zombie runs"

NOTIFY_SUBJECT = "secretops: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}"
NOTIFY_BODY = (
    "{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n"
    "Parameters: {{ flow_run.parameters }}\n"
    "Run: {{ flow_run|ui_url }}\n"
    "A failed rotation has rolled back (see its report artifact); a crashed one is resumed by "
    "rerunning it after `secretops unlock SECRET`."
)


def _jinja(template: str) -> dict[str, str]:
    return {"__prefect_kind": "jinja", "template": template}


def _json(template: str) -> dict[str, Any]:
    """A template rendered to JSON text and parsed: the parameter gets the payload's list,
    null or boolean, not its text (Prefect renders a plain ``jinja`` parameter to a string)."""
    return {"__prefect_kind": "json", "value": _jinja(template)}


def failed_run_automation(notify_block: UUID) -> Any:
    """Failed or Crashed runs of the runbook flows -> a webhook notification."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=FAILED,
        description="A runbook flow run ended Failed or Crashed: tell the team's channel.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification({
                "prefect.resource.role": "flow",
                "prefect.resource.name": list(RUNBOOK_FLOWS),
            }),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=notify_block, subject=NOTIFY_SUBJECT,
                                  body=NOTIFY_BODY)],
    )


def leak_automation(deployment: UUID) -> Any:
    """``secretops.leak.reported`` -> a run of the leak flow's deployment."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=LEAK,
        description="A leak was reported: revoke first, then rotate (runbook: If a Secret is "
        "Leaked).",
        trigger=EventTrigger(
            expect={LEAK_EVENT},
            match=ResourceSpecification({"prefect.resource.id": "secretops.secret.*"}),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[RunDeployment(
            source="selected",
            deployment_id=deployment,
            parameters={
                "secret": _jinja("{{ event.payload.secret }}"),
                "environments": _json("{{ event.payload.environments | default(none) | tojson }}"),
                "exposed_since": _json(
                    "{{ event.payload.exposed_since | default(none) | tojson }}"),
                "reason": _jinja("{{ event.payload.reason | default('leak reported') }}"),
                "drill": _json("{{ event.payload.drill | default(false) | tojson }}"),
                "reported_at": _jinja("{{ event.occurred }}"),
            },
        )],
    )


def alert_automation(deployment: UUID) -> Any:
    """``secretops.leak.alerted`` -> one run of the leak flow's deployment per leaked value."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ALERT,
        description="A detector found a live secret value: revoke it, then replace it "
        "(runbook: If a Secret is Leaked). One run per value.",
        trigger=EventTrigger(
            expect={ALERT_EVENT},
            match=ResourceSpecification({"prefect.resource.id": "secretops.secret.*"}),
            for_each={ALERT_FINGERPRINT_LABEL},
            posture=Posture.Reactive,
            threshold=1,
            within=ALERT_WINDOW,
        ),
        actions=[RunDeployment(
            source="selected",
            deployment_id=deployment,
            parameters={
                "secret": _jinja("{{ event.payload.secret }}"),
                "environments": _json("{{ event.payload.environments | tojson }}"),
                "exposed_since": _json(
                    "{{ event.payload.exposed_since | default(none) | tojson }}"),
                "reason": _jinja("{{ event.payload.reason | default('leak alert') }}"),
                "drill": _json("{{ event.payload.drill | default(false) | tojson }}"),
                "reported_at": _jinja("{{ event.occurred }}"),
                "leaked_fingerprint": _jinja("{{ event.payload.fingerprint }}"),
                "alert": _json("{{ event.payload.alert | tojson }}"),
                "revoked_before": _json(
                    "{{ event.payload.revoked_before | default(none) | tojson }}"),
                "revoked_before_at": _json(
                    "{{ event.payload.revoked_before_at | default(none) | tojson }}"),
            },
        )],
    )


def zombie_automation() -> Any:
    """Prefect's recommended zombie-flow automation, with waiting runs excepted."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE,
        description="A run that stopped sending heartbeats (its machine died) is marked "
        "Crashed; paused and suspended runs wait for a person and are left alone.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.Paused",
                "prefect.flow-run.Suspended",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_AFTER,
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message="Flow run marked as crashed: it stopped sending heartbeats.",
        )],
    )


def ensure_automation(wanted: Any) -> str:
    """Create ``wanted`` (an ``AutomationCore``), or update the one of the same name when it
    differs; returns what was done, in words."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        for extra in existing[1:]:
            client.delete_automation(extra.id)
        if not existing:
            client.create_automation(wanted)
            return f"created automation {wanted.name!r}"
        current = existing[0]
        fields = ("description", "enabled", "trigger", "actions")
        same = all(
            _plain(getattr(current, name)) == _plain(getattr(wanted, name)) for name in fields
        )
        if same:
            return f"automation {wanted.name!r} is up to date"
        client.update_automation(current.id, wanted)
        return f"updated automation {wanted.name!r}"


def _plain(value: Any) -> Any:
    """``value`` as plain data to compare. Python mode keeps the trigger's sets as sets: their
    JSON lists follow iteration order, which differs between the server's copy and ours."""
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="python", exclude={"id"})
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
