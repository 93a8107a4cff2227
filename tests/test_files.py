"""Development stores on disk: .env keys and Docker secret files, staged the AWS way.

Every test looks at the files afterwards: their exact bytes, their modes, and that no temp
file is left behind."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from secretops.adapters.dotenv import DotenvFile, url_with_credentials
from secretops.adapters.files import DockerSecretStore, DotenvStore, atomic_write
from secretops.errors import PendingConflict
from secretops.models import Credential, SecretValue, Stage

OLD = "old-password-0123456789abcdef"
NEW = "New-password-9876543210~fedcba"
OTHER = "Other-password-1111111111.2222"

ENV_TEXT = (
    "# IntelliPrompt, local settings\n"
    "\n"
    "export OPENAI_API_KEY='sk-old-openai-key-000000'  # from the provider\n"
    "DB_HOST = localhost\n"
    "DB_USER=intelliprompt_dev\n"
    f'DB_PASSWORD="{OLD}"\n'
    f"DATABASE_URL=postgresql://intelliprompt_dev:{OLD}@localhost:5432/intelliprompt_dev?sslmode=disable\n"
    "this line is not an assignment and stays as it is\n"
    "   # indented comment\r\n"
    "EMPTY=\n"
    "TRAILING=value   # a comment\n"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(path: Path) -> str:
    return path.read_bytes().decode()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def cred(value: str, username: str | None = None) -> Credential:
    return Credential(SecretValue(value), username)


@pytest.fixture()
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(ENV_TEXT, newline="")
    return path


def test_dotenv_parse_keeps_every_byte() -> None:
    parsed = DotenvFile(ENV_TEXT)
    assert parsed.render() == ENV_TEXT
    assert parsed.get("OPENAI_API_KEY") == "sk-old-openai-key-000000"
    assert parsed.get("DB_HOST") == "localhost"
    assert parsed.get("DB_PASSWORD") == OLD
    assert parsed.get("EMPTY") == ""
    assert parsed.get("TRAILING") == "value"
    assert DotenvFile('A="x\\"y\\\\z"\n').get("A") == 'x"y\\z'


def test_promote_changes_only_the_managed_lines(env_file: Path) -> None:
    store = DotenvStore(env_file, "DB_PASSWORD", url_keys=["DATABASE_URL"])
    assert store.read() == cred(OLD)
    store.stage_pending(cred(NEW))
    pending = env_file.with_name(".env.pending")
    assert pending.read_text() == f"DB_PASSWORD={NEW}\n"
    assert mode(pending) == 0o600
    assert raw(env_file) == ENV_TEXT

    version = store.promote_pending()
    assert version.stage is Stage.current
    assert version.fingerprint == SecretValue(NEW).fingerprint()
    expected = ENV_TEXT.replace(f'DB_PASSWORD="{OLD}"', f'DB_PASSWORD="{NEW}"').replace(
        f"intelliprompt_dev:{OLD}@", f"intelliprompt_dev:{NEW}@"
    )
    assert raw(env_file) == expected
    assert mode(env_file) == 0o600
    assert store.read(Stage.pending) == cred(NEW), "pending stays until the rotation finishes"
    previous = env_file.with_name(".env.previous")
    assert previous.read_text() == f"DB_PASSWORD={OLD}\n"
    assert mode(previous) == 0o600
    assert store.read(Stage.previous) == cred(OLD)
    store.clear_pending()
    assert not pending.exists()
    assert store.read(Stage.pending) is None
    assert leftovers(env_file.parent) == []

    assert store.promote_pending() is None, "nothing pending: nothing promoted"
    assert raw(env_file) == expected


def test_username_key_and_url_user(env_file: Path) -> None:
    store = DotenvStore(env_file, "DB_PASSWORD", url_keys=["DATABASE_URL"], username_key="DB_USER")
    assert store.read() == cred(OLD, "intelliprompt_dev")
    store.stage_pending(cred(NEW, "intelliprompt_dev_b"))
    store.promote_pending()
    parsed = DotenvFile(env_file.read_text())
    assert parsed.get("DB_USER") == "intelliprompt_dev_b"
    assert parsed.get("DATABASE_URL") == (
        f"postgresql://intelliprompt_dev_b:{NEW}@localhost:5432/intelliprompt_dev?sslmode=disable"
    )
    assert store.read(Stage.previous) == cred(OLD, "intelliprompt_dev")


def test_url_with_credentials_quotes_and_keeps_the_rest() -> None:
    url = "postgresql://u:${DB_PASSWORD}@db:5432/app?x=1#f"
    assert (
        url_with_credentials(url, "p@ss/w:rd") == "postgresql://u:p%40ss%2Fw%3Ard@db:5432/app?x=1#f"
    )
    assert url_with_credentials("postgresql://db/app", "pw", "me") == "postgresql://me:pw@db/app"
    with pytest.raises(ValueError):
        url_with_credentials("not a url", "pw")


def test_stage_pending_same_is_noop_different_conflicts(env_file: Path) -> None:
    store = DotenvStore(env_file, "DB_PASSWORD")
    first = store.stage_pending(cred(NEW))
    assert store.stage_pending(cred(NEW)) == first
    with pytest.raises(PendingConflict) as caught:
        store.stage_pending(cred(OTHER))
    assert OTHER not in str(caught.value) and NEW not in str(caught.value)
    assert store.read(Stage.pending) == cred(NEW)


def test_stores_of_one_file_share_pending_without_losing_keys(env_file: Path) -> None:
    db = DotenvStore(env_file, "DB_PASSWORD")
    openai = DotenvStore(env_file, "OPENAI_API_KEY")
    db.stage_pending(cred(NEW))
    openai.stage_pending(cred("sk-new-openai-key-111111"))
    pending = env_file.with_name(".env.pending")
    assert pending.read_text() == f"DB_PASSWORD={NEW}\nOPENAI_API_KEY=sk-new-openai-key-111111\n"
    db.clear_pending()
    assert pending.read_text() == "OPENAI_API_KEY=sk-new-openai-key-111111\n"
    openai.promote_pending()
    openai.clear_pending()
    assert not pending.exists()
    assert "export OPENAI_API_KEY='sk-new-openai-key-111111'  # from the provider\n" in (
        env_file.read_text()
    )
    assert db.read() == cred(OLD)


def test_concurrent_rotations_of_one_file(env_file: Path) -> None:
    stores = [DotenvStore(env_file, f"KEY_{i}") for i in range(8)]
    errors: list[BaseException] = []

    def rotate(store: DotenvStore, value: str) -> None:
        try:
            for round_ in range(5):
                store.stage_pending(cred(f"{value}-{round_}-padding"))
                store.promote_pending()
                store.clear_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rotate, args=(s, f"value{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    parsed = DotenvFile(env_file.read_text())
    assert [parsed.get(f"KEY_{i}") for i in range(8)] == [f"value{i}-4-padding" for i in range(8)]
    assert DotenvFile(env_file.with_name(".env.previous").read_text()).get("KEY_3") == (
        "value3-3-padding"
    )
    assert not env_file.with_name(".env.pending").exists()
    assert leftovers(env_file.parent) == []


def test_rerun_after_crash_before_promotion(env_file: Path) -> None:
    """The run died after staging (only .env.pending exists): the rerun promotes it."""
    env_file.with_name(".env.pending").write_text(f"DB_PASSWORD={NEW}\n")
    store = DotenvStore(env_file, "DB_PASSWORD", url_keys=["DATABASE_URL"])
    with pytest.raises(PendingConflict):
        store.stage_pending(cred(OTHER))
    store.stage_pending(cred(NEW))
    store.promote_pending()
    assert store.read() == cred(NEW)
    assert store.read(Stage.previous) == cred(OLD)
    assert f":{NEW}@" in (DotenvFile(env_file.read_text()).get("DATABASE_URL") or "")


def test_rerun_after_crash_between_current_and_finish(env_file: Path) -> None:
    """The run died after .env got the new value but before the rotation finished (pending
    still marks it): the rerun must not overwrite PREVIOUS with the new value."""
    store = DotenvStore(env_file, "DB_PASSWORD")
    env_file.with_name(".env.previous").write_text(f"DB_PASSWORD={OLD}\n")
    env_file.write_text(ENV_TEXT.replace(OLD, NEW))
    env_file.with_name(".env.pending").write_text(f"DB_PASSWORD={NEW}\n")
    store.promote_pending()
    assert store.read() == cred(NEW)
    assert store.read(Stage.previous) == cred(OLD)
    store.clear_pending()
    assert store.read(Stage.pending) is None


def test_restore_previous_swaps_and_is_idempotent(env_file: Path) -> None:
    store = DotenvStore(env_file, "DB_PASSWORD", url_keys=["DATABASE_URL"])
    store.stage_pending(cred(NEW))
    store.promote_pending()
    restored = store.restore_previous(cred(NEW))
    assert restored.fingerprint == SecretValue(OLD).fingerprint()
    assert raw(env_file) == ENV_TEXT
    assert store.read(Stage.previous) == cred(NEW)
    assert store.restore_previous(cred(NEW)) == restored
    assert raw(env_file) == ENV_TEXT


def test_missing_key_is_appended_and_nothing_to_promote(tmp_path: Path) -> None:
    path = tmp_path / "app" / ".env"
    store = DotenvStore(path, "OPENAI_API_KEY")
    assert store.read() is None and store.version() is None
    assert store.promote_pending() is None  # nothing to promote
    store.stage_pending(cred("sk-first-key-000000000000"))
    store.promote_pending()
    assert path.read_text() == "OPENAI_API_KEY=sk-first-key-000000000000\n"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert not path.with_name(".env.previous").exists()


def test_docker_secret_store(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "db_password.txt"
    store = DockerSecretStore(path)
    assert store.read() is None
    store.stage_pending(cred(OLD, "ignored_user"))
    store.promote_pending()
    store.clear_pending()
    assert path.read_bytes() == OLD.encode()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    path.write_text(OLD + "\n")
    assert store.read() == cred(OLD)

    store.stage_pending(cred(NEW))
    assert path.with_name("db_password.txt.pending").read_bytes() == NEW.encode()
    assert store.stage_pending(cred(NEW)).stage is Stage.pending
    with pytest.raises(PendingConflict):
        store.stage_pending(cred(OTHER))
    store.promote_pending()
    assert path.read_bytes() == NEW.encode()
    assert path.with_name("db_password.txt.previous").read_text() == OLD
    assert store.read(Stage.pending) == cred(NEW)
    store.clear_pending()
    assert not path.with_name("db_password.txt.pending").exists()
    assert store.version(Stage.previous) is not None

    store.restore_previous(cred(NEW))
    assert path.read_bytes() == OLD.encode()
    store.stage_pending(cred(OTHER))
    store.clear_pending()
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "db_password.txt",
        "db_password.txt.previous",
    ]


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "child").write_text("x")
    with pytest.raises(OSError):
        atomic_write(target, "value")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
    existing = tmp_path / "file"
    existing.write_text("old")
    existing.chmod(0o644)
    atomic_write(existing, "new")
    assert existing.read_text() == "new" and mode(existing) == 0o600
