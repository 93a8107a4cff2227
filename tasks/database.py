"""Runbook steps at PostgreSQL: create the new password, update it in the database, verify a
fresh login, invalidate the old one.

Two strategies. *single*: the application's role gets a new password (new connections made
with the old one fail until the restart ends). *alternating*: two login roles, ``<role>_a`` and
``<role>_b``, members of the owner role; the idle one gets the new password and the Secret
switches user and password together, so every connection works at every moment.
"""

from __future__ import annotations

from datetime import datetime

from secretops.errors import SecretopsError, VerificationFailed
from secretops.models import Credential, DbStrategy, Stage
from secretops.passwords import generate_password
from secretops.ports import SecretStore
from tasks.common import inventory_at, runbook_step, wiring_for


def login_roles(owner: str) -> tuple[str, str]:
    return f"{owner}_a", f"{owner}_b"


def _current(stores: list[SecretStore], stage: Stage) -> Credential | None:
    for store in stores:
        credential = store.read(stage)
        if credential is not None:
            return credential
    return None


def next_user(owner: str, strategy: DbStrategy, current_user: str | None) -> str:
    """The role the new password is for: the owner (single) or the idle login role."""
    if strategy is DbStrategy.single:
        return owner
    first, second = login_roles(owner)
    return second if current_user == first else first


@runbook_step("Create new password")
def create_new_password(secret: str, environment: str, inventory: str, strategy: str) -> list[str]:
    """Generate a password per the inventory's policy and store it, with the user it is for,
    as PENDING in every store. A pending one already staged is reused."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    pending = _current(stores, Stage.pending)
    if pending is None:
        owner = inv.role_for(secret, environment)
        current = _current(stores, Stage.current)
        user = next_user(owner, DbStrategy(strategy), current.username if current else None)
        pending = Credential(generate_password(inv.secret(secret).password_policy), user)
        evidence = [f"generated a new password for {user} ({pending.secret.fingerprint()})"]
    else:
        evidence = [f"reusing the pending password for {pending.username} "
                    f"({pending.secret.fingerprint()})"]
    for store in stores:
        if store.read(Stage.pending) is None:
            version = store.stage_pending(pending)
            evidence.append(f"{store.name}: pending version {version.version_id}")
    return evidence


@runbook_step("Update in database")
def update_in_database(secret: str, environment: str, inventory: str) -> list[str]:
    """``ALTER ROLE ... PASSWORD`` with a SCRAM-SHA-256 verifier computed here, so the password
    never reaches the server. For the alternating strategy the idle login role is created
    first (member of the owner role). Skipped when the pending password already works."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    database = wiring.database(environment)
    pending = _current(wiring.stores(secret, environment), Stage.pending)
    if pending is None:
        raise SecretopsError(f"no pending password for {secret} in {environment}")
    owner = inv.role_for(secret, environment)
    user = pending.username or owner
    evidence = []
    if user != owner and database.ensure_login_role(user, owner):
        evidence.append(f"created login role {user} (member of {owner})")
    if database.can_login(user, pending.secret):
        return [*evidence, f"{user} already logs in with the new password"]
    database.set_password(user, pending.secret)
    if not database.can_login(user, pending.secret):
        raise VerificationFailed(f"{user} cannot log in with the new password")
    return [*evidence, f"{user} has the new password (SCRAM-SHA-256 verifier)"]


@runbook_step("Verify the new login")
def verify_new_login(secret: str, environment: str, inventory: str) -> list[str]:
    """A fresh login with the current credentials works and can use the application's tables."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    current = _current(wiring.stores(secret, environment), Stage.current)
    if current is None:
        raise VerificationFailed(f"no current credentials for {secret} in {environment}")
    user = current.username or inv.role_for(secret, environment)
    if not wiring.database(environment).can_use_application(user, current.secret):
        raise VerificationFailed(f"{user} cannot log in and use the application's tables with "
                                 "the current password")
    return [f"{user} logs in with the current password and reads the application's tables"]


@runbook_step("Invalidate old password")
def invalidate_old_password(
    secret: str,
    environment: str,
    inventory: str,
    terminate_old_sessions: bool,
    password_set_at: datetime | None = None,
) -> list[str]:
    """Finish: the previous credentials stop working (alternating: the previous user's password
    is removed; single: it was replaced in step 2), optionally the sessions opened with them
    are ended (alternating: every session of the previous user; single: the role's sessions
    that began before ``password_set_at``), and the pending marker is cleared."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    database = wiring.database(environment)
    owner = inv.role_for(secret, environment)
    current, previous = _current(stores, Stage.current), _current(stores, Stage.previous)
    evidence = []
    if previous is not None and current is not None and previous.secret != current.secret:
        old_user, new_user = previous.username or owner, current.username or owner
        if old_user != new_user:
            database.disable_password(old_user)
            evidence.append(f"{old_user}: password removed")
        if database.can_login(old_user, previous.secret):
            raise VerificationFailed(f"{old_user} still logs in with the old password")
        evidence.append(f"{old_user} refuses the old password")
        if terminate_old_sessions:
            if old_user != new_user:
                ended = database.terminate_sessions(old_user)
            elif password_set_at is not None:
                ended = database.terminate_sessions(old_user, started_before=password_set_at)
            else:
                ended = 0
            evidence.append(f"ended {ended} session(s) of {old_user}")
    for store in stores:
        store.clear_pending()
    return evidence or ["no previous credentials"]


@runbook_step("Roll back: put the old password back in the database")
def revert_in_database(secret: str, environment: str, inventory: str) -> list[str]:
    """Single strategy: the role gets the previous (now current again) password back.
    Alternating: the idle role's new password is removed. Then pending is cleared."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    stores = wiring.stores(secret, environment)
    database = wiring.database(environment)
    owner = inv.role_for(secret, environment)
    current, pending = _current(stores, Stage.current), _current(stores, Stage.pending)
    evidence = []
    if current is not None:
        user = current.username or owner
        if not database.can_login(user, current.secret):
            database.set_password(user, current.secret)
            evidence.append(f"{user} has its previous password again")
    if pending is not None and current is not None:
        idle, user = pending.username or owner, current.username or owner
        if idle != user and database.can_login(idle, pending.secret):
            database.disable_password(idle)
            evidence.append(f"{idle}: the new password removed")
        elif idle != user:
            evidence.append(f"{idle}: the new password was never set")
    for store in stores:
        store.clear_pending()
    return evidence or ["nothing to put back"]
