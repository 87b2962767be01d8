"""The English of messages and logs: counts with their noun, lists of job ids.

Apart from the domain model (:mod:`capillary_provider.jobs`), so the model holds no wording and every
message counts and lists things the same way.
"""

from __future__ import annotations

from collections.abc import Sequence


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 job``, ``2 jobs``: ``word`` is the singular, ``many`` the plural if it is not ``word + "s"``."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def job_list(job_ids: Sequence[int]) -> str:
    """``job 35`` or ``jobs 35, 36``."""
    return ("job " if len(job_ids) == 1 else "jobs ") + ", ".join(str(job_id) for job_id in job_ids)
