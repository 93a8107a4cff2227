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


async def main(directory: Path, fault_specs: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    world = World(directory, fault_specs)
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(Path(args.dir).resolve(), args.fault))
    return 0


if __name__ == "__main__":
    sys.exit(run())
