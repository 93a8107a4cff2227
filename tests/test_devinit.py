"""`dev init`: .env and Docker secret files made from the shipped .env.example, checked on
disk: every example line kept, secrets generated and consistent, nothing overwritten without
force, modes 0600/0700, no temp files."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from secretops.adapters.dotenv import DotenvFile
from secretops.adapters.files import DockerSecretStore, DotenvStore
from secretops.devinit import init_dev, init_dev_from_inventory
from secretops.errors import SecretopsError
from secretops.inventory import load_inventory
from secretops.models import Credential, SecretValue
from secretops.passwords import PasswordPolicy, is_valid_password

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / ".env.example"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE, tmp_path / ".env.example")
    return tmp_path


def run(project: Path, force: bool = False) -> tuple[DotenvFile, str]:
    report = init_dev(
        project / ".env.example",
        project / ".env",
        project / "secrets",
        ["db_password"],
        force=force,
    )
    return DotenvFile((project / ".env").read_text()), str(report)


def test_first_run_creates_env_and_docker_secret(project: Path) -> None:
    env, report = run(project)
    example = DotenvFile(EXAMPLE.read_text())
    assert env.keys() == example.keys()
    text = (project / ".env").read_text()
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("#") or not line:
            assert line in text.splitlines()
    password = env.get("DB_PASSWORD") or ""
    assert is_valid_password(password, PasswordPolicy())
    assert env.get("DATABASE_URL") == (
        f"postgresql://intelliprompt_dev:{password}@localhost:5432/intelliprompt_dev"
    )
    assert is_valid_password(env.get("SESSION_SECRET") or "", PasswordPolicy())
    assert env.get("OPENAI_API_KEY") == "" and env.get("ANTHROPIC_API_KEY") == ""
    assert env.get("DB_HOST") == "localhost" and env.get("LOG_LEVEL") == "debug"

    secret_file = project / "secrets" / "db_password.txt"
    assert secret_file.read_bytes() == password.encode()
    assert mode(project / ".env") == 0o600
    assert mode(secret_file) == 0o600
    assert mode(project / "secrets") == 0o700
    assert sorted(p.name for p in project.iterdir()) == [".env", ".env.example", "secrets"]
    assert sorted(p.name for p in (project / "secrets").iterdir()) == ["db_password.txt"]

    assert "created: .env, DB_PASSWORD, SESSION_SECRET, DATABASE_URL, secrets/db_password.txt" in (
        report
    )
    assert "left empty: OPENAI_API_KEY, ANTHROPIC_API_KEY" in report
    assert "OPENAI_API_KEY: a provider API key" in report
    assert password not in report


def test_second_run_changes_nothing(project: Path) -> None:
    run(project)
    before = (project / ".env").read_bytes(), (project / "secrets" / "db_password.txt").read_bytes()
    _, report = run(project)
    after = (project / ".env").read_bytes(), (project / "secrets" / "db_password.txt").read_bytes()
    assert before == after
    assert "created" not in report
    assert "kept: DB_PASSWORD, SESSION_SECRET, secrets/db_password.txt" in report


def test_existing_values_are_kept_and_missing_entries_added(project: Path) -> None:
    (project / ".env").write_text(
        "# my own notes\nOPENAI_API_KEY=sk-mine-000000000000\nDB_PASSWORD=chosen-by-me-123\n"
    )
    env, report = run(project)
    text = (project / ".env").read_text()
    assert text.startswith(
        "# my own notes\nOPENAI_API_KEY=sk-mine-000000000000\nDB_PASSWORD=chosen-by-me-123\n"
    )
    assert env.get("DATABASE_URL") == (
        "postgresql://intelliprompt_dev:chosen-by-me-123@localhost:5432/intelliprompt_dev"
    )
    assert (project / "secrets" / "db_password.txt").read_text() == "chosen-by-me-123"
    assert env.get("DB_HOST") == "localhost"
    assert "kept: OPENAI_API_KEY, DB_PASSWORD" in report
    assert "left empty: ANTHROPIC_API_KEY" in report


def test_existing_docker_secret_fills_an_empty_env_entry(project: Path) -> None:
    (project / "secrets").mkdir(mode=0o700)
    (project / "secrets" / "db_password.txt").write_text("from-the-secret-file-42\n")
    env, report = run(project)
    assert env.get("DB_PASSWORD") == "from-the-secret-file-42"
    assert "from-the-secret-file-42" in (env.get("DATABASE_URL") or "")
    assert (project / "secrets" / "db_password.txt").read_text() == "from-the-secret-file-42\n"
    assert "DB_PASSWORD (from secrets/db_password.txt)" in report


def test_force_regenerates_secrets_but_keeps_api_keys(project: Path) -> None:
    first, _ = run(project)
    (project / ".env").write_text(
        (project / ".env").read_text().replace("OPENAI_API_KEY=", "OPENAI_API_KEY=sk-kept-123")
    )
    env, report = run(project, force=True)
    assert env.get("OPENAI_API_KEY") == "sk-kept-123"
    password = env.get("DB_PASSWORD") or ""
    assert password and password != first.get("DB_PASSWORD")
    assert f":{password}@" in (env.get("DATABASE_URL") or "")
    assert (project / "secrets" / "db_password.txt").read_text() == password
    assert "replaced (--force): DB_PASSWORD, SESSION_SECRET" in report
    assert "secrets/db_password.txt" in report.split("replaced (--force):")[1]


def test_mismatch_is_reported_not_fixed(project: Path) -> None:
    run(project)
    (project / "secrets" / "db_password.txt").write_text("something-else-000")
    _, report = run(project)
    assert (project / "secrets" / "db_password.txt").read_text() == "something-else-000"
    assert "secrets/db_password.txt differs from DB_PASSWORD in .env" in report


def test_missing_example_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretopsError, match=r"\.env\.example: not found"):
        init_dev(tmp_path / ".env.example", tmp_path / ".env", tmp_path / "secrets", [], False)
    assert list(tmp_path.iterdir()) == []


def test_from_inventory_then_rotate_with_the_stores(project: Path) -> None:
    """The shipped inventory's development stores work on what dev init made: a rotation of
    the database password keeps .env, DATABASE_URL and the Docker secret equal."""
    shutil.copy(ROOT / "inventory.yaml", project / "inventory.yaml")
    inv = load_inventory(project / "inventory.yaml")
    report = init_dev_from_inventory(inv)
    assert "secrets/db_password.txt" in report.created
    dotenv = DotenvStore(project / ".env", "DB_PASSWORD", url_keys=["DATABASE_URL"])
    docker = DockerSecretStore(project / "secrets" / "db_password.txt")
    assert dotenv.read() == docker.read()

    new = Credential(SecretValue("Rotated-password-000000000000000000.x"))
    for store in (dotenv, docker):
        store.stage_pending(new)
        store.promote_pending()
    env = DotenvFile((project / ".env").read_text())
    assert env.get("DB_PASSWORD") == new.secret.reveal()
    assert env.get("DATABASE_URL") == (
        f"postgresql://intelliprompt_dev:{new.secret.reveal()}@localhost:5432/intelliprompt_dev"
    )
    assert docker.read() == new
    rerun = init_dev_from_inventory(inv)
    assert rerun.created == [] and rerun.replaced == []
