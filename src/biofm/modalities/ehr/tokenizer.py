"""Patient timelines → code tokens + a time bin per token (BEHRT / Med-BERT manner).

    ids:  <cls> [static codes <sep>] visit-1 codes <sep> visit-2 codes <sep> ... <eos>
    bins: 0     1 + (age_bin * N_GAP + gap_bin) * 2 + visit_parity per code token, 0 on specials

- Tokens are the events' codes (vocabulary prefix kept). A code with numeric
  values gets per-code quantile bins, as CLMBR / MOTOR tokenise labs: edges at
  the `n_bins`-quantiles of the code's values in the data the tokenizer is fitted
  on (the training patients only), and the event becomes the token
  "<code>|q<k>" (k = 1 .. number of distinct edges + 1); an event without a
  value, or with a bin never seen in fitting, is the plain code. Codes outside
  the vocabulary are <unk>.
- Visits (the events of one calendar day, see `Timeline.visits`) end with <sep>,
  and alternate segment parity 0 / 1 (BEHRT's segment embedding).
- Age at the event in `age_bin_years`-year bins up to `max_age_years` (one bin
  for "age unknown": no MEDS_BIRTH), and the time since the previous dated
  event in GAP_EDGES_DAYS bins (none / same day / < 1 week / ... / >= 5 years).
  Age, gap and parity are one id per token (`value_bins` of them), the
  backbone's second input (`values: bins`): the embedding of the combination
  is added to the code embedding, as BEHRT adds age, segment and position.
- Longer timelines than the context keep the most recent events (and the static
  codes, when they take at most half of the room).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.modalities.ehr.timeline import DAY, Timeline
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

SPECIALS = {"pad": "<pad>", "mask": "<mask>", "bos": "<cls>", "eos": "<eos>", "unk": "<unk>",
            "sep": "<sep>"}
GAP_EDGES_DAYS = (1, 8, 31, 92, 183, 366, 731, 1827)  # same day, < 1 week, ..., < 5 y, >= 5 y
N_GAP = len(GAP_EDGES_DAYS) + 2  # + "no previous event"
VALUE_SEPARATOR = "|q"
# timeline → {(tokenizer fingerprint, specials, max_length): encoding}: a task's timelines are
# encoded once, not at every validation pass of every fine-tuning run (timelines are frozen)
_ENCODED: "weakref.WeakKeyDictionary[Timeline, dict]" = weakref.WeakKeyDictionary()


@TOKENIZERS.register("ehr-codes")
class EhrTokenizer(Tokenizer):
    """Codes (+ per-code value bins) with age / gap / visit-parity bins (module docstring).

    edges: code → its increasing quantile edges (the training patients' values).
    """

    name = "ehr-codes"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 edges: dict[str, Sequence[float]] | None = None, age_bin_years: int = 5,
                 max_age_years: int = 100, add_eos: bool = True) -> None:
        edges = {c: [float(x) for x in e] for c, e in (edges or {}).items()}
        super().__init__(vocab, dict(specials or SPECIALS), edges=edges,
                         age_bin_years=int(age_bin_years), max_age_years=int(max_age_years),
                         add_eos=bool(add_eos))
        if age_bin_years < 1 or max_age_years < age_bin_years:
            raise ValueError("ehr-codes needs 1 <= age_bin_years <= max_age_years")
        self.edges = {c: np.asarray(e) for c, e in edges.items()}
        self.n_age = max_age_years // age_bin_years + 2  # ..., max_age+ and "unknown"
        self.fingerprint = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()
                                        ).hexdigest()

    # -- fitting -----------------------------------------------------------------------
    @classmethod
    def fit(cls, timelines: Iterable[Timeline], *, n_bins: int = 10, min_count: int = 1,
            min_values: int = 10, **config: Any) -> "EhrTokenizer":
        """Vocabulary = codes seen `min_count` times in `timelines`; codes with at least
        `min_values` numeric values get `n_bins`-quantile edges (fit on these timelines
        only: pass the training patients)."""
        codes, values = [], []
        for timeline in timelines:
            codes.append(require_timeline(timeline).codes)
            values.append(timeline.values)
        if not codes or not sum(map(len, codes)):
            raise BiofmError("no events to build an EHR vocabulary from",
                             fix="pretrain on timelines with events")
        all_codes, all_values = np.concatenate(codes).astype(str), np.concatenate(values)
        counts = Counter({str(c): int(n) for c, n in zip(*np.unique(all_codes,
                                                                      return_counts=True))})
        edges, tokens = {}, {c for c, n in counts.items() if n >= min_count}
        numeric = np.isfinite(all_values)
        order = np.argsort(all_codes[numeric], kind="stable")
        code_of, value_of = all_codes[numeric][order], all_values[numeric][order]
        starts = np.flatnonzero(np.r_[True, code_of[1:] != code_of[:-1]]) if len(code_of) else []
        for a, b in zip(starts, [*starts[1:], len(code_of)]):
            code, v = str(code_of[a]), value_of[a:b]
            if code not in tokens or len(v) < min_values:
                continue
            cut = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
            edges[code] = cut.tolist()
            seen = np.unique(np.searchsorted(cut, v, side="right")) + 1
            tokens.update(f"{code}{VALUE_SEPARATOR}{k}" for k in seen)
        vocab = [*SPECIALS.values(), *sorted(tokens, key=_token_order)]
        return cls(vocab, SPECIALS, edges=edges, **config)

    # -- the second input ----------------------------------------------------------------
    @property
    def value_bins(self) -> int:
        """Ids of the backbone's bin embedding: 0 (special tokens) + age x gap x parity."""
        return 1 + self.n_age * N_GAP * 2

    @property
    def sep_id(self) -> int:
        return self._id("sep")

    def time_bins(self, timeline: Timeline) -> np.ndarray:
        """(n,) int64 bin id of each event: 1 + (age_bin * N_GAP + gap_bin) * 2 + parity."""
        step, top = self.config["age_bin_years"], self.config["max_age_years"]
        age = timeline.age_years(timeline.times)
        unknown = np.isnan(age)
        age_bin = np.clip(np.where(unknown, 0.0, age) // step, 0, top // step).astype(np.int64)
        age_bin[unknown] = self.n_age - 1
        gap_bin = np.zeros(len(timeline), dtype=np.int64)  # static and first: "none"
        dated = np.flatnonzero(~timeline.static)
        if len(dated) > 1:
            days = np.diff(timeline.times[dated]) / DAY
            gap_bin[dated[1:]] = np.searchsorted(GAP_EDGES_DAYS, days, side="right") + 1
        parity = np.maximum(timeline.visits, 0) % 2
        return 1 + (age_bin * N_GAP + gap_bin) * 2 + parity

    # -- encoding ------------------------------------------------------------------------
    def event_ids(self, timeline: Timeline) -> np.ndarray:
        """(n,) token id of each event: "<code>|q<k>" for binned values, else the code."""
        get, unk = self.token_to_id.get, self.unk_id
        ids = np.fromiter((get(c, unk) for c in timeline.codes), dtype=np.int64,
                          count=len(timeline))
        valued = np.isfinite(timeline.values)
        for code in set(timeline.codes[valued].tolist()) & self.edges.keys():
            at = np.flatnonzero(valued & (timeline.codes == code))
            bins = np.searchsorted(self.edges[code], timeline.values[at], side="right") + 1
            ids[at] = [get(f"{code}{VALUE_SEPARATOR}{k}", i) for k, i in zip(bins, ids[at])]
        return ids

    def encode(self, timeline: Timeline, *, add_special_tokens: bool = True,  # type: ignore[override]
               max_length: int | None = None) -> ValuedSequence:
        """ids and bins (module docstring); computed once per timeline and setting."""
        cache = _ENCODED.setdefault(require_timeline(timeline), {})
        key = (self.fingerprint, add_special_tokens, max_length)
        if key not in cache:
            cache[key] = self._encode(timeline, add_special_tokens, max_length)
        return cache[key]

    def _encode(self, timeline: Timeline, add_special_tokens: bool,
                max_length: int | None) -> ValuedSequence:
        ids, bins = self.event_ids(timeline), self.time_bins(timeline)
        visits = timeline.visits
        ends = np.flatnonzero(np.r_[visits[1:] != visits[:-1], True]) if len(visits) else visits
        ids = np.insert(ids, ends + 1, self.sep_id)  # <sep> after each visit (and the statics)
        bins = np.insert(bins, ends + 1, 0)
        if max_length is not None:
            room = max(max_length - (2 if add_special_tokens and self.adds_eos else
                                     1 if add_special_tokens else 0), 0)
            n_static = int(ends[0]) + 2 if len(ends) and visits[0] < 0 else 0
            ids, bins = _most_recent(ids, bins, room, n_static)
        if add_special_tokens:
            tail = [self.eos_id] if self.adds_eos else []
            ids = np.concatenate([[self.bos_id], ids, tail])
            bins = np.concatenate([[0], bins, [0] * len(tail)])
        return ValuedSequence(ids.astype(np.int64), bins.astype(np.int64))

    def split(self, timeline: Timeline) -> list[str]:  # type: ignore[override]
        return [self.vocab[i] for i in self.encode(timeline, add_special_tokens=False).ids]

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def known_fraction(self, timelines: Iterable[Timeline]) -> tuple[int, int]:
        """(events whose code is in the vocabulary, events)."""
        known = total = 0
        for timeline in timelines:
            base = np.fromiter((c in self.token_to_id for c in timeline.codes), dtype=bool,
                               count=len(timeline))
            known, total = known + int(base.sum()), total + len(timeline)
        return known, total


def _token_order(token: str) -> tuple[str, int]:
    """Codes in order, each code's value bins after it in bin order."""
    code, sep, k = token.rpartition(VALUE_SEPARATOR)
    return (code, int(k)) if sep and k.isdigit() else (token, 0)


def _most_recent(ids: np.ndarray, bins: np.ndarray, room: int,
                 n_static: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `room` tokens: the static block (when it takes <= half the room) + the last
    tokens of the rest."""
    if len(ids) <= room:
        return ids, bins
    head = n_static if 0 < n_static <= room // 2 else 0
    tail = room - head
    keep = np.r_[np.arange(head), np.arange(len(ids) - tail, len(ids))] if tail else \
        np.arange(head)
    return ids[keep], bins[keep]


def require_timeline(value: Any) -> Timeline:
    if not isinstance(value, Timeline):
        raise BiofmError(f"the EHR tokenizer encodes patient timelines, got "
                         f"{type(value).__name__}",
                         fix="read EHR data with the ehr modality (MEDS, OMOP or an events CSV)")
    return value


__all__ = ["EhrTokenizer", "GAP_EDGES_DAYS", "N_GAP", "SPECIALS", "require_timeline"]
