"""The parameters every upload operator shares: their documentation, and the forwarding to the base class.

Each kind's operator declares every parameter in its own signature, so an IDE completes them and mypy
checks a user's DAG (a misspelled keyword fails when the DAG is parsed: Airflow's ``BaseOperator``
refuses arguments it does not know). The documentation of the shared ones is written once, here, and
appended to each operator's docstring; :func:`shared_arguments` passes them on to
:class:`~capillary_provider.operators._base.BaseUploadOperator` without a third copy of the list.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator

from capillary_provider.exceptions import CapillaryConfigError

SHARED_PARAMETERS = """
    :param coupon_series_id: the coupon series to upload to: a positive whole number (templated; checked
        when the DAG is parsed, or once rendered).
    :param source: the CSV: a local path, a URI such as ``s3://bucket/file.csv``, an ``ObjectStoragePath``
        or an ``Asset`` (its URI is read; it and an ``ObjectStoragePath`` become the task's inlet);
        ``.gz`` files are decompressed on the fly (templated).
    :param capillary_conn_id: the Capillary connection (templated).
    :param source_conn_id: the connection for remote storage, e.g. ``aws_default`` (templated).
    :param batch_size: most data rows per upload; Capillary recommends 500,000 at most.
    :param validate: check the CSV before uploading; turn off only for files you trust.
    :param dry_run: validate and report the batches that would be uploaded, then stop.
    :param wait_for_completion: wait until Capillary has processed every batch; if False, the task ends
        after the upload and a :class:`~capillary_provider.sensors.coupon_upload.CouponUploadSensor` can wait.
    :param deferrable: wait in the triggerer instead of the worker (default from
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between two status calls while waiting.
    :param timeout: seconds to wait for Capillary before the task fails (and may retry: a retry
        attaches to the same jobs).
    :param max_error_rows: most rows Capillary may reject before the task fails; None for no limit.
    :param max_error_ratio: most rejected rows as a fraction of all rows; None for no limit.
    :param check_series: read the series before the first upload and fail, sending nothing, when
        Capillary does not know it or it has expired. Any other answer (no read access, a timeout)
        only logs a warning: the check never stops a valid upload.
    :param invalid_rows: ``"fail"`` (nothing is sent if any row is invalid) or ``"skip"``: invalid rows
        never reach Capillary; each is written to ``rejected_rows_to`` before anything is uploaded, in
        the form it would have gone up (comma-separated, the columns that go up), and the others go up.
    :param rejected_rows_to: path or URI (any storage) of the rejected-rows CSV: the upload's header plus
        the row's 1-based row number in the source and the reason (templated; required with ``invalid_rows="skip"``).
    :param max_skipped_rows: with ``"skip"``, most invalid rows tolerated before the task fails, sending
        nothing; None for no ceiling.
    :param skip_if_no_files: when ``source`` is a pattern that matches no file, mark the task skipped
        instead of failing it.
    :param archive_to: folder or URI (any storage; templated) each source file is moved (or copied) to
        once the verdict has passed: never before, so a file is never archived unless Capillary took it.
    :param archive_mode: ``"move"`` (copy, check, then delete the source) or ``"copy"``.
    :param has_header: False for a file whose first row is data: the upload gets the header row
        Capillary expects, and rows are named as the file numbers them. None (the default): the first
        row is the header, but the task fails before sending if it looks like data (its identifier cell
        is a valid MOBILE, USER_ID or EMAIL value, which no header cell is), rather than drop a
        customer's row. True: the first row is the header whatever it holds (a warning if it looks like data).
    :param delimiter: the file's field delimiter: ``","``, ``";"``, ``"tab"`` or ``"|"``; the upload is
        converted to commas on the fly.
    :param spool_dir: local folder (templated) for the copies a file may need: a remote or ``.gz`` source is
        spooled there whole, decompressed, and a file that must be converted (``has_header=False``, another
        delimiter, ``coupon_code_column``) is written there normalized; with ``invalid_rows="skip"`` a second
        copy without the invalid rows joins it. Every file of a list or glob keeps its copies until the last
        upload ends, so size it for the decompressed size of all the files, twice with ``"skip"``. None: the
        system's temporary folder (``TMPDIR``).
    :param pgp_conn_id: connection holding the private key (extra ``private_key``) and passphrase
        (password) for PGP-encrypted sources (``*.pgp``, ``*.gpg``), decrypted on the fly, never written
        in clear; see docs/connection.md (templated).

    The values of templated parameters are checked once rendered; every other value when the DAG is parsed.
    Airflow's own ``BaseOperator`` arguments (``task_id``, ``retries``, ...) are accepted as keywords too.
"""


def shared_arguments(base: type, local_variables: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``base.__init__`` found in a subclass ``__init__``'s ``locals()``, plus its ``kwargs``.

    :param base: the class whose ``__init__`` takes them.
    :param local_variables: ``locals()`` at the top of the subclass's ``__init__``.
    """
    names = [name for name in inspect.signature(base).parameters if name != "kwargs"]
    return {**{name: local_variables[name] for name in names}, **local_variables.get("kwargs", {})}


def refuse_unknown(operator: type, kwargs: Mapping[str, Any]) -> None:
    """Fail, naming the closest known parameter, when ``kwargs`` hold a keyword neither ``operator`` nor
    Airflow's ``BaseOperator`` takes: ``customer_identifer_column`` would otherwise be dropped or end in
    Airflow's bare list of "invalid arguments" (mypy and an IDE flag it first; this is for DAGs they do not check).
    """
    airflow = [name for name in inspect.signature(BaseOperator).parameters if name != "kwargs"]
    known = [name for name in inspect.signature(operator).parameters if name != "kwargs"] + airflow
    unknown = [name for name in kwargs if name not in known]
    if unknown:
        fixes = [
            f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, n=1)) else name
            for name in unknown
        ]
        raise CapillaryConfigError(
            f"{operator.__name__} has no parameter {', '.join(fixes)}. Its parameters are listed in docs/operators.md."
        )
