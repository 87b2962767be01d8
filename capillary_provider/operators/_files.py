"""The files of one upload task: which files ``source`` names, and each file validated and ready to upload.

``source`` may name one file, a glob pattern (``s3://exports/daily/*.csv``) or a list of either.
Every file is validated before the first byte of any of them is sent, and goes up as its own
batches, named after the task instance *and the file*, so exactly-once holds per file and a retry
never mixes files.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from airflow.sdk import ObjectStoragePath

from capillary_provider.coupon_file import FilePlan, ReadOnce, RowRules
from capillary_provider.coupon_file.rejects import SkippedRows
from capillary_provider.exceptions import CapillaryError, CouponFileError
from capillary_provider.run import RunFile
from capillary_provider.wording import plural

_GLOB = re.compile(r"[*?\[]")


class NoFiles(CouponFileError):
    """A pattern in ``source`` matches no file."""


def batch_file_name(
    dag_id: str, task_id: str, run_id: str, map_index: int, part: int, source_key: str | None = None
) -> str:
    """The name Capillary records for one batch: the same for every try of the same task instance.

    Readable parts say where the batch comes from; the digest keeps names distinct where the readable
    parts are cut short or cleaned of characters a file name should not carry. With several source
    files, ``source_key`` (the file's path) adds the file's own digest, so no two files share a name.
    Retries across an upgrade find their batches by this name: it must not change between releases.
    """
    digest = hashlib.sha256(f"{dag_id}\0{task_id}\0{run_id}\0{map_index}".encode()).hexdigest()[:12]

    def clean(text: str, limit: int) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:limit]

    mapped = f"_m{map_index}" if map_index >= 0 else ""
    per_file = f"_f{hashlib.sha256(source_key.encode()).hexdigest()[:10]}" if source_key is not None else ""
    return (
        f"{clean(dag_id, 40)}__{clean(task_id, 40)}__{clean(run_id, 40)}{mapped}_{digest}{per_file}_part{part:04d}.csv"
    )


def is_many(source: Any) -> bool:
    """Whether ``source`` names several files (a list or tuple, or a glob pattern)."""
    return isinstance(source, (list, tuple)) or (isinstance(source, str) and bool(_GLOB.search(source)))


def literal_sources(source: Any) -> list[Any]:
    """The entries of ``source`` (one, or each of a list) known before the run: not a template, not a pattern."""
    entries: Sequence[Any] = source if isinstance(source, (list, tuple)) else [source]
    return [entry for entry in entries if not (isinstance(entry, str) and ("{{" in entry or _GLOB.search(entry)))]


def source_name(source: Any, path: ObjectStoragePath) -> str:
    """The file as the task names it (messages, the summary, lineage, the archive): each file of a list or
    pattern by its path, a single source as it was given (an Asset by its URI)."""
    return display_name(path) if is_many(source) else str(getattr(source, "uri", source))


def display_name(path: Any) -> str:
    """A path as users write it: ``s3://bucket/key``, without the ``conn_id@`` that ``str()`` adds."""
    return re.sub(r"^([a-z0-9+.-]+://)[^@/]*@", r"\1", str(path))


def resolve_sources(source: Any, to_path: Callable[[Any], ObjectStoragePath]) -> list[ObjectStoragePath]:
    """The files ``source`` names, in a stable order (a pattern's matches sorted by path).

    :param to_path: turns one path or URI into an :class:`ObjectStoragePath` on the task's storage.
    :raises CouponFileError: a pattern that matches no file (the caller may skip the task instead).
    """
    entries: Sequence[Any] = source if isinstance(source, (list, tuple)) else [source]
    paths: list[ObjectStoragePath] = []
    for entry in entries:
        text = str(entry)
        match = _GLOB.search(text) if isinstance(entry, str) else None
        if match is None:
            paths.append(to_path(entry))
            continue
        base, _, _ = text[: match.start()].rpartition("/")
        pattern = text[len(base) + 1 :]
        # Airflow 3.1's stubs type the matches as UPath; they are ObjectStoragePaths.
        found = cast("list[ObjectStoragePath]", sorted(to_path(base or ".").glob(pattern), key=str))
        if not found:
            raise NoFiles(f"{text}: matches no file. Check the pattern and the folder ({base or '.'}).")
        paths.extend(found)
    return paths


@dataclass
class PreparedFile:
    """One source file, validated and planned: what its batches are called and where they are read from.

    :param name: the file as the task names it (for messages and the summary).
    :param key: what makes its batch names differ from the other files' (None for a single source,
        whose names stay what they always were).
    """

    name: str
    key: str | None
    source: ReadOnce
    plan: FilePlan
    names: list[str] = field(default_factory=list)
    skipped: SkippedRows | None = None

    def set_aside(
        self,
        rules: RowRules,
        *,
        batch_size: int,
        max_skipped_rows: int | None,
        rejected_rows_to: ObjectStoragePath,
        log: Any,
        spool_dir: str | None = None,
    ) -> None:
        """Write the invalid rows to ``rejected_rows_to``, then plan the file without them: the rows are safe
        before anything is uploaded. More than ``max_skipped_rows`` fail the task, sending nothing."""
        rejected = self.plan.rejected
        if max_skipped_rows is not None and len(rejected) > max_skipped_rows:
            first = min(rejected)
            raise CouponFileError(
                f"{self.name}: {len(rejected)} invalid rows, more than max_skipped_rows={max_skipped_rows}; "
                f"nothing was uploaded. First: row {first} ({rejected[first]})."
            )
        self.skipped = SkippedRows(
            self.source,
            self.plan,
            rules,
            name=self.name,
            batch_size=batch_size,
            rejected_rows_to=rejected_rows_to,
            spool_dir=spool_dir,
        )
        self.source.close()
        self.source, self.plan = self.skipped.source, self.skipped.plan
        log.warning(
            "Skipping %s of %s: written to %s, never sent to Capillary",
            plural(self.skipped.count, "invalid row"),
            self.name,
            display_name(rejected_rows_to),
        )

    def close(self) -> None:
        self.source.close()
        if self.skipped is not None:
            self.skipped.close()

    def entry(self) -> RunFile:
        """This file in the run's record: what the summary, lineage and the archive need once it is uploaded."""
        skipped = (self.skipped.count, str(self.skipped.rejected_rows_to)) if self.skipped else (None, None)
        return RunFile(self.name, tuple(self.names), *skipped)


def dry_run_summary(series_id: str, files: Sequence[PreparedFile]) -> dict[str, Any]:
    """What a dry run returns: the batches that would go up, each with its name (and file, if several)."""
    batches = []
    for prepared in files:
        for batch, name in zip(prepared.plan.batches, prepared.names, strict=True):
            entry = {"part": batch.part, "rows": batch.rows, "first_row": batch.first_row, "file_name": name}
            if len(files) > 1:
                entry["source"] = prepared.name
            batches.append(entry)
    total = sum(prepared.plan.rows for prepared in files)
    return {"coupon_series_id": series_id, "dry_run": True, "total_rows": total, "batches": batches}


def archive(sources: Sequence[ObjectStoragePath], folder: ObjectStoragePath, *, move: bool, log: Any) -> list[str]:
    """Copy each source file into ``folder`` (any storage), then, when ``move``, delete the original.

    Called only once the verdict has passed. A file is deleted only after its copy is complete and
    has the original's size, so a move that fails halfway leaves the source where it was (and the
    task's retry, which attaches to the same jobs, archives it again).

    :return: where each file went.
    """
    done = []
    with contextlib.suppress(OSError, NotImplementedError):  # object stores have no folders to make
        folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = folder / source.name
        try:
            source.copy(target)
            if target.stat().st_size != source.stat().st_size:
                raise OSError(f"the copy has {target.stat().st_size} bytes, the source {source.stat().st_size}")
        except Exception as exc:
            raise CapillaryError(
                f"Capillary accepted the upload, but archiving {display_name(source)} to {display_name(target)} "
                f"failed ({type(exc).__name__}: {exc}); the source is still in place. A retry attaches to the "
                "same jobs and archives it again."
            ) from exc
        if move:
            source.unlink()
        log.info("%s %s to %s", "Moved" if move else "Copied", display_name(source), display_name(target))
        done.append(display_name(target))
    return done
