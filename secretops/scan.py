"""``secretops scan``: look for secret values where Prefect keeps things, and say where.

:func:`secretops.scan_api.scan_prefect` searches for every given value, as is and in the
forms it takes when encoded (JSON-escaped, base64, URL-quoted), in three places:

- the Prefect API (:mod:`secretops.scan_api`): flow runs (parameters, state messages and data,
  the state history, run inputs), task runs, logs, artifacts, events, variables, deployments,
  block documents (all but the fields their schema marks secret), work pools and automations;
- the server's SQLite database, when the server is local: every text and blob column of every
  table, read row by row, which also finds what the API does not show;
- extra files, such as the server's own log.

A :class:`Finding` names where a value was found and which value by its fingerprint; never
the value or any text around it. :func:`format_report` renders a report for the terminal.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from secretops.errors import SecretopsError
from secretops.models import SecretValue, Stage
from secretops.ports import SecretStore

_MIN_PATTERN = 8  # shorter encodings would match ordinary text


class ScanError(SecretopsError):
    """A place could not be searched: the scan has no verdict (never reported as clean)."""


def first_line(error: Exception) -> str:
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


@dataclass(frozen=True)
class Finding:
    """One place where a secret value was found.

    ``where`` names the place (``flow_run 3f2a.../parameters.token``, ``log 91b0... (flow run
    3f2a...)/message``, ``sqlite table log column message row 12``), ``fingerprint`` the value
    (:meth:`SecretValue.fingerprint`), ``form`` how it was written: ``plain``, ``json``
    (escaped in a JSON string), ``json-ascii`` (with ``\\uXXXX`` escapes), ``base64``,
    ``base64url``, ``url`` (fully quoted), ``url-path`` (``/`` kept), ``url-form`` (``+``
    for spaces), ``inside-base64`` (in the decoded bytes of a longer base64 run, such as a
    pickled result).
    """

    where: str
    fingerprint: str
    form: str


@dataclass
class ScanReport:
    """What a scan found, and how much it looked at (objects or rows per source)."""

    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def count(self, source: str, n: int = 1) -> None:
        self.scanned[source] = self.scanned.get(source, 0) + n


@dataclass(frozen=True)
class _Pattern:
    fingerprint: str
    form: str
    text: str
    raw: bytes


def _encoded_forms(value: str) -> dict[str, str]:
    data = value.encode()
    forms = {
        "plain": value,
        "json": json.dumps(value, ensure_ascii=False)[1:-1],
        "json-ascii": json.dumps(value)[1:-1],
        "base64": base64.b64encode(data).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "url": quote(value, safe=""),
        "url-path": quote(value),
        "url-form": quote_plus(value, safe=""),
    }
    unique: dict[str, str] = {}
    for form, text in forms.items():
        if len(text) >= _MIN_PATTERN and text not in unique.values():
            unique[form] = text
    return unique


# a run of base64 (standard or URL-safe alphabet) long enough to hide a value
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{32,}|[A-Za-z0-9_-]{32,}")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _decoded_runs(data: bytes) -> Iterator[bytes]:
    """The decoded bytes of every long base64 run in ``data`` (a pickled, base64-encoded
    result in a result file, a blob in a JSON field)."""
    for run in _BASE64_RUN.findall(data):
        usable = run[: len(run) - len(run) % 4].translate(_URLSAFE_TO_STANDARD)
        yield binascii.a2b_base64(usable)


def _trie_regex(words: Sequence[bytes]) -> re.Pattern[bytes]:
    """One regular expression for ``words``, shaped as their trie (``ab(?:c|d)``): a search
    follows the branches of the next byte instead of trying every word at every position,
    and where one word extends another it matches the longer."""
    trie: dict[int | None, Any] = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = {}

    def build(node: dict[int | None, Any]) -> bytes:
        branches = [re.escape(bytes([byte])) + build(child)
                    for byte, child in sorted((b, c) for b, c in node.items() if b is not None)]
        ends = None in node
        if not branches:
            return b""
        if len(branches) == 1 and not ends:
            return branches[0]
        group = b"(?:" + b"|".join(branches) + b")"
        return group + b"?" if ends else group

    try:
        return re.compile(build(trie))
    except RecursionError:  # words nested hundreds deep ("aaaaaaaa", "aaaaaaaaa", ...)
        longest_first = sorted(words, key=len, reverse=True)
        return re.compile(b"|".join(re.escape(word) for word in longest_first))


class Matcher:
    """Every form of every value, searched in text or bytes; also looks inside long base64
    runs for a value (form ``inside-base64``). All patterns are searched at once (one
    trie-shaped expression), so a scan's cost barely grows with the number of values."""

    def __init__(self, values: Iterable[SecretValue]) -> None:
        patterns: dict[bytes, _Pattern] = {}
        for value in values:
            fingerprint = value.fingerprint()
            for form, text in _encoded_forms(value.reveal()).items():
                raw = text.encode()
                patterns.setdefault(raw, _Pattern(fingerprint, form, text, raw))
        self._patterns = tuple(patterns.values())
        self._order = {raw: i for i, raw in enumerate(patterns)}
        self._inside: dict[bytes, list[_Pattern]] = {}
        self._regex = _trie_regex(list(patterns)) if patterns else None

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def _present(self, data: bytes) -> list[_Pattern]:
        """The patterns that occur in ``data``, in the order they were given."""
        if self._regex is None:
            return []
        found: dict[bytes, _Pattern] = {}
        at = 0
        while (match := self._regex.search(data, at)) is not None:
            matched = match.group()
            # a match is the longest pattern at its place: the patterns inside it are there too
            if matched not in self._inside:
                self._inside[matched] = [p for p in self._patterns if p.raw in matched]
            for pattern in self._inside[matched]:
                found.setdefault(pattern.raw, pattern)
            at = match.start() + 1
        return sorted(found.values(), key=lambda p: self._order[p.raw])

    def in_text(self, text: str) -> list[tuple[str, str]]:
        """(fingerprint, form) of every pattern found in ``text``."""
        return self.in_bytes(text.encode(errors="surrogatepass"))

    def in_bytes(self, data: bytes) -> list[tuple[str, str]]:
        hits = [(p.fingerprint, p.form) for p in self._present(data)]
        found = {fingerprint for fingerprint, _ in hits}
        for decoded in _decoded_runs(data):
            for pattern in self._present(decoded):
                if pattern.fingerprint not in found:
                    hits.append((pattern.fingerprint, "inside-base64"))
                    found.add(pattern.fingerprint)
        return hits


def _key_label(key: str, matcher: Matcher) -> str:
    """A dict key as a path component; a key holding a value is shown as ``[key]``."""
    return "[key]" if matcher.in_text(key) else key


def search_json(obj: Any, where: str, matcher: Matcher, report: ScanReport) -> None:
    """Walk a JSON document; record a finding for each string (or key) holding a value,
    named ``where`` plus the path to it (``parameters.token``, ``data[2]``)."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, str):
            for fingerprint, form in matcher.in_text(node):
                report.findings.append(Finding(f"{where}{path}", fingerprint, form))
        elif isinstance(node, dict):
            for key, child in node.items():
                label = _key_label(str(key), matcher)
                child_path = f"{path}.{label}" if path else f"/{label}"
                walk(str(key), child_path)
                walk(child, child_path)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}[{index}]")

    walk(obj, "")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [str(c[1]) for c in connection.execute(f"PRAGMA table_info({_quoted(table)})")]


def _text_tables(connection: sqlite3.Connection) -> Iterator[tuple[str, list[str]]]:
    tables = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for (table,) in tables:
        columns = connection.execute(f"PRAGMA table_info({_quoted(table)})").fetchall()
        numeric = ("INT", "REAL", "FLOA", "DOUB", "NUMERIC", "BOOL", "DATE", "TIME")
        text_columns = [
            str(column[1])
            for column in columns
            if not any(kind in str(column[2]).upper() for kind in numeric)
        ]
        if text_columns:
            yield str(table), text_columns


def search_sqlite(
    database_path: Path, matcher: Matcher, report: ScanReport, since: datetime | None = None
) -> None:
    """Read every text-like column of every table, one row at a time, and search each cell
    as bytes (so JSON, blobs and text are all covered). With ``since``, only rows written
    since then (Prefect stamps every row's ``updated`` column, in UTC)."""
    uri = f"{database_path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if since else None
    try:
        for table, columns in _text_tables(connection):
            selected = ", ".join(f"CAST({_quoted(column)} AS BLOB)" for column in columns)
            # identifiers read from the database's own catalogue, quoted
            query = f"SELECT rowid, {selected} FROM {_quoted(table)}"  # noqa: S608
            recent = stamp is not None and "updated" in _columns(connection, table)
            rows = (connection.execute(f"{query} WHERE updated >= ?", (stamp,)) if recent
                    else connection.execute(query))
            count = 0
            for row in rows:
                count += 1
                for column, cell in zip(columns, row[1:], strict=True):
                    if not cell:
                        continue
                    for fingerprint, form in matcher.in_bytes(cell):
                        where = f"sqlite table {table} column {column} row {row[0]}"
                        report.findings.append(Finding(where, fingerprint, form))
            report.count("sqlite rows", count)
            report.count("sqlite tables")
    finally:
        connection.close()


def search_file(path: Path, matcher: Matcher, report: ScanReport) -> None:
    """Search a (log) file line by line, as bytes."""
    with path.open("rb") as stream:
        lineno = 0
        for lineno, line in enumerate(stream, start=1):
            for fingerprint, form in matcher.in_bytes(line):
                report.findings.append(Finding(f"file {path} line {lineno}", fingerprint, form))
        report.count("file lines", lineno)


def collect_store_values(stores: Iterable[SecretStore]) -> list[SecretValue]:
    """Every value the stores hold, current, pending and previous, each once: what a scan
    looks for."""
    values: dict[SecretValue, None] = {}
    for store in stores:
        for stage in Stage:
            credential = store.read(stage)
            if credential is not None:
                values.setdefault(credential.secret, None)
    return list(values)


def format_report(report: ScanReport) -> str:
    """The report for a terminal: one line per finding, then what was searched."""
    lines: list[str] = []
    if not report.scanned:
        lines.append("scan: no secret values to look for")
    elif report.ok:
        lines.append("scan: clean, no secret value found")
    else:
        values = len({finding.fingerprint for finding in report.findings})
        lines.append(f"scan: {len(report.findings)} finding(s) of {values} secret value(s)")
        for finding in report.findings:
            lines.append(f"  value {finding.fingerprint} ({finding.form}) in {finding.where}")
    searched = ", ".join(f"{source}: {n}" for source, n in sorted(report.scanned.items()))
    lines.append(f"searched: {searched or 'nothing'}")
    return "\n".join(lines)
