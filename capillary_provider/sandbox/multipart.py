"""Streaming multipart/form-data parser: the file part goes straight to disk, chunk by chunk."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

MAX_FIELD_BYTES = 64 * 1024


class FormError(ValueError):
    """The request body is not an acceptable multipart form."""


@dataclass
class ReceivedForm:
    """Text fields, and the file part stored at ``file_path`` (None when the form had no file part)."""

    fields: dict[str, str] = field(default_factory=dict)
    file_path: Path | None = None
    file_name: str | None = None
    file_size: int = 0


class _Collector:
    def __init__(self, dest_dir: Path, file_field: str) -> None:
        self.form = ReceivedForm()
        self._dest_dir = dest_dir
        self._file_field = file_field
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._out: BinaryIO | None = None
        self._in_file = False
        self.error: str | None = None

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self._name == self._file_field:
            if filename is None:
                self._fail(f"'{self._file_field}' must be a file part with a file name")
                return
            if self.form.file_path is not None:
                self._fail(f"only one '{self._file_field}' part is allowed")
                return
            path = self._dest_dir / f".incoming-{uuid.uuid4().hex}"
            self._out = path.open("wb")
            self.form.file_path = path
            self.form.file_name = filename.decode("utf-8", "replace")
            self._in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._in_file and self._out is not None:
            self._out.write(data[start:end])
            self.form.file_size += end - start
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                self._fail(f"form field '{self._name}' is too large")

    def on_part_end(self) -> None:
        if self._in_file and self._out is not None:
            self._out.close()
            self._out = None
        elif self._name and self.error is None:
            self.form.fields.setdefault(self._name, self._value.decode("utf-8", "replace"))
        self._in_file = False

    @property
    def unfinished(self) -> bool:
        return self._out is not None

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.form.file_path is not None:
            self.form.file_path.unlink(missing_ok=True)
            self.form.file_path = None


async def receive_form(
    content_type: str | None, chunks: AsyncIterator[bytes], dest_dir: Path, file_field: str = "file"
) -> ReceivedForm:
    """Read the whole body; store the ``file_field`` part in ``dest_dir``. Raises FormError.

    Any exception (including a client disconnect while reading) removes the partial file.
    """
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise FormError("Content-Type must be multipart/form-data with a boundary")
    dest_dir.mkdir(parents=True, exist_ok=True)
    collector = _Collector(dest_dir, file_field)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
        },
    )
    try:
        async for chunk in chunks:
            if chunk and collector.error is None:
                parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        collector.discard()
        if exc.__class__.__module__.startswith("python_multipart"):
            raise FormError(f"malformed multipart body: {exc}") from exc
        raise
    if collector.error is not None:
        collector.discard()
        raise FormError(collector.error)
    if collector.unfinished:
        collector.discard()
        raise FormError("the multipart body ended before the file part was complete")
    return collector.form
