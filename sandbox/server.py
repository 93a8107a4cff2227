"""The sandbox supervisor: ``python -m sandbox.server --dir DIR``.

Builds IntelliPrompt's outside world (sandbox/world.py), serves every emulator from one event
loop on 127.0.0.1 and ephemeral ports, writes ``DIR/sandbox.json`` when all of them answer, and
on SIGTERM or SIGINT stops everything it started, PostgreSQL included.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from sandbox.world import World
from secretops.errors import SecretopsError


async def main(directory: Path, fault_specs: list[str], kubernetes: str = "sandbox") -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    world = World(directory, fault_specs, kubernetes)
    try:
        await world.start()
        print(f"sandbox ready: {directory / 'sandbox.json'}", flush=True)
        await stop.wait()
    finally:
        await world.stop()
        print("sandbox stopped", flush=True)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.server")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--kubernetes", choices=["sandbox", "real"], default="sandbox")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(main(Path(args.dir).resolve(), args.fault, args.kubernetes))
    except SecretopsError as exc:  # a binary missing, a control plane that did not start
        print(f"sandbox failed: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
