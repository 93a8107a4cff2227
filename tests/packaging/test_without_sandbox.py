"""Without the sandbox (a product-only install: the ``secretops`` wheel alone), the commands
that start or use it say so in one line on stderr and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli.installed import SANDBOX_MISSING

COMMANDS = [
    ["quickstart"],
    ["quickstart", "--stop"],
    ["sandbox", "up", "--dir", "world"],
    ["sandbox", "status"],
    ["sandbox", "down"],
    ["sandbox", "build-binaries"],
    ["sandbox", "fault", "openai", "--error-rate", "0.3"],
    ["leak", "openai", "--drill", "--via", "github"],
]

# Each command in this process with the sandbox hidden, as if it were not installed.
SCRIPT = """
import contextlib, io, json, sys
sys.modules["sandbox"] = None
from cli import main
answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    answers.append([code, err.getvalue()])
print(json.dumps(answers))
"""


def test_sandbox_commands_say_the_sandbox_is_not_installed(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(COMMANDS)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    for argv, (code, stderr) in zip(COMMANDS, json.loads(done.stdout), strict=True):
        assert (code, stderr) == (1, f"secretops: error: {SANDBOX_MISSING}\n"), argv
    assert "pip install secretops-sandbox" in SANDBOX_MISSING
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
