"""Runbook: Secret Rotation / Rotate Database Password.

    1. Create new password        create_new_password (policy from the inventory)
    2. Update in database         update_in_database (SCRAM verifier computed here)
    3. Update secret              update_secret (+ sync_external_secret in production)
    4. Restart app                restart_pods (rollout restart + rollout status)
    then, beyond the runbook:     verify_logs, verify_new_login, invalidate_old_password

With the *alternating* strategy (the production default) the new password goes to the idle
login role and the Secret switches user and password together: no request fails at any
moment. With *single*, connections opened with the old password between steps 2 and 4 fail;
the report counts on it. Any failure before the old password is invalidated restores the
previous credentials everywhere and leaves the application healthy.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow

from flows.common import dry_run_plan, inventory_path, rotation_checked
from secretops.models import DbStrategy, Environment
from secretops.report import RunReport
from tasks.common import inventory_at, one_prefect_client
from tasks.rotation import PASSWORDS, Rotation, RotationFailed, rotate

__all__ = ["RotationFailed", "rotate_db_password"]

STEPS = ["1. Create new password", "2. Update in database", "3. Update secret",
         "4. Restart app", "Verify the logs and a fresh login", "Invalidate old password"]


@flow(name="rotate-db-password", flow_run_name="rotate-db-password-{environment}",
      log_prints=False)
async def rotate_db_password(
    environment: Environment,
    strategy: DbStrategy | None = None,
    terminate_old_sessions: bool = False,
    reason: str = "scheduled rotation",
    dry_run: bool = False,
    secret: str = "db-password",
    inventory: str | None = None,
) -> str:
    """Rotate the PostgreSQL password in one environment; see the module doc."""
    with one_prefect_client():
        path = inventory_path(inventory)
        env = Environment(environment).value
        inv = inventory_at(path)
        chosen = inv.check_strategy(
            secret, env, DbStrategy(strategy) if strategy else inv.strategy_for(secret, env)
        )
        report = RunReport(f"Rotate database password in {env}",
                           {"secret": secret, "environment": env, "strategy": chosen.value,
                            "reason": reason})

        def finish(done: Rotation) -> dict[str, object]:
            updated, restart = done.results["set"], done.results["propagate"]
            password_set_at = updated.started_at + timedelta(seconds=updated.seconds)
            if chosen is DbStrategy.single:
                window = (restart.started_at + timedelta(seconds=restart.seconds)
                          - password_set_at)
                report.notes.append(
                    "single-user strategy: new connections made with the old password were "
                    f"refused for {window.total_seconds():.1f} s (password change to end of "
                    "restart); requests that needed one failed")
            return {"terminate_old_sessions": terminate_old_sessions,
                    "password_set_at": password_set_at}

        key = f"rotate-{secret}-{env}"
        if dry_run:
            return await dry_run_plan(report, secret, env, path, STEPS, key)
        async with rotation_checked(report, secret, env, path, key, "rotated: the new "
                                    "credentials are current and verified, the old refused"):
            rotate(PASSWORDS, secret, env, path, report, create={"strategy": chosen.value},
                   finish=finish)
        return report.markdown()
