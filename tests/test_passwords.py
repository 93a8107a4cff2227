"""Generated passwords: policy honoured, every class present, and safe in URLs, DSNs, YAML,
shells and .env files."""

from __future__ import annotations

import shlex
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg.conninfo
import pytest
import yaml
from pydantic import ValidationError

from secretops.adapters.dotenv import DotenvFile
from secretops.models import SecretValue
from secretops.passwords import PasswordPolicy, generate_password, is_valid_password

SAMPLES = 2000
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """2,000 passwords made in a child process: every SecretValue registers with the
    process-wide redaction filter, and 2,000 test values would slow the rest of the session."""
    out = tmp_path_factory.mktemp("passwords") / "samples.txt"
    script = (
        "import sys\n"
        "from secretops.passwords import generate_password\n"
        "with open(sys.argv[1], 'w') as f:\n"
        f"    for _ in range({SAMPLES}):\n"
        "        f.write(generate_password().reveal() + '\\n')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, cwd=ROOT, timeout=120)
    return out.read_text().splitlines()


def test_every_sample_is_valid(samples: list[str]) -> None:
    policy = PasswordPolicy()
    assert all(is_valid_password(p, policy) for p in samples)
    assert all(len(p) == 40 for p in samples)
    assert all(p[0] in string.ascii_letters + string.digits for p in samples)
    assert all(set(p) <= set(string.ascii_letters + string.digits + "-_.~") for p in samples)
    assert len(set(samples)) == SAMPLES


def test_every_class_is_present(samples: list[str]) -> None:
    for password in samples:
        assert any(c.islower() for c in password)
        assert any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
        assert any(c in "-_.~" for c in password)


def test_every_symbol_and_position_is_used(samples: list[str]) -> None:
    used = set("".join(samples))
    assert set("-_.~") <= used
    assert used >= set(string.ascii_letters + string.digits)


def test_round_trips(samples: list[str]) -> None:
    for password in samples[:500]:
        url = f"postgresql://app:{password}@127.0.0.1:5432/app"
        assert urlsplit(url).password == password
        assert quote(password, safe="") == password
        assert unquote(password) == password
        assert yaml.safe_load(f"password: {password}") == {"password": password}
        assert yaml.safe_load(password) == password
        assert shlex.split(f"login --password {password}") == ["login", "--password", password]
        assert psycopg.conninfo.conninfo_to_dict(url)["password"] == password
        dsn = psycopg.conninfo.make_conninfo(host="127.0.0.1", user="app", password=password)
        assert psycopg.conninfo.conninfo_to_dict(dsn)["password"] == password
        assert DotenvFile(f"DB_PASSWORD={password}\n").get("DB_PASSWORD") == password


def test_policy_length_and_symbols() -> None:
    policy = PasswordPolicy(length=64, symbols="_")
    for _ in range(20):
        password = generate_password(policy).reveal()
        assert len(password) == 64 and "_" in password
        assert not set(password) & set("-.~")
    assert isinstance(generate_password(policy), SecretValue)
    assert repr(generate_password(policy)) == "SecretValue('**********')"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"length": 31}, "password length 31 is below the minimum of 32"),
        ({"symbols": "!"}, "unsafe symbols '!'"),
        ({"symbols": ""}, "at least one symbol is needed"),
        ({"length": 40, "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_policies_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PasswordPolicy.model_validate(fields)
