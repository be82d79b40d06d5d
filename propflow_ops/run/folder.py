"""The run folder under the output folder: every file masked in memory, written into a hidden staging
folder with SHA256SUMS, renamed into place (never over another run); :class:`PublishError` when the disk
cannot take it; :func:`verify_sums` reads a folder back."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from propflow_ops.incident import BadInput
from propflow_ops.redact import redact_text
from propflow_ops.run.header import html_report


class PublishError(Exception):
    """The report could not be written under the output folder (disk full, read-only...): exit 3."""


def output_root(output_dir: str | None) -> Path:
    """The local output folder, absolute against the caller's working directory (the kernel runs elsewhere).
    An ``s3://`` output directory goes through :func:`propflow_ops.store.location` instead."""
    from propflow_ops.store import S3Url, location

    loc = location(output_dir)
    if isinstance(loc, S3Url):
        raise BadInput(f"{loc} is an S3 evidence store; this reads local folders only")
    return loc


def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def publish(tmp: Path, parent: Path, name: str) -> Path:
    """Rename the finished temporary folder into place; a clash gets a suffix, never an overwrite."""
    for n in range(1, 1000):
        final = parent / (name if n == 1 else f"{name}-{n}")
        try:
            os.rename(tmp, final)  # fails on an existing non-empty directory: no overwrite
            return final
        except OSError:
            if not final.exists():
                raise
    raise RuntimeError(f"could not find a free run folder name for {name}")


def write_sums(folder: Path, names: Iterable[str]) -> None:
    lines = []
    for name in names:
        p = folder / name
        if p.exists():
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def verify_sums(folder: Path) -> dict[str, str]:
    """name -> ok | tampered | missing, for every file SHA256SUMS lists (and unlisted extra files)."""
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return {"SHA256SUMS": "missing"}
    result: dict[str, str] = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        p = folder / name
        if not p.exists():
            result[name] = "missing"
        else:
            result[name] = "ok" if hashlib.sha256(p.read_bytes()).hexdigest() == digest else "tampered"
    return result


_PATH_ERRNOS = (errno.ENOTDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP)


def disk_error(where: Path, exc: OSError) -> PublishError:
    reason = exc.strerror or type(exc).__name__
    return PublishError(f"cannot write the report under {where}: {reason}")


def make_parent(parent: Path) -> list[Path]:
    """Create the incident folder (and missing parents); returns the folders created, deepest last."""
    created: list[Path] = []
    missing = [p for p in [parent, *parent.parents] if not p.exists()]
    try:
        for p in reversed(missing):
            try:
                p.mkdir()
                created.append(p)
            except FileExistsError:  # another run made it meanwhile (or a file is in the way)
                if not p.is_dir():
                    raise BadInput(f"the output folder {p} is not a directory") from None
    except OSError as exc:
        remove_empty(created)
        if exc.errno in _PATH_ERRNOS:
            raise BadInput(f"cannot create the output folder {parent}: {exc.strerror}") from None
        raise disk_error(parent, exc) from None
    return created


def remove_empty(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


def publishable_files(
    nb: nbformat.NotebookNode,
    evidence: dict[str, Any],
    private: Path,
    html: bool,
) -> tuple[dict[str, bytes], list[str]]:
    """Every file of the run folder, masked, in memory (so a full disk cannot leave half a report)."""
    files: dict[str, bytes] = {"report.ipynb": nbformat.writes(nb).encode("utf-8")}
    names = ["report.ipynb", "evidence.json"]
    if html:
        try:
            files["report.html"] = html_report(nb, evidence).encode("utf-8")
            names.insert(1, "report.html")
        except Exception as exc:  # noqa: BLE001 - the HTML is a convenience; the evidence must survive
            evidence.setdefault("warnings", []).append(
                redact_text(f"HTML export failed: {type(exc).__name__}: {exc}")
            )
    files["evidence.json"] = (json.dumps(evidence, indent=2) + "\n").encode("utf-8")
    for p in sorted(private.iterdir()):  # files a notebook wrote beside its report (postmortem.md)
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.name not in files:
            data = p.read_bytes()
            try:
                data = redact_text(data.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                pass
            files[p.name] = data
            names.append(p.name)
    return files, names


def write_staging(staging: Path, files: Mapping[str, bytes], names: list[str]) -> None:
    for name, data in files.items():
        with open(staging / name, "xb") as fh:
            fh.write(data)
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in names if n in files)
    with open(staging / "SHA256SUMS", "xb") as fh:
        fh.write(sums.encode("utf-8"))
