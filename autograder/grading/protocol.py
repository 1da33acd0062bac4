"""Wire format between the host, the worker and the child that runs a copy's cells.

Frames are a 4-byte big-endian length and a payload. Host -> worker payloads are JSON jobs;
worker -> host payloads are JSON messages (``ready``, ``job``, ``cell``, ``done``). Child -> worker
payloads start with one byte: ``o``/``e`` (UTF-8 text written to sys.stdout/sys.stderr) or ``j``
(a JSON event). The reader of a frame never trusts its length: ``FrameParser`` keeps at most
``max_frame`` bytes and reports a bigger frame as ``OVERSIZED`` while skipping it.

(``multiprocessing.connection`` has the same framing but a blocking, all-or-nothing receive that
closes nothing and skips nothing: a worker reads its child without blocking, from a poll loop.)
Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

HEADER = struct.Struct(">I")


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame, looping over partial writes."""
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int) -> bytes | None:
    """Blocking read of exactly ``size`` bytes; None at end of file."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    return read_exact(fd, HEADER.unpack(head)[0])


OVERSIZED = object()  # yielded by FrameParser in place of a frame that was too big to keep


class FrameParser:
    """Incremental frame parser with bounded memory: a frame larger than ``max_frame`` is skipped."""

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[Any]:
        frames: list[Any] = []
        view = memoryview(data)
        while view:
            if self._skip:
                taken = min(self._skip, len(view))
                self._skip -= taken
                view = view[taken:]
                continue
            self._buffer += view
            view = memoryview(b"")
            while len(self._buffer) >= HEADER.size:
                size = HEADER.unpack_from(self._buffer)[0]
                if size > self.max_frame:
                    frames.append(OVERSIZED)
                    rest = self._buffer[HEADER.size :]
                    self._buffer = bytearray()
                    self._skip = size
                    view = memoryview(bytes(rest))
                    break
                if len(self._buffer) < HEADER.size + size:
                    break
                frames.append(bytes(self._buffer[HEADER.size : HEADER.size + size]))
                del self._buffer[: HEADER.size + size]
        return frames


def json_default(value: Any) -> Any:
    """Make kernel outputs JSON-able like ipykernel's json_clean (bytes become base64)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False).encode("utf-8", "replace")
