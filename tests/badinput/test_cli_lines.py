"""Wrong input on the command line: one line on stderr naming the problem, exit code 2 (a
value the parser refuses) or 1 (one the inventory refuses), no traceback, nothing started.

The commands run in this process against the shipped inventory: every refusal here happens
before a flow, a Prefect server or any outside system is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main
from cli.arguments import MAX_TEXT

INVENTORY = str(Path(__file__).parents[2] / "inventory.yaml")

CASES = [
    (["leak", "openai", "--env", "staging", "--since", "garbage"], 2, "not an ISO 8601 time"),
    (["leak", "openai", "--env", "staging", "--since", "2026-13-40"], 2, "not an ISO 8601"),
    (["leak", "openai", "--env", "staging", "--since", "2099-01-01T00:00Z"], 2, "in the future"),
    (["leak", "openai", "--env", "staging", "--reason", "a\x1b[2Jb"], 2, "control characters"),
    (["break-glass", "--who", "", "--why", "x"], 2, "--who: must not be empty"),
    (["break-glass", "--who", "   ", "--why", "x"], 2, "--who: must not be empty"),
    (["break-glass", "--who", "ana\nroot", "--why", "x"], 2, "one line"),
    (["break-glass", "--who", "ana", "--why", "x" * (MAX_TEXT + 1)], 2, "at most"),
    (["break-glass", "--who", "ana", "--why", "zero\u200bwidth"], 2, "control characters"),
    (["unlock", "nosuch"], 1, "no secret 'nosuch' in the inventory"),
    (["scan", "--since", "yesterday"], 2, "not an ISO 8601 time"),
    (["rotate", "api-key", "github", "--env", "staging"], 1, "no key 'github'"),
    (["rotate", "api-key", "db-password", "--env", "staging"], 1, "no key 'db-password'"),
    (["rotate", "db-password", "--secret", "openai", "--env", "staging"], 1,
     "no password 'openai'"),
    (["rotate", "nosuch"], 2, "invalid choice"),
]


@pytest.mark.parametrize(("argv", "code", "said"), CASES,
                         ids=[" ".join(argv)[:40] for argv, _, _ in CASES])
def test_one_clear_line(argv: list[str], code: int, said: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    try:
        returned = main([*argv, "--inventory", INVENTORY])
    except SystemExit as exited:
        returned = int(exited.code or 0)
    err = capsys.readouterr().err
    assert returned == code
    assert said in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_a_zoned_time_is_read_in_utc() -> None:
    from cli.arguments import iso_time

    assert iso_time("2026-11-28T10:00+01:00").isoformat() == "2026-11-28T09:00:00+00:00"
    assert iso_time("2026-11-28T10:00").isoformat() == "2026-11-28T10:00:00+00:00"
    assert iso_time("2026-11-28T10:00Z").isoformat() == "2026-11-28T10:00:00+00:00"
