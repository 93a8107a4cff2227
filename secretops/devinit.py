"""``secretops dev init``: a working local ``.env`` and Docker secret files from ``.env.example``.

The runbook's "cp .env.example .env; nano .env", done safely:

- every line of ``.env.example`` is kept (comments, order, settings); entries it has that an
  existing ``.env`` lacks are appended;
- empty local secrets (names ending in ``_PASSWORD``, ``_SECRET``, ``_TOKEN`` or ``_KEY``) get
  a generated value (:func:`secretops.passwords.generate_password`);
- provider API keys (names ending in ``_API_KEY``) stay empty: only the provider can issue
  them, so the report says to get one from the provider or run a rotation;
- a value built from others (``DATABASE_URL=postgresql://user:${DB_PASSWORD}@...``) is filled
  in with their values (URL-quoted), so the URL holds the same password as ``DB_PASSWORD`` and
  a later rotation (which rewrites the URL's password) keeps them equal;
- each Docker secret file ``secrets/NAME.txt`` holds the same value as the ``.env`` entry
  ``NAME`` in upper case (``db_password.txt`` and ``DB_PASSWORD``);
- nothing that already has a value is overwritten unless ``force`` is given, and then only
  the generated secrets (and what is built from them): API keys and settings are kept.

Files are written atomically with mode 0600 and the secrets folder is created with mode 0700.
The report names entries and files, never values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from secretops.adapters.dotenv import DotenvFile
from secretops.adapters.files import atomic_write, read_text
from secretops.errors import InventoryError, SecretopsError
from secretops.inventory import DockerSecretStoreSpec, Inventory
from secretops.models import Environment
from secretops.passwords import generate_password

GENERATED_SUFFIXES = ("_PASSWORD", "_SECRET", "_TOKEN", "_KEY")
PROVIDER_SUFFIX = "_API_KEY"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class InitReport:
    """What ``init_dev`` did, by name: never a value."""

    env_file: Path
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"development environment: {self.env_file}"]
        for title, names in (
            ("created", self.created),
            ("replaced (--force)", self.replaced),
            ("kept", self.kept),
            ("left empty", self.skipped),
        ):
            if names:
                lines.append(f"  {title}: {', '.join(names)}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _is_provider_key(key: str) -> bool:
    return key.endswith(PROVIDER_SUFFIX)


def _is_generated(key: str) -> bool:
    return key.endswith(GENERATED_SUFFIXES) and not _is_provider_key(key)


def _docker_file(secrets_dir: Path, name: str) -> Path:
    return secrets_dir / (name if Path(name).suffix else f"{name}.txt")


def _expand(template: str, values: DotenvFile) -> str:
    """``template`` with each ``${NAME}`` that has a value replaced by it (URL-quoted inside a
    URL); references to empty entries stay as they are."""
    in_url = "://" in template

    def value_of(match: re.Match[str]) -> str:
        value = values.get(match[1])
        if not value:
            return match[0]
        return quote(value, safe="") if in_url else value

    return _REFERENCE.sub(value_of, template)


def _file_by_key(files: dict[str, Path], key: str) -> str:
    """The Docker secret file whose name matches the ``.env`` key (for the report)."""
    for name, path in files.items():
        if Path(name).stem.upper() == key:
            return f"{path.parent.name}/{path.name}"
    return key


def init_dev(
    env_example: Path,
    env_file: Path,
    secrets_dir: Path,
    docker_secrets: list[str],
    force: bool = False,
) -> InitReport:
    """Create or complete ``env_file`` from ``env_example`` and the Docker secret files named
    in ``docker_secrets`` (``db_password`` or ``db_password.txt``) under ``secrets_dir``."""
    example_text = read_text(env_example)
    if example_text is None:
        raise SecretopsError(f"{env_example}: not found (it lists the settings .env needs)")
    example = DotenvFile(example_text)
    existing_text = read_text(env_file)
    result = DotenvFile(example_text if existing_text is None else existing_text)
    report = InitReport(env_file)
    fresh = {entry.key for entry in example.entries()} if existing_text is None else set()
    for entry in example.entries():
        if entry.key not in result:
            result.set(entry.key, entry.value)
            fresh.add(entry.key)

    files = {name: _docker_file(secrets_dir, name) for name in docker_secrets}
    file_values = {name: (read_text(path) or "").removesuffix("\n") for name, path in files.items()}
    from_files = {Path(name).stem.upper(): value for name, value in file_values.items() if value}

    for key in dict.fromkeys(entry.key for entry in example.entries()):
        current = result.get(key)
        if _is_provider_key(key):
            if current:
                report.kept.append(key)
            else:
                report.skipped.append(key)
                report.notes.append(
                    f"{key}: a provider API key: create one at the provider, or run a rotation"
                )
        elif _is_generated(key):
            if current and not force:
                report.kept.append(key)
            elif from_files.get(key) and not force:
                result.set(key, from_files[key])
                report.created.append(f"{key} (from {_file_by_key(files, key)})")
            else:
                result.set(key, generate_password().reveal())
                (report.replaced if current else report.created).append(key)

    for entry in example.entries():
        template = entry.value
        if not _REFERENCE.search(template):
            continue
        if entry.key in fresh or force or result.get(entry.key) == template:
            expanded = _expand(template, result)
            if expanded != result.get(entry.key):
                result.set(entry.key, expanded)
                report.created.append(entry.key)

    if result.render() != existing_text:
        atomic_write(env_file, result.render())
        if existing_text is None:
            report.created.insert(0, env_file.name)

    for name, path in files.items():
        key = Path(name).stem.upper()
        value = result.get(key) or generate_password().reveal()
        shown = f"{secrets_dir.name}/{path.name}"
        if file_values[name] and not force:
            report.kept.append(shown)
            if result.get(key) and file_values[name] != result.get(key):
                report.notes.append(f"{shown} differs from {key} in .env (--force resets both)")
            continue
        if file_values[name] != value:
            atomic_write(path, value)
            (report.replaced if file_values[name] else report.created).append(shown)
        else:
            report.kept.append(shown)
    return report


def init_dev_from_inventory(inv: Inventory, force: bool = False) -> InitReport:
    """:func:`init_dev` for the inventory's development environment: its ``dotenv``,
    ``dotenv_example`` (default: ``.env.example`` beside it), ``secrets_dir`` and the Docker
    secret files its development stores name."""
    env = inv.environment(Environment.development)
    if env.dotenv is None:
        raise InventoryError("environments.development.dotenv is not set")
    example = env.dotenv_example or env.dotenv.with_name(env.dotenv.name + ".example")
    secrets_dir = env.secrets_dir or env.dotenv.parent / "secrets"
    docker = [
        store.path
        for secret in inv.secrets
        for store in secret.stores.get(Environment.development, [])
        if isinstance(store, DockerSecretStoreSpec)
    ]
    return init_dev(example, env.dotenv, secrets_dir, list(dict.fromkeys(docker)), force)
