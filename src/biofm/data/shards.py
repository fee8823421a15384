"""Prepared corpora: token ids in sharded, memory-mapped files with an index.

`biofm prepare` tokenises a corpus once (`prepare_corpus`); pretraining then
reads it lazily (`ShardedCorpus`), a few shards at a time within a memory
budget, so a corpus far larger than RAM trains without ever being loaded.

    DIR/index.json                  format, dtype, counts, shards and checksums per split
    DIR/tokenizer.json              the tokenizer the ids come from
    DIR/{split}-NNNNN.tokens.bin    token ids of consecutive sequences (uint16, or
                                    int32 when the vocabulary exceeds 65,536)
    DIR/{split}-NNNNN.offsets.bin   int64 start of each sequence in the shard, then the end
    DIR/{split}.lengths.bin         int32 tokens per sequence of the whole split

`split` is "train" or "valid": each record is assigned at prepare time by a
seeded draw. The directory is written under a temporary name beside DIR and
renamed into place only when complete. With `workers` > 1 a process pool
tokenises chunks of records while this process reads and writes; the files
are byte-for-byte those of one worker.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import shutil
import tempfile
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.io import atomic_write_text, swap_in_directory
from biofm.tokenizer import Tokenizer, load_tokenizer

INDEX_FILE = "index.json"
FORMAT = {"format": "biofm-corpus", "version": 1}
SPLITS = ("train", "valid")
DEFAULT_SHARD_TOKENS = 1 << 24  # 32 MiB of uint16 ids per shard
PREPARE_FIX = "run `biofm prepare` again to rebuild the directory"
CHUNK_RECORDS = 512  # records per task sent to a tokenising worker


def is_prepared_corpus(path: str | Path | None) -> bool:
    """True for a directory written by `prepare_corpus` (it holds index.json)."""
    return path is not None and (Path(path) / INDEX_FILE).is_file()


def prepare_corpus(records: Iterable[Record | str], tokenizer: Tokenizer, out_dir: str | Path, *,
                   shard_tokens: int = DEFAULT_SHARD_TOKENS, max_len: int = 1026,
                   valid_fraction: float = 0.0, seed: int = 0,
                   meta: dict[str, Any] | None = None, workers: int = 1) -> dict[str, Any]:
    """Tokenise `records` into shards under `out_dir`; return the index.

    Sequences are encoded with `max_length=max_len` (the tokenizer truncates),
    and a record goes to the valid split with probability `valid_fraction`
    (one draw per record from `seed`). Memory stays O(shard_tokens) (with
    `workers` > 1, plus a few chunks of records in flight). `meta` (modality,
    source, ...) is stored in the index. `workers`: tokenising processes (1:
    this process alone); the output does not depend on it.
    """
    out_dir = Path(out_dir)
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32)
        writers = {split: _SplitWriter(staging, split, dtype, shard_tokens) for split in SPLITS}
        rng = np.random.default_rng(seed)
        splits_of = (valid_fraction > 0 and rng.random() < valid_fraction
                     for _ in itertools.count())  # one draw per record, in order
        texts = (record.data if isinstance(record, Record) else record for record in records)
        for held_out, ids in zip(splits_of, _encoded(texts, tokenizer, max_len, workers, dtype)):
            writers["valid" if held_out else "train"].add(ids)
        splits = {split: writer.close() for split, writer in writers.items()}
        if not splits["train"]["sequences"]:
            raise BiofmError("no records to prepare (or all went to the valid split)",
                             path=(meta or {}).get("source"),
                             fix="check the input, or lower the valid fraction")
        tokenizer.save(staging)
        index = {**FORMAT, "dtype": dtype.name, "max_len": max_len, "shard_tokens": shard_tokens,
                 "valid_fraction": valid_fraction, "seed": seed, **(meta or {}), "splits": splits}
        atomic_write_text(staging / INDEX_FILE, json.dumps(index, indent=1))
        swap_in_directory(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap
    return index


def _encoded(texts: Iterable[Any], tokenizer: Tokenizer, max_len: int, workers: int,
             dtype: np.dtype) -> Iterator[np.ndarray]:
    """Each text's token ids, in order; with `workers` > 1 from a process pool that
    holds at most 2 x workers chunks of `CHUNK_RECORDS` records in flight."""
    if workers <= 1:
        for text in texts:
            yield np.asarray(tokenizer.encode(text, max_length=max_len), dtype=dtype)
        return
    # forkserver: workers fork from a clean process that imported this module once
    # (no copy of this one's threads, no per-worker import of biofm); else spawn
    forkserver = "forkserver" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if forkserver else "spawn")
    if forkserver:
        context.set_forkserver_preload([__name__])
    with context.Pool(workers, initializer=_start_worker, initargs=(tokenizer, max_len, dtype)) as pool:
        pending: deque = deque()
        chunk: list[Any] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) == CHUNK_RECORDS:
                pending.append(pool.apply_async(_encode_chunk, (chunk,)))
                chunk = []
                while len(pending) > 2 * workers:
                    yield from _split_chunk(*pending.popleft().get())
        if chunk:
            pending.append(pool.apply_async(_encode_chunk, (chunk,)))
        while pending:
            yield from _split_chunk(*pending.popleft().get())


_worker: dict[str, Any] = {}  # the tokenizer, max_len and dtype of a pool process


def _start_worker(tokenizer: Tokenizer, max_len: int, dtype: np.dtype) -> None:
    _worker.update(tokenizer=tokenizer, max_len=max_len, dtype=dtype)


def _encode_chunk(texts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's ids end to end and the (n + 1,) offsets between them (cheap to send back)."""
    tokenizer, max_len = _worker["tokenizer"], _worker["max_len"]
    ids = [tokenizer.encode(text, max_length=max_len) for text in texts]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in ids], out=offsets[1:])
    dtype = _worker["dtype"]
    flat = np.concatenate([np.asarray(x, dtype=dtype) for x in ids]) if ids else np.zeros(0, dtype)
    return flat, offsets


def _split_chunk(flat: np.ndarray, offsets: np.ndarray) -> Iterator[np.ndarray]:
    for a, b in zip(offsets[:-1], offsets[1:]):
        yield flat[a:b]


def read_index(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BiofmError(f"corpus index is unreadable ({exc})", path=path, fix=PREPARE_FIX) from None
    if index.get("format") != FORMAT["format"] or index.get("version") != FORMAT["version"]:
        raise BiofmError("not a biofm prepared corpus (or a newer format)", path=path,
                         fix=PREPARE_FIX)
    return index


class ShardedCorpus:
    """One split of a prepared corpus, read lazily: `corpus[i]` is an int64 array.

    Shards are memory-mapped on first use and kept in a least-recently-used
    cache of at most `memory_budget_bytes` (token and offset bytes of the
    mapped shards); `peak_cached_bytes` records the most it ever held.
    `lengths` and `shard_sizes` come from the index files, without reading
    tokens, so a `ShardPlan` can plan batches over the whole corpus.
    """

    def __init__(self, directory: str | Path, split: str = "train",
                 memory_budget_bytes: int = 1 << 30) -> None:
        self.directory = Path(directory)
        self.index = read_index(self.directory)
        if split not in self.index["splits"]:
            raise BiofmError(f"the corpus has no {split!r} split", path=self.directory,
                             fix=f"use one of: {', '.join(self.index['splits'])}")
        info = self.index["splits"][split]
        self.split, self.dtype = split, np.dtype(self.index["dtype"])
        self.shards: list[dict[str, Any]] = info["shards"]
        self.shard_sizes = np.array([s["sequences"] for s in self.shards], dtype=np.int64)
        self._ends = np.cumsum(self.shard_sizes)
        self.longest = int(info["longest"])
        self.lengths = self._map(f"{split}.lengths.bin", np.int32, len(self))
        self.memory_budget_bytes = int(memory_budget_bytes)
        biggest = max((self._shard_bytes(s) for s in range(len(self.shards))), default=0)
        if biggest > self.memory_budget_bytes:
            raise BiofmError(f"a shard needs {biggest:,} bytes, more than the memory budget of "
                             f"{self.memory_budget_bytes:,}", path=self.directory,
                             fix="raise data.memory_budget_mb, or prepare with a smaller "
                                 "--shard-tokens")
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.cached_bytes = self.peak_cached_bytes = self.shard_opens = 0

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i) + (len(self) if i < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} of a corpus of {len(self)}")
        s = int(np.searchsorted(self._ends, i, side="right"))
        local = i - int(self._ends[s] - self.shard_sizes[s])
        tokens, offsets = self._open(s)
        return tokens[offsets[local]: offsets[local + 1]].astype(np.int64)  # a copy

    @property
    def num_tokens(self) -> int:
        return int(sum(s["tokens"] for s in self.shards))

    @property
    def nbytes(self) -> int:
        """Token and offset bytes of the whole split (what loading it would take)."""
        return sum(self._shard_bytes(s) for s in range(len(self.shards)))

    def tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.directory)

    def verify(self) -> None:
        """Recompute every shard's checksums; raise on the first mismatch."""
        for shard in self.shards:
            for kind in ("tokens", "offsets"):
                path = self.directory / f"{shard['name']}.{kind}.bin"
                if _sha256(path) != shard[f"{kind}_sha256"]:
                    raise BiofmError("shard checksum mismatch (the file changed or is damaged)",
                                     path=path, fix=PREPARE_FIX)

    def _open(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        need = self._shard_bytes(s)
        while self._cache and self.cached_bytes + need > self.memory_budget_bytes:
            evicted, _ = self._cache.popitem(last=False)  # unmapped once no copy refers to it
            self.cached_bytes -= self._shard_bytes(evicted)
        shard = self.shards[s]
        entry = (self._map(f"{shard['name']}.tokens.bin", self.dtype, shard["tokens"]),
                 self._map(f"{shard['name']}.offsets.bin", np.int64, shard["sequences"] + 1))
        self._cache[s] = entry
        self.cached_bytes += need
        self.peak_cached_bytes = max(self.peak_cached_bytes, self.cached_bytes)
        self.shard_opens += 1
        return entry

    def _shard_bytes(self, s: int) -> int:
        shard = self.shards[s]
        return shard["tokens"] * self.dtype.itemsize + (shard["sequences"] + 1) * 8

    def _map(self, name: str, dtype: Any, count: int) -> np.ndarray:
        path = self.directory / name
        expected = count * np.dtype(dtype).itemsize
        if not path.is_file() or path.stat().st_size != expected:
            raise BiofmError(f"corpus file is missing or has the wrong size (expected {expected:,} "
                             "bytes)", path=path, fix=PREPARE_FIX)
        if count == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class _SplitWriter:
    """Appends encoded sequences to shards of about `shard_tokens` tokens each."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.directory, self.split, self.dtype = directory, split, dtype
        self.shard_tokens = max(int(shard_tokens), 1)
        self.shards: list[dict[str, Any]] = []
        self.pending: list[np.ndarray] = []
        self.pending_tokens = self.sequences = self.tokens = self.longest = 0
        self.lengths = open(directory / f"{split}.lengths.bin", "wb")

    def add(self, ids: np.ndarray | list[int]) -> None:
        self.pending.append(np.asarray(ids, dtype=self.dtype))
        self.pending_tokens += len(ids)
        self.lengths.write(np.int32(len(ids)).tobytes())
        self.longest = max(self.longest, len(ids))
        if self.pending_tokens >= self.shard_tokens:
            self._flush()

    def close(self) -> dict[str, Any]:
        self._flush()
        self.lengths.close()
        return {"sequences": self.sequences, "tokens": self.tokens, "longest": self.longest,
                "shards": self.shards}

    def _flush(self) -> None:
        if not self.pending:
            return
        name = f"{self.split}-{len(self.shards):05d}"
        tokens = np.concatenate(self.pending)
        offsets = np.zeros(len(self.pending) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in self.pending], out=offsets[1:])
        tokens.tofile(self.directory / f"{name}.tokens.bin")
        offsets.tofile(self.directory / f"{name}.offsets.bin")
        self.shards.append({"name": name, "sequences": len(self.pending), "tokens": len(tokens),
                            "tokens_sha256": hashlib.sha256(tokens.tobytes()).hexdigest(),
                            "offsets_sha256": hashlib.sha256(offsets.tobytes()).hexdigest()})
        self.sequences += len(self.pending)
        self.tokens += len(tokens)
        self.pending, self.pending_tokens = [], 0


def _check_target(out_dir: Path) -> None:
    """Refuse to replace anything but an earlier prepared corpus or an empty directory."""
    if out_dir.is_file():
        raise BiofmError("the output is a file", path=out_dir, fix="pass a directory path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_prepared_corpus(out_dir):
        raise BiofmError("the output directory exists and is not a prepared corpus", path=out_dir,
                         fix="choose a new --output directory, or empty this one")



def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
