"""A sharded, tokenized pretraining corpus on disk (numpy memory maps), built and read back.

``cloudphys data build-corpus INPUTS... --out DIR`` (:func:`build_token_corpus`) turns structure
files, CSVs (a ``scope``/``cloud`` or ``cif``/``structure`` column), JSON lines, data sets and plain
text files of SCOPE strings (one a line, ``.txt``/``.scope``, optionally ``.gz``) into::

    DIR/manifest.json                  format, tokenizer vocabulary hash, settings, inputs, shards, counts
    DIR/shard-00000.tokens.npy         uint16 token ids of the shard's strings, concatenated
    DIR/shard-00000.offsets.npy        int64, n + 1 offsets: string i is tokens[offsets[i]:offsets[i+1]]
    DIR/shard-00000.keys.npy           uint64 hash of each string's canonical SCOPE string (dedup, exclude, val split)
    DIR/shard-00000.failures.csv       items of the shard that could not be read, converted or tokenized
    DIR/failures.csv                   all failures (source, id, reason), written when the build completes

Why memory maps and not Arrow / Hugging Face ``datasets``: no new dependency (numpy is already
there), O(1) random access to any string (two offset reads and one slice of a mapped file), and a
reader's memory does not grow with the corpus (the operating system pages in only what is read).
Strings are stored concatenated with offsets rather than padded to a fixed width, so a corpus of
short strings (SCOPE strings have ~14-28 tokens on average) takes ~2 bytes a token + 16 bytes a string.

The build, in input order, ``shard_size`` input items at a time (one shard per chunk):

1. read the chunk's items; convert structures to SCOPE (``workers`` processes, through the per-user
   content-hash cache of :mod:`cloudphys.inputs.cache`);
2. render each string in ``dialect`` (default: the canonical default-dialect string), tokenize it
   with the project's closed vocabulary (``[CLS] ... [SEP]``) and hash its canonical default-dialect
   string (the leakage key of :mod:`cloudphys.training.exclusion`: one key per crystal, whichever
   dialect or setting it is written in);
3. leave out strings whose key is excluded (``exclude`` sources: e.g. every test string of the
   downstream tasks; ``exclude_ids``: item ids) and strings whose key was already seen in an earlier
   shard or earlier in this one (first occurrence wins);
4. write the shard's files, then the manifest (atomically, :mod:`cloudphys.outputs`).

A killed build is resumed by running the same command again: the shards listed in the manifest are
kept (their keys re-seed the de-duplication) and their input items skipped. Nothing is dropped
silently: failures are listed per item, duplicates and excluded strings are counted per shard.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["CorpusBuild", "TokenCorpus", "build_token_corpus", "key_hash", "leakage_key", "string_keys", "vocab_sha256"]

FORMAT = "cloudphys-token-corpus"
VERSION = 1
TOKEN_DTYPE = np.uint16
TEXT_SUFFIXES = (".txt", ".scope", ".txt.gz", ".scope.gz")


def vocab_sha256(vocab: Sequence[str] | None = None) -> str:
    """SHA-256 of the tokenizer vocabulary in id order (a corpus is readable only by the same ids)."""
    if vocab is None:
        from ..tokenizer import build_vocabulary

        vocab = build_vocabulary()
    return hashlib.sha256("\n".join(vocab).encode()).hexdigest()


def key_hash(key: str) -> int:
    """64-bit hash (blake2b) of a leakage key, as stored in ``shard-*.keys.npy``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=1 << 16)
def leakage_key(text: str) -> str:
    """What two strings must share to be the same crystal: the canonical default-dialect string
    (the stripped text itself where it does not parse). The leakage rule of ``train.exclude`` and
    ``pretrain.exclude`` (:mod:`cloudphys.training.exclusion`) uses this same key."""
    from ..errors import ScopeError
    from ..scope import canonical_text

    text = str(text).strip()
    try:
        return canonical_text(text, "default")
    except (ScopeError, ValueError, KeyError):
        return text


def string_keys(strings: Sequence[str]) -> np.ndarray:
    """The stored key hashes of SCOPE strings (their canonical default-dialect string, hashed)."""
    return np.array([key_hash(leakage_key(s)) for s in strings], dtype=np.uint64)


# ----------------------------------------------------------------------------- encoding (workers)

_VOCAB: dict[str, int] | None = None


def _vocab() -> dict[str, int]:
    global _VOCAB
    if _VOCAB is None:
        from ..tokenizer import build_vocabulary

        _VOCAB = {t: i for i, t in enumerate(build_vocabulary())}
    return _VOCAB


def token_ids(text: str) -> list[int]:
    """Token ids of one SCOPE string, ``[CLS] ... [SEP]`` (the tokenizer's split: whitespace and ``|``).

    :raises KeyError: a token outside the vocabulary (its text).
    """
    v = _vocab()
    out = [v["[CLS]"]]
    for tok in text.split():
        if "|" in tok and tok != "|":
            for part in tok.replace("|", " | ").split():
                out.append(v[part])
        else:
            out.append(v[tok])
    out.append(v["[SEP]"])
    return out


def _encode(args: tuple[list[str], str, Any, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Strings → (tokens, lengths, key hashes, [(position, reason)]) (a worker's job)."""
    strings, dialect, table, max_length = args
    from .. import scope

    toks: list[int] = []
    lengths: list[int] = []
    keys: list[int] = []
    bad: list[tuple[int, str]] = []
    for k, text in enumerate(strings):
        try:
            canon = scope.canonical_text(text, "default")
            shown = canon if dialect == "default" else scope.parse(text).render(dialect, table)
            ids = token_ids(shown)
        except KeyError as exc:
            bad.append((k, f"token {exc} is not in the tokenizer vocabulary"))
            continue
        except Exception as exc:  # any reason: listed per item
            bad.append((k, f"not a SCOPE string: {exc}"))
            continue
        if len(ids) > max_length:
            bad.append((k, f"{len(ids)} tokens > max_length {max_length} (strings are never truncated)"))
            continue
        toks.extend(ids)
        lengths.append(len(ids))
        keys.append(key_hash(canon))
    return (np.array(toks, dtype=TOKEN_DTYPE), np.array(lengths, dtype=np.int64),
            np.array(keys, dtype=np.uint64), bad)


# ----------------------------------------------------------------------------- reading inputs


@dataclass
class _Chunk:
    ids: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (source, id, reason)
    n_items: int = 0


def _is_text(path: Path) -> bool:
    return path.is_file() and any(path.name.endswith(s) for s in TEXT_SUFFIXES)


def _open_lines(path: Path) -> Iterator[str]:
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as fh:
        yield from fh


def _count_items(src: str, dialect: str) -> int | None:
    p = Path(src).expanduser()
    if _is_text(p):
        return sum(1 for line in _open_lines(p) if line.strip())
    return None


def _items(src: str, *, start: int, size: int, dialect: str, table: Any, workers: int,
           exclude_ids: set[str]) -> Iterator[_Chunk]:
    """Chunks of ``size`` items of one source from item ``start`` on (strings, ids, failures)."""
    path = Path(src).expanduser()
    if _is_text(path):
        chunk = _Chunk()
        pos = 0
        for line_no, line in enumerate(_open_lines(path), start=1):
            text = line.strip()
            if not text:
                continue
            pos += 1
            if pos <= start:
                continue
            chunk.n_items += 1
            ident = f"{src}:{line_no}"
            if ident not in exclude_ids:
                chunk.ids.append(ident)
                chunk.strings.append(text)
            if chunk.n_items == size:
                yield chunk
                chunk = _Chunk()
        if chunk.n_items:
            yield chunk
        return
    if not path.exists():  # a registered data set: strings, no conversion
        from .sources import read_source

        got = read_source(src)
        pairs = list(zip(got.ids, got.strings))
        for a in range(start, len(pairs), size):
            part = pairs[a : a + size]
            yield _Chunk([i for i, _ in part if i not in exclude_ids],
                         [s for i, s in part if i not in exclude_ids], [], len(part))
        return
    from ..inputs import read_inputs, to_records

    items = read_inputs([path])
    if items and all(it.whole_source for it in items):
        raise DataError(f"{src}: {items[0].error}")
    for a in range(start, len(items), size):
        part = [it for it in items[a : a + size] if it.id not in exclude_ids]
        to_records(part, dialect="default", workers=workers, progress=False)
        chunk = _Chunk(n_items=len(items[a : a + size]))
        for it in part:
            if it.error is None and it.scope:
                chunk.ids.append(it.id)
                chunk.strings.append(it.scope)
            else:
                chunk.failures.append((src, it.id, it.error or "empty SCOPE string"))
        yield chunk


# ----------------------------------------------------------------------------- the build


@dataclass
class CorpusBuild:
    """What :func:`build_token_corpus` did."""

    out_dir: str
    strings: int = 0
    tokens: int = 0
    shards: int = 0
    resumed_shards: int = 0
    items: int = 0
    duplicates: int = 0
    excluded: int = 0
    failures: int = 0
    failures_file: str | None = None

    def summary(self) -> str:
        lines = [f"{self.items} input items -> {self.strings} strings ({self.tokens} tokens) in {self.shards} shards "
                 f"in {self.out_dir}" + (f" ({self.resumed_shards} kept from an earlier run)" if self.resumed_shards
                                         else ""),
                 f"duplicates removed {self.duplicates}, excluded {self.excluded}, failed {self.failures}"]
        if self.failures_file:
            lines.append(f"failures listed in {self.failures_file}")
        return "\n".join(lines)


def _source_fingerprint(src: str) -> dict[str, Any]:
    p = Path(src).expanduser()
    if p.is_file():
        st = p.stat()
        return {"source": src, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if p.is_dir():
        return {"source": src, "files": sorted(str(q.relative_to(p)) for q in p.rglob("*") if q.is_file())}
    return {"source": src, "dataset": True}


def _exclude_hashes(exclude: Sequence[str], dialect_table: Any,
                    workers: int) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """Sorted unique key hashes of every string of the ``exclude`` sources (and their failures)."""
    keys: list[np.ndarray] = []
    failures: list[tuple[str, str, str]] = []
    for src in exclude:
        for chunk in _items(src, start=0, size=1 << 16, dialect="default", table=dialect_table, workers=workers,
                            exclude_ids=set()):
            failures.extend((f"exclude {s}", i, why) for s, i, why in chunk.failures)
            keys.append(string_keys(chunk.strings))
    if not keys:
        return np.zeros(0, dtype=np.uint64), failures
    return np.unique(np.concatenate(keys)), failures


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_set, values)
    pos[pos == len(sorted_set)] = 0
    return sorted_set[pos] == values


def _save_npy(path: Path, arr: np.ndarray) -> None:
    from ..outputs import atomic_write

    with atomic_write(path, "wb", encoding=None) as fh:
        np.save(fh, arr, allow_pickle=False)


def _write_failures(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    from ..outputs import atomic_write, text_cell

    with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "id", "reason"])
        w.writerows([text_cell(str(c)) for c in row] for row in rows)


def build_token_corpus(
    inputs: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    exclude: Sequence[str] = (),
    exclude_ids: Sequence[str] = (),
    dialect: str = "default",
    workers: int = 1,
    shard_size: int = 100_000,
    max_length: int = 256,
    overwrite: bool = False,
    progress: bool = False,
) -> CorpusBuild:
    """Build (or resume building) a sharded token corpus in ``out_dir`` (see the module docstring).

    :param inputs: files, folders, data set names (``NAME[:SPLIT]``) and text files of SCOPE strings.
    :param exclude: sources whose crystals are left out (same forms as ``inputs``).
    :param exclude_ids: item ids to leave out (e.g. Materials Project ids of a test split).
    :param dialect: dialect the strings are stored in (``default``: canonical; ``cloud``).
    :param workers: processes for the structure conversion and the tokenization.
    :param shard_size: input items per shard.
    :param max_length: the most tokens a string may have (``[CLS]``/``[SEP]`` included); longer ones
        are listed as failures, never truncated.
    :param overwrite: start again in an ``out_dir`` built with other settings (otherwise refused).
    :raises DataError: no inputs, a bad setting, ``out_dir`` holds another build, a whole input unusable.
    """
    from ..outputs import write_json

    inputs = [str(s) for s in inputs]
    if not inputs:
        raise DataError("build-corpus needs at least one input")
    if dialect not in ("default", "cloud"):
        raise DataError(f"unknown dialect {dialect!r}; choose default or cloud")
    if shard_size < 1 or max_length < 3 or workers < 1:
        raise DataError("shard_size and workers must be >= 1 and max_length >= 3")
    table = None
    if dialect == "cloud":
        from .cloud import generator_table

        table = generator_table()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ex_hash, ex_fail = _exclude_hashes(exclude, table, workers)
    ex_ids = sorted({str(i) for i in exclude_ids})
    settings = {
        "dialect": dialect, "max_length": max_length, "shard_size": shard_size,
        "inputs": [_source_fingerprint(s) for s in inputs],
        "exclude": [_source_fingerprint(s) for s in exclude],
        "exclude_sha256": hashlib.sha256(ex_hash.tobytes() + "\n".join(ex_ids).encode()).hexdigest(),
    }
    manifest_path = out / "manifest.json"
    shards: list[dict[str, Any]] = []
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        same = old.get("format") == FORMAT and old.get("settings") == settings and \
            old.get("vocab_sha256") == vocab_sha256()
        if same:
            shards = [s for s in old.get("shards", [])
                      if all((out / s[f]).is_file() for f in ("tokens", "offsets", "keys"))]
        elif not overwrite:
            raise DataError(f"{out} holds a corpus built from other inputs or settings; pass --overwrite to "
                            "rebuild it, or use a new directory")
    if not shards:  # a fresh build: remove shards of an earlier one
        for p in out.glob("shard-*"):
            p.unlink()
        (out / "failures.csv").unlink(missing_ok=True)
    report = CorpusBuild(out_dir=str(out), resumed_shards=len(shards))
    seen = np.unique(np.concatenate([np.load(out / s["keys"]) for s in shards])) if shards else np.zeros(0, np.uint64)
    done_items = shards[-1]["stop"] if shards else 0

    def manifest(complete: bool) -> dict[str, Any]:
        counts = {k: int(sum(s[k] for s in shards)) for k in ("items", "strings", "duplicates", "excluded", "failures")}
        counts["tokens"] = int(sum(s["tokens_count"] for s in shards))
        counts["longest"] = max((int(s["longest"]) for s in shards), default=0)
        counts["failures"] += len(ex_fail)
        return {"format": FORMAT, "version": VERSION, "vocab_sha256": vocab_sha256(), "vocab_size": len(_vocab()),
                "token_dtype": np.dtype(TOKEN_DTYPE).name, "key": "blake2b-64 of the canonical default-dialect string",
                "settings": settings, "complete": complete, "counts": counts, "shards": shards,
                "exclude_failures": [list(f) for f in ex_fail]}

    bar = None
    if progress:  # input items done (the total is known when every input is a text file)
        from tqdm.auto import tqdm

        counts = [_count_items(s, dialect) for s in inputs]
        bar = tqdm(total=sum(counts) if None not in counts else None, desc="build-corpus", unit="item")  # type: ignore[arg-type]
    if bar is not None:
        bar.update(done_items)
    pool = None
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers)
    try:
        pos = 0  # global input position of the next item
        for src in inputs:
            n_src = _count_items(src, dialect)
            if n_src is not None and pos + n_src <= done_items:
                pos += n_src
                continue
            skip = max(0, done_items - pos)
            pos += skip
            for chunk in _items(src, start=skip, size=shard_size, dialect=dialect, table=table, workers=workers,
                                exclude_ids=set(ex_ids)):
                k = len(shards)
                name = f"shard-{k:05d}"
                parts = [chunk.strings[a : a + max(1, len(chunk.strings) // (4 * workers) + 1)]
                         for a in range(0, len(chunk.strings), max(1, len(chunk.strings) // (4 * workers) + 1))]
                jobs = [(p, dialect, table, max_length) for p in parts]
                results = pool.map(_encode, jobs) if pool is not None else [_encode(j) for j in jobs]
                failures = list(chunk.failures)
                toks, lens, keys = [], [], []
                base = 0
                for p, (t, ln, kh, bad) in zip(parts, results):
                    failures.extend((src, chunk.ids[base + i], why) for i, why in bad)
                    toks.append(t)
                    lens.append(ln)
                    keys.append(kh)
                    base += len(p)
                tok = np.concatenate(toks) if toks else np.zeros(0, TOKEN_DTYPE)
                ln = np.concatenate(lens) if lens else np.zeros(0, np.int64)
                kh = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
                excluded = in_sorted(kh, ex_hash)
                first = np.zeros(len(kh), dtype=bool)
                first[np.unique(kh, return_index=True)[1]] = True
                keep = first & ~in_sorted(kh, seen) & ~excluded
                n_dup = int((~keep & ~excluded).sum())
                starts = np.concatenate([[0], np.cumsum(ln)])
                sel = np.flatnonzero(keep)
                if len(sel) < len(kh):
                    tok = np.concatenate([tok[starts[i] : starts[i + 1]] for i in sel]) if len(sel) else \
                        np.zeros(0, TOKEN_DTYPE)
                    ln = ln[sel]
                offsets = np.concatenate([[0], np.cumsum(ln)]).astype(np.int64)
                kept_keys = kh[sel]
                _save_npy(out / f"{name}.tokens.npy", tok.astype(TOKEN_DTYPE))
                _save_npy(out / f"{name}.offsets.npy", offsets)
                _save_npy(out / f"{name}.keys.npy", kept_keys)
                if failures:
                    _write_failures(out / f"{name}.failures.csv", failures)
                start = pos
                pos += chunk.n_items
                by_id = chunk.n_items - len(chunk.strings) - len(chunk.failures)  # left out by --exclude-ids
                shards.append({"name": name, "tokens": f"{name}.tokens.npy", "offsets": f"{name}.offsets.npy",
                               "keys": f"{name}.keys.npy",
                               "failures_file": f"{name}.failures.csv" if failures else None,
                               "start": start, "stop": pos, "items": chunk.n_items, "strings": int(len(sel)),
                               "tokens_count": int(len(tok)), "longest": int(ln.max()) if len(ln) else 0,
                               "duplicates": n_dup,
                               "excluded": int(excluded.sum()) + by_id, "failures": len(failures)})
                seen = np.union1d(seen, kept_keys)
                write_json(manifest_path, manifest(False))
                if bar is not None:
                    bar.update(chunk.n_items)
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    all_fail: list[tuple[str, str, str]] = list(ex_fail)
    for s in shards:
        if s.get("failures_file"):
            with open(out / s["failures_file"], newline="", encoding="utf-8") as fh:
                all_fail.extend(tuple(r) for r in list(csv.reader(fh))[1:])  # type: ignore[misc]
    if all_fail:
        _write_failures(out / "failures.csv", all_fail)
        report.failures_file = str(out / "failures.csv")
    final = manifest(True)
    write_json(manifest_path, final)
    c = final["counts"]
    report.strings, report.tokens, report.items = c["strings"], c["tokens"], c["items"]
    report.duplicates, report.excluded, report.failures = c["duplicates"], c["excluded"], c["failures"]
    report.shards = len(shards)
    if report.strings == 0:
        raise DataError(f"the corpus in {out} is empty after exclusion and de-duplication")
    return report


# ----------------------------------------------------------------------------- reading


def _open_npy(path: Path, dtype: Any) -> tuple[int, int]:
    """An open file descriptor of a 1-D little-endian ``.npy`` file of ``dtype`` and where its data start."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dt = read(fh)
        start = fh.tell()
    if len(shape) != 1 or np.dtype(dt) != np.dtype(dtype).newbyteorder("<"):
        raise DataError(f"{path}: expected a 1-D {np.dtype(dtype).name} array, found {dt} {shape}")
    return os.open(path, os.O_RDONLY), start


class TokenCorpus:
    """Random access to a built corpus: ``len(c)``, ``c[i]`` (int64 token ids of string ``i``), ``c.keys()``.

    The shards are ``.npy`` files any reader can memory-map (``np.load(path, mmap_mode="r")``); this
    reader fetches each row with two positioned reads (``os.pread``: its two offsets, then its tokens),
    so a process holds no pages of the corpus at all -- memory-mapped random access would leave the
    kernel's read-around pages in the process's resident set, growing with the rows visited. A corpus
    whose vocabulary hash differs from this tokenizer's, or an unfinished build, is refused.
    """

    def __init__(self, path: str | os.PathLike[str], *, allow_incomplete: bool = False) -> None:
        self.path = Path(path).expanduser()
        mf = self.path / "manifest.json"
        if not mf.is_file():
            raise DataError(f"{self.path} is not a token corpus (no manifest.json); build one with "
                            "'cloudphys data build-corpus INPUTS --out DIR'")
        m = json.loads(mf.read_text())
        if m.get("format") != FORMAT:
            raise DataError(f"{mf}: not a cloudphys token corpus (format {m.get('format')!r})")
        if m.get("vocab_sha256") != vocab_sha256():
            raise DataError(f"{self.path}: built with another tokenizer vocabulary; rebuild it with this version")
        if not m.get("complete") and not allow_incomplete:
            raise DataError(f"{self.path}: the build did not finish; run the same build-corpus command again "
                            "to resume it")
        self.manifest = m
        self.shards = [s for s in m["shards"] if s["strings"] > 0]
        self.max_length = int(m["settings"]["max_length"])
        self.longest = int(m["counts"]["longest"])  # tokens of the longest string ([CLS]/[SEP] included)
        self.dialect = str(m["settings"]["dialect"])
        self._cum = np.concatenate([[0], np.cumsum([s["strings"] for s in self.shards])]).astype(np.int64)
        self._files: dict[int, tuple[int, int, int, int]] = {}

    def __len__(self) -> int:
        return int(self._cum[-1])

    def _shard(self, k: int) -> tuple[int, int, int, int]:
        """``(tokens fd, tokens data offset, offsets fd, offsets data offset)`` of shard ``k`` (opened once)."""
        got = self._files.get(k)
        if got is None:
            s = self.shards[k]
            got = (*_open_npy(self.path / s["tokens"], TOKEN_DTYPE), *_open_npy(self.path / s["offsets"], np.int64))
            self._files[k] = got
        return got

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"corpus index {i} out of range (0..{len(self) - 1})")
        k = int(np.searchsorted(self._cum, i, side="right") - 1)
        tfd, tpos, ofd, opos = self._shard(k)
        j = i - int(self._cum[k])
        a, b = np.frombuffer(os.pread(ofd, 16, opos + 8 * j), dtype="<i8")
        raw = os.pread(tfd, 2 * int(b - a), tpos + 2 * int(a))
        return np.frombuffer(raw, dtype="<u2").astype(np.int64)

    def close(self) -> None:
        """Close the shard files (reopened on the next read)."""
        for got in self._files.values():
            os.close(got[0])
            os.close(got[2])
        self._files = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def keys(self) -> Iterator[np.ndarray]:
        """The key hashes shard by shard (each shard's array read and released: flat memory)."""
        for s in self.shards:
            yield np.load(self.path / s["keys"])

    def text(self, i: int) -> str:
        """String ``i`` decoded back to text (without ``[CLS]``/``[SEP]``)."""
        from ..tokenizer import build_vocabulary

        vocab = build_vocabulary()
        return " ".join(vocab[t] for t in self[i][1:-1])

    def subset(self, indices: Sequence[int] | np.ndarray, out_dir: str | os.PathLike[str]) -> TokenCorpus:
        """Write strings ``indices`` (in that order) as a new one-shard corpus in ``out_dir`` (e.g. the
        nested subsets of a scaling study); returns it."""
        from ..outputs import write_json

        idx = np.asarray(indices, dtype=np.int64)
        rows = [self[int(i)] for i in idx]
        key_all = np.concatenate(list(self.keys())) if len(self) else np.zeros(0, np.uint64)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for p in out.glob("shard-*"):
            p.unlink()
        lens = np.array([len(r) for r in rows], dtype=np.int64)
        tok = np.concatenate(rows).astype(TOKEN_DTYPE) if rows else np.zeros(0, TOKEN_DTYPE)
        name = "shard-00000"
        _save_npy(out / f"{name}.tokens.npy", tok)
        _save_npy(out / f"{name}.offsets.npy", np.concatenate([[0], np.cumsum(lens)]).astype(np.int64))
        _save_npy(out / f"{name}.keys.npy", key_all[idx])
        m = json.loads(json.dumps(self.manifest))
        m["settings"] = {**m["settings"], "subset_of": str(self.path), "subset_sha256":
                         hashlib.sha256(idx.tobytes()).hexdigest()}
        m["shards"] = [{"name": name, "tokens": f"{name}.tokens.npy", "offsets": f"{name}.offsets.npy",
                        "keys": f"{name}.keys.npy", "failures_file": None, "start": 0, "stop": len(idx),
                        "items": len(idx), "strings": len(idx), "tokens_count": int(len(tok)),
                        "longest": int(lens.max()) if len(lens) else 0, "duplicates": 0, "excluded": 0,
                        "failures": 0}]
        m["counts"] = {"items": len(idx), "strings": len(idx), "tokens": int(len(tok)),
                       "longest": int(lens.max()) if len(lens) else 0, "duplicates": 0, "excluded": 0, "failures": 0}
        m["complete"] = True
        m.pop("exclude_failures", None)
        write_json(out / "manifest.json", m)
        return TokenCorpus(out)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers: reopen in the child
        d = dict(self.__dict__)
        d["_files"] = {}
        return d
