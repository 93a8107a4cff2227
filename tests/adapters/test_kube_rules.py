"""kubectl's rollout-status rules, label selectors, RBAC rule matching and audit-log reading,
on literal objects (the API-server behaviour is covered against the sandbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secretops.adapters.kube_access import _secret_rule, audit_reads
from secretops.adapters.kube_rollout import label_selector, rollout_state


def _deployment(generation: int = 2, **status: Any) -> dict[str, Any]:
    base = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    return {
        "metadata": {"name": "backend", "generation": generation},
        "spec": {"replicas": 3},
        "status": base | status,
    }


def test_rollout_rules_in_kubectl_order() -> None:
    assert rollout_state(_deployment()).done
    assert rollout_state(_deployment()).message == 'deployment "backend" successfully rolled out'
    unobserved = rollout_state(_deployment(generation=3))
    assert not unobserved.done and "spec update to be observed" in unobserved.message
    deadline = rollout_state(
        _deployment(
            updatedReplicas=1,
            conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
        )
    )
    assert deadline.deadline_exceeded and "exceeded its progress deadline" in deadline.message
    assert "1 out of 3 new replicas" in rollout_state(_deployment(updatedReplicas=1)).message
    old = rollout_state(_deployment(replicas=4))
    assert "1 old replicas are pending termination" in old.message
    unavailable = rollout_state(_deployment(availableReplicas=2))
    assert "2 of 3 updated replicas are available" in unavailable.message


def test_label_selector_string() -> None:
    selector = {
        "matchLabels": {"app": "backend"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["api", "web"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(selector) == "app=backend,tier in (api,web),!canary"


def test_secret_rules() -> None:
    assert _secret_rule({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}) == (
        ("get",),
        (),
    )
    assert _secret_rule({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}) == (
        ("get", "list", "watch"),
        (),
    )
    named = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["x"]}
    assert _secret_rule(named) == (("get",), ("x",))
    assert _secret_rule({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}) is None
    assert _secret_rule({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}) is None
    assert _secret_rule({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}) is None


def _audit(verb: str, name: str | None, stamp: str, user: str, **extra: Any) -> str:
    ref = {"resource": "secrets", "namespace": "intelliprompt", "apiVersion": "v1"}
    if name:
        ref["name"] = name
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": user, "groups": ["developers"]},
        "sourceIPs": ["127.0.0.1"],
        "objectRef": ref,
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
    }
    return json.dumps(event | extra)


def test_audit_reads(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    lines = [
        _audit("get", "api-keys", "2026-01-01T10:00:00.000000Z", "alice"),
        _audit("get", "api-keys", "2026-01-02T10:00:00.000000Z", "bob"),
        _audit("get", "api-keys", "2026-01-02T10:00:00.000000Z", "bob", stage="RequestReceived"),
        _audit("list", None, "2026-01-02T11:00:00.000000Z", "carol"),
        _audit("get", "db-credentials", "2026-01-02T12:00:00.000000Z", "dave"),
        _audit("patch", "api-keys", "2026-01-02T12:00:00.000000Z", "erin"),
        "not json",
    ]
    log.write_text("\n".join(lines) + "\n")
    since = datetime(2026, 1, 2, tzinfo=UTC)
    events = audit_reads(str(log), "intelliprompt", "api-keys", since)
    assert [(e.actor, e.action) for e in events] == [("bob", "get"), ("carol", "list")]
    assert events[0].source == "kubernetes-audit"
    assert "groups=developers" in events[0].detail
