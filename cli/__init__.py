"""The `secretops` command line.

Start-up must stay fast (`secretops --help` under 0.3 s): this module imports only the standard
library; every command imports what it needs (Prefect, the clients) when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cli import commands
from cli.arguments import Parser, iso_time, person_text, positive_int

EPILOG = """\
Every command reads the inventory (which secrets exist, where they live, who may read them)
from --inventory, else $SECRETOPS_INVENTORY, else ./inventory.yaml.

Examples:
  secretops quickstart                                 boot the sandbox and rotate everything
  secretops sandbox up --dir .sandbox                  start the local outside world
  secretops setup                                      work pools, locks, blocks, automations
  secretops rotate api-key openai --env staging        rotate one key, verify, revoke the old
  secretops rotate db-password --env production        rotate without downtime (alternating)
  secretops rotate all --dry-run                       what is due; without --dry-run, rotate it
  secretops leak openai --all-envs --since 2026-11-28T10:00Z   revoke now, replace, audit
  secretops leak --from-report gitleaks.json --dry-run what a scanner's report would start
  secretops alerts serve --port 8780                   GitHub secret scanning -> leak response
  secretops scan --inventory .sandbox/inventory.yaml   prove no secret value reached Prefect
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory",
        metavar="PATH",
        default=None,
        help="inventory file (default: $SECRETOPS_INVENTORY or ./inventory.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="secretops",
        description="Rotate and defend an application's secrets: the secrets runbook as "
        "Prefect flows with verification, rollback and an audit trail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], int],
                parent: argparse._SubParsersAction | None = None,  # type: ignore[type-arg]
                ) -> argparse.ArgumentParser:
        p = (parent or sub).add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(run=run)
        return p

    p = command("quickstart", "boot the sandbox, run every procedure against it, show where "
                "to look", commands.quickstart)
    p.add_argument("--dir", default=".sandbox", help="sandbox folder (default: .sandbox)")
    p.add_argument("--stop", action="store_true",
                   help="stop the sandbox and the Prefect server that quickstart started")

    sandbox = sub.add_parser("sandbox", help="the local outside world: Kubernetes, AWS, "
                             "PostgreSQL, OpenAI and Anthropic emulators",
                             description="Start, inspect and stop the sandbox (docs/sandbox.md).")
    ssub = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    for name, text, run in (
        ("up", "start the sandbox (idempotent) and write DIR/sandbox.json", commands.sandbox_up),
        ("down", "stop every process the sandbox started", commands.sandbox_down),
        ("status", "show what runs and where", commands.sandbox_status),
    ):
        p = command(name, text, run, ssub)
        p.add_argument("--dir", default=".sandbox", help="sandbox folder (default: .sandbox)")
        if name == "up":
            p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                           help="fault knobs at start, e.g. openai:error_rate=0.3,codes=429|503 "
                           "(repeatable)")
            p.add_argument("--kubernetes", choices=["sandbox", "real"], default="sandbox",
                           help="sandbox: the sandbox's own API server (default); real: etcd, "
                           "kube-apiserver, kube-controller-manager and External Secrets "
                           "Operator (binaries: `secretops sandbox build-binaries`)")
    p = command("build-binaries", "build the real control plane's binaries (etcd, "
                "kube-apiserver, kube-controller-manager, External Secrets Operator) and the "
                "gitleaks scanner with Go, into the cache", commands.sandbox_build_binaries,
                ssub)
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   choices=["etcd", "kube-apiserver", "kube-controller-manager",
                            "external-secrets", "gitleaks"],
                   help="one binary (repeatable; default: all)")
    p.add_argument("--force", action="store_true", help="rebuild binaries already found")
    p = command("fault", "set fault knobs of one emulator while it runs", commands.sandbox_fault,
                ssub)
    p.add_argument("--dir", default=".sandbox", help="sandbox folder (default: .sandbox)")
    p.add_argument("target", choices=["openai", "anthropic", "kubernetes", "aws"])
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests that fail")
    p.add_argument("--codes", default="429,500,503", help="status codes of injected errors")
    p.add_argument("--latency-ms", type=int, default=0, help="added latency per request")
    p.add_argument("--down-seconds", type=float, default=0.0, help="refuse everything for N s")
    p.add_argument("--conflict-rate", type=float, default=0.0,
                   help="kubernetes only: share of writes answered 409 Conflict")
    p.add_argument("--redaction", choices=["dots", "stars"], default=None,
                   help="openai only: how the key listing redacts values (dots: "
                   "sk-svcacct-abc...wxyz, stars: sk-svcac****wxyz)")

    inv = sub.add_parser("inventory", help="check and show the inventory",
                         description="Validate the inventory and show what it describes.")
    isub = inv.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    p = command("check", "validate the inventory; errors name the file, field and problem",
                commands.inventory_check, isub)
    p.add_argument("--cluster", action="store_true",
                   help="also ask the cluster whether External Secrets Operator will sync each "
                   "ExternalSecret on request (refreshInterval 0 or CreatedOnce: it will not)")
    p.add_argument("--keys", action="store_true",
                   help="also ask the providers when each environment's current API key "
                   "expires, and say which are due because of it (reads the stores)")

    dev = sub.add_parser("dev", help="development secrets: .env and Docker secret files",
                         description="Development secrets, as the runbook's Development section.")
    dsub = dev.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    p = command("init", "make .env from .env.example and the secrets/*.txt files, generating "
                "empty secret values", commands.dev_init, dsub)
    p.add_argument("--force", action="store_true", help="overwrite existing values and files")

    rotate = sub.add_parser("rotate", help="rotate a secret: create, set, propagate, test, "
                            "finish (rolls back on failure)",
                            description="Rotate a secret in one environment (or, with `all`, "
                            "every secret that is due), following the rotation protocol; the "
                            "old credential is revoked only after the new one is verified in "
                            "every consumer.")
    rsub = rotate.add_subparsers(dest="rotate_command", metavar="WHAT", required=True)
    for name, help_text in (
            ("key", "rotate a provider's key: an API key (OpenAI, Anthropic), an AWS access "
             "key, any kind of key the inventory's providers issue"),
            ("api-key", "rotate an API key (the same as `rotate key`)")):
        p = command(name, help_text, commands.rotate_api_key, rsub)
        p.add_argument("secret", help="secret id from the inventory (secretops inventory check "
                       "lists them: openai, anthropic, ci-aws-key...)")
        p.add_argument("--env", required=True, choices=["development", "staging", "production"])
        p.add_argument("--reason", default="scheduled rotation", type=person_text,
                       help="recorded in the report (one line)")
        p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p = command("db-password", "rotate the PostgreSQL password without downtime",
                commands.rotate_db_password, rsub)
    p.add_argument("--secret", default="db-password", help="secret id (default: db-password)")
    p.add_argument("--env", required=True, choices=["development", "staging", "production"])
    p.add_argument("--strategy", choices=["alternating", "single"], default=None,
                   help="default: the inventory's strategy for the environment")
    p.add_argument("--terminate-old-sessions", action="store_true",
                   help="end the old credentials' sessions after the switch")
    p.add_argument("--reason", default="scheduled rotation", type=person_text,
                   help="recorded in the report (one line)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p = command("all", "rotate every secret that is due (its schedule fired since its last "
                "rotation), keys sharing a Deployment together, in lanes; one report",
                commands.rotate_all, rsub)
    p.add_argument("--env", action="append", default=None,
                   choices=["development", "staging", "production"],
                   help="an environment to rotate in (repeatable; default: all of them)")
    p.add_argument("--secret", action="append", default=None, metavar="ID",
                   help="only this secret of the inventory (repeatable; default: all of them)")
    p.add_argument("--force", action="store_true", help="rotate every secret, due or not")
    p.add_argument("--max-concurrency", type=positive_int, default=8, metavar="N",
                   help="lanes of consumer groups rotating at once (default: 8)")
    p.add_argument("--dry-run", action="store_true",
                   help="report what is due, change nothing")

    p = command("setup", "prepare the Prefect server: work pools, per-secret locks, credential "
                "blocks from environment variables, notification and automations (idempotent)",
                commands.setup)
    p.add_argument("--project-dir", default=".", metavar="PATH",
                   help="where the process pool runs flows (default: the current folder)")
    p.add_argument("--image", default=None, help="Kubernetes pool: the flows' image")
    p.add_argument("--service-account", default=None,
                   help="Kubernetes pool: the jobs' service account")
    p.add_argument("--namespace", default=None, help="Kubernetes pool: the jobs' namespace")

    p = command("leak", "respond to a leaked secret: revoke at once, replace everywhere, audit "
                "the access logs, draft a post-mortem", commands.leak)
    p.add_argument("secret", nargs="?", default=None,
                   help="secret id from the inventory (openai, anthropic, db-password, "
                   "ci-aws-key...)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--env", action="append", choices=["development", "staging", "production"],
                       help="an environment holding the leaked value (repeatable)")
    where.add_argument("--all-envs", action="store_true", help="every environment holding it")
    p.add_argument("--since", default=None, metavar="TIME", type=iso_time,
                   help="when the exposure began, ISO 8601 with a zone (e.g. 2026-11-28T10:00Z; "
                   "without one, UTC), not in the future; the audit reads the logs from then "
                   "(default: the last 30 days)")
    p.add_argument("--reason", default="leak reported", type=person_text,
                   help="recorded in the post-mortem (one line)")
    p.add_argument("--drill", action="store_true", help="an incident drill: marked as such")
    p.add_argument("--postmortem-dir", default=None, metavar="DIR",
                   help="where the post-mortem goes (default: postmortems/ beside the inventory)")
    p.add_argument("--from-report", default=None, metavar="FILE",
                   help="a scanner's report (gitleaks JSON, TruffleHog JSON lines, "
                   "detect-secrets baseline): match its findings against the stores and respond "
                   "to each live value")
    p.add_argument("--dry-run", action="store_true",
                   help="with --from-report: print what would be done, change nothing")
    p.add_argument("--via", choices=["github"], default=None,
                   help="with --drill: plant a sandbox key in a scratch git repository, scan "
                   "it, and have the sandbox's GitHub deliver the alert")
    p.add_argument("--dir", default=".sandbox", help="with --via: the sandbox folder")
    p.add_argument("--partner", action="store_true",
                   help="with --via: the provider revokes the key first (GitHub's partner "
                   "program)")
    p.add_argument("--timeout", type=positive_int, default=300, metavar="SECONDS",
                   help="with --via: how long to wait for the response's run (default: 300)")

    alerts = sub.add_parser("alerts", help="receive detectors' alerts and start the leak "
                            "response", description="The alert receiver (docs/alerts.md).")
    asub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    p = command("serve", "serve POST /github (secret scanning webhooks) and POST /report "
                "(gitleaks, TruffleHog, detect-secrets reports)", commands.alerts_serve, asub)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=8780, help="port (default: 8780)")
    p.add_argument("--github-api", default=os.environ.get("SECRETOPS_GITHUB_API",
                                                          "https://api.github.com"),
                   metavar="URL", help="GitHub's REST API (default: $SECRETOPS_GITHUB_API or "
                   "https://api.github.com)")

    command("audit", "who can read the secrets (RBAC, IAM) against the inventory's policy; "
            "exits 1 when the policy is broken", commands.audit)

    p = command("break-glass", "Lost Access: check the emergency credentials, wait until access "
                "is restored, then rotate what the emergency identity could read",
                commands.break_glass)
    p.add_argument("--who", required=True, type=person_text,
                   help="the person using the emergency credentials (one line, recorded as given)")
    p.add_argument("--why", required=True, type=person_text,
                   help="why normal access is not enough (one line, recorded as given)")

    p = command("unlock", "free a secret's lock after the run holding it died (SIGKILL, lost "
                "machine); refuses while a run of that secret is live", commands.unlock)
    p.add_argument("secret", help="secret id from the inventory")
    p.add_argument("--force", action="store_true", help="free it even if a run looks live")

    p = command("scan", "search Prefect (API, database, logs, artifacts, events, inputs) for any "
                "value held in the stores; exits 1 on a hit", commands.scan)
    p.add_argument("--api-url", default=None, help="Prefect API (default: $PREFECT_API_URL)")
    p.add_argument("--database", default=None, metavar="PATH",
                   help="the Prefect server's SQLite file, searched byte by byte too")
    p.add_argument("--extra-file", action="append", default=[], metavar="PATH",
                   help="another file to search, e.g. the server's log (repeatable)")
    p.add_argument("--since", default=None, metavar="ISO-TIME", type=iso_time,
                   help="only what was written since then (runs, logs, events, database rows), "
                   "e.g. 2026-11-29T10:00Z; default: everything")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    if args.inventory is None:
        args.inventory = os.environ.get("SECRETOPS_INVENTORY", "inventory.yaml")
    from secretops.automations import use_heartbeats
    from secretops.errors import SecretopsError

    use_heartbeats()
    try:
        code: int = args.run(args)
    except SecretopsError as exc:
        print(f"secretops: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("secretops: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
