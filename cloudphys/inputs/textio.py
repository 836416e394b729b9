"""The one opener of input files: UTF-8 text, gunzipped on the fly, read within a byte budget.

* :func:`open_text` -- a text stream of a plain or ``.gz`` file;
* :func:`read_text` -- a whole (single-structure) file, at most ``max_chars`` characters after
  decompression (a gzip bomb costs ``max_chars``, never gigabytes);
* :func:`iter_lines` -- the lines of a JSON-lines file; an over-long line is skipped in chunks
  (never held in memory) and reported, and reading goes on with the next line;
* :func:`iter_csv_rows` -- the rows of a CSV file, each row within the budget; an over-long or
  malformed row is reported and reading goes on with the next row. The ``csv`` module's field-size
  limit is raised to the budget only around each read and restored at once (never globally).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "READ_ERRORS",
    "CsvRow",
    "CsvRowError",
    "is_gzip_name",
    "iter_csv_rows",
    "iter_lines",
    "loads_json",
    "open_binary",
    "open_text",
    "read_error_reason",
    "read_text",
    "unreadable_message",
]

#: What reading an input file can raise: not UTF-8, a corrupt or truncated gzip, an unreadable
#: file (permissions, a folder, I/O), a malformed CSV (e.g. a NUL byte).
READ_ERRORS: tuple[type[BaseException], ...] = (UnicodeDecodeError, OSError, EOFError, zlib.error, csv.Error)

_CHUNK = 1 << 20

#: Deepest nesting of arrays/objects accepted in a JSON input (a structure document needs about 6).
MAX_JSON_DEPTH = 100
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def loads_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` after checking that arrays/objects nest at most ``max_depth`` deep.

    Deep nesting is refused before decoding: the C decoder recurses per level, and with the
    interpreter's recursion limit raised (by any library) a small file of ``[[[[...`` overflows the C
    stack -- a crash, not an exception. :raises ValueError: not JSON, or nested too deep.
    """
    if text.count("[") + text.count("{") > max_depth:
        depth = 0
        for m in _JSON_TOKENS.finditer(text):
            c = m.group()
            if c in "[{":
                depth += 1
                if depth > max_depth:
                    raise ValueError(f"arrays/objects nested more than {max_depth} levels deep")
            elif c in "]}":
                depth -= 1
    return json.loads(text)


def is_gzip_name(path: Path | str) -> bool:
    return str(path).lower().endswith(".gz")


def open_binary(path: Path | str) -> io.BufferedIOBase:
    """A binary stream of ``path``, gunzipped on the fly if its name ends in ``.gz``."""
    if is_gzip_name(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def open_text(path: Path | str, newline: str | None = None) -> io.TextIOBase:
    """A UTF-8 text stream of ``path``, gunzipped on the fly if its name ends in ``.gz``."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline=newline)  # type: ignore[return-value]


def read_text(path: Path | str, max_chars: int) -> tuple[str | None, int]:
    """``(text, size)`` of a whole file; ``(None, size)`` when it has more than ``max_chars``
    characters (``size`` is then ``max_chars + 1``: reading stopped there)."""
    with open_text(path, newline="") as fh:
        # a regular file of at most max_chars bytes has at most max_chars characters: read it whole
        # (read(n) sizes its buffer by n -- a 32 MiB budget costs ~0.1 ms per small file)
        text = fh.read() if _small_regular_file(fh, max_chars) else fh.read(max_chars + 1)
    if len(text) > max_chars:
        return None, max_chars + 1
    return text, len(text)


def _small_regular_file(fh: Any, max_bytes: int) -> bool:
    """Whether ``fh`` reads a plain regular file (not gzip, a pipe or a device) of at most ``max_bytes`` bytes."""
    raw = getattr(fh, "buffer", None)
    if raw is None or isinstance(raw, gzip.GzipFile):
        return False
    try:
        st = os.fstat(raw.fileno())
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= max_bytes


def _skip_line(fh: io.TextIOBase, first: str) -> tuple[int, int]:
    """Consume the rest of a physical line whose start ``first`` was read; ``(chars, quotes)``."""
    chars, quotes = len(first), first.count('"')
    line = first
    while not line.endswith(("\n", "\r")):
        line = fh.readline(_CHUNK)
        if not line:
            break
        chars += len(line)
        quotes += line.count('"')
    return chars, quotes


def iter_lines(fh: io.TextIOBase, max_chars: int) -> Iterator[tuple[int, str | None, int]]:
    """``(line number, line, size)`` for each line; ``line`` is ``None`` for a line over
    ``max_chars`` characters (skipped without keeping it in memory; ``size`` its length)."""
    lineno = 0
    while True:
        line = fh.readline(max_chars + 1)
        if not line:
            return
        lineno += 1
        if len(line.rstrip("\r\n")) > max_chars:
            size, _ = _skip_line(fh, line)
            yield lineno, None, size
        else:
            yield lineno, line, len(line)


class _TooBig(Exception):
    pass


class _RowLines:
    """Physical lines fed to ``csv.reader``, counting the size and quotes of the current row."""

    def __init__(self, fh: io.TextIOBase, max_chars: int) -> None:
        self.fh, self.max = fh, max_chars
        self.lineno = 0
        self.row_chars = self.row_quotes = 0
        self.ended = True  # the last line read ended with a newline (or nothing was read)

    def start_row(self) -> None:
        self.row_chars = self.row_quotes = 0

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(self.max + 1)
        if not line:
            raise StopIteration
        self.lineno += 1
        if len(line.rstrip("\r\n")) > self.max or self.row_chars + len(line) > self.max + 2:
            chars, quotes = _skip_line(self.fh, line)
            self.row_chars += chars
            self.row_quotes += quotes
            raise _TooBig()
        self.row_chars += len(line)
        self.row_quotes += line.count('"')
        return line

    def skip_rest_of_row(self) -> None:
        """After a failed row: read on (without keeping anything) to the line that closes its quotes."""
        while self.row_quotes % 2:
            line = self.fh.readline(_CHUNK)
            if not line:
                return
            self.lineno += 1
            chars, quotes = _skip_line(self.fh, line)
            self.row_chars += chars
            self.row_quotes += quotes


@contextmanager
def _field_limit(n: int) -> Iterator[None]:
    old = csv.field_size_limit(n)
    try:
        yield
    finally:
        csv.field_size_limit(old)


@dataclass(frozen=True)
class CsvRow:
    """One CSV record: its first and last physical line and its fields."""

    first_line: int
    last_line: int
    fields: list[str]


@dataclass(frozen=True)
class CsvRowError:
    """A CSV record that could not be read (too big, malformed); reading went on after it."""

    first_line: int
    last_line: int
    reason: str


def iter_csv_rows(fh: io.TextIOBase, max_chars: int) -> Iterator[CsvRow | CsvRowError]:
    """Records of a CSV stream (opened with ``newline=""``); blank records are skipped.

    A record over ``max_chars`` characters, or one the ``csv`` module refuses (a NUL byte...), is
    one :class:`CsvRowError`; the next record is read with a fresh reader. Errors of the stream
    itself (not UTF-8, corrupt gzip) propagate.
    """
    lines = _RowLines(fh, max_chars)
    reader = csv.reader(lines)
    while True:
        lines.start_row()
        first = lines.lineno + 1
        try:
            with _field_limit(max_chars + 1):
                fields = next(reader)
        except StopIteration:
            return
        except _TooBig:
            lines.skip_rest_of_row()
            yield CsvRowError(first, lines.lineno, f"the row is larger than {max_chars:,} characters "
                                                   "(max_bytes; raise it with --max-item-bytes)")
            reader = csv.reader(lines)
            continue
        except csv.Error as exc:
            lines.skip_rest_of_row()
            yield CsvRowError(first, lines.lineno, f"malformed CSV ({exc})")
            reader = csv.reader(lines)
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        yield CsvRow(first, lines.lineno, fields)


def read_error_reason(exc: BaseException) -> str:
    """A short reason for one of :data:`READ_ERRORS` (without the file name)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} cannot be decoded); save it as UTF-8"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, EOFError):
        return "the gzip file is truncated (the compressed data ends before its end-of-stream marker)"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, csv.Error):
        return f"malformed CSV ({exc})"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return f"{type(exc).__name__}: {exc}"


def unreadable_message(path: Path | str | os.PathLike[str], lines_read: int, exc: BaseException) -> str:
    """The error of an input file that could not be read from line ``lines_read + 1`` on."""
    reason = read_error_reason(exc)
    if lines_read == 0:
        return f"{path}: cannot read the file: {reason}"
    return f"{path}: cannot read from line {lines_read + 1} on: {reason} (lines 1-{lines_read} were read)"
