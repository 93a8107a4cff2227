"""Generated wrong input for every option of the command line that takes a constrained value
(a choice, a time, a person's text, a count): each gives exit code 2 and one line on stderr,
never a traceback; and a secret the inventory does not have gives exit code 1 and one line.

The options are found by walking the parser, so a new command or option is covered without a
new case. Every refusal here happens while the arguments are parsed or the inventory is read,
before anything outside this process is touched."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import build_parser, main
from cli.arguments import iso_time, person_text, positive_int

INVENTORY = str(Path(__file__).parents[2] / "inventory.yaml")
SECRETS = {"openai", "anthropic", "db-password"}
TYPED = {iso_time, person_text, positive_int}
FILL = {"secret": "openai", "target": "openai"}

nasty = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["", " ", "\n", "\x00", "\x1b[2J", "$(rm -rf /)", "`id`", "; ls", "|cat",
                     "' OR 1=1 --", "%s%n", "../../etc/passwd", "-1", "0", "1e309", "nan",
                     "2026-02-30T10:00Z", "2026-11-28T25:00", "99999-01-01", "yesterday",
                     "2999-01-01T00:00Z", "x" * 5000, "\u202eevil", "\ud7ff", "Ω≈ç√"]),
)


def commands() -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    def walk(parser: argparse.ArgumentParser, path: list[str]
             ) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])
        if not subs:
            yield path, parser

    yield from walk(build_parser(), [])


def required(parser: argparse.ArgumentParser, skip: argparse.Action) -> list[str]:
    """Valid values for the command's required arguments other than ``skip``."""
    argv: list[str] = []
    for action in parser._actions:
        if action is skip or not (action.required or not action.option_strings):
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        value = (str(next(iter(action.choices))) if action.choices
                 else FILL.get(action.dest, "someone"))
        argv += [action.option_strings[0], value] if action.option_strings else [value]
    return argv


def constrained() -> list[tuple[list[str], argparse.ArgumentParser, argparse.Action]]:
    return [(path, parser, action) for path, parser in commands()
            for action in parser._actions
            if (action.choices is not None and not isinstance(action, argparse._SubParsersAction))
            or action.type in TYPED]


def refused(value: str, action: argparse.Action) -> bool:
    if action.choices is not None:
        return value not in action.choices
    try:
        action.type(value)  # type: ignore[misc]
    except argparse.ArgumentTypeError:
        return True
    return False


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([*argv, "--inventory", INVENTORY])
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else 1
    return code, err.getvalue()


CASES = constrained()


def test_every_constrained_option_is_found() -> None:
    names = {(" ".join(path), action.dest) for path, _, action in CASES}
    assert ("leak", "since") in names and ("break-glass", "who") in names
    assert ("rotate all", "max_concurrency") in names and ("rotate api-key", "env") in names


@pytest.mark.parametrize(("path", "parser", "action"), CASES,
                         ids=[f"{' '.join(p)} {a.dest}" for p, _, a in CASES])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=nasty)
def test_a_refused_value_is_one_line_and_exit_2(path: list[str], parser: argparse.ArgumentParser,
                                               action: argparse.Action, value: str) -> None:
    if "\x00" in value or not refused(value, action):
        return  # NUL cannot be in a real argv; an accepted value would run the command
    option = [action.option_strings[0], value] if action.option_strings else [value]
    argv = [*path, *required(parser, action), *option]
    if value.startswith("-"):  # as a shell user would pass it: --opt=-1
        argv = [*path, *required(parser, action),
                f"{action.option_strings[0]}={value}" if action.option_strings else "--"]
        if not action.option_strings:
            return
    code, err = run(argv)
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@settings(max_examples=40, deadline=None)
@given(secret=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                      min_size=1, max_size=40).filter(
    lambda s: s not in SECRETS and not s.startswith("-") and "\x00" not in s))
def test_an_unknown_secret_is_one_line_and_exit_1(secret: str) -> None:
    for argv in (["unlock", secret], ["rotate", "api-key", secret, "--env", "staging"],
                 ["leak", secret, "--env", "staging"]):
        code, err = run(argv)
        assert code == 1, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "in the inventory" in err
