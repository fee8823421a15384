"""The ehr-codes tokenizer on timelines whose tokens and bins are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.ehr.timeline import Timeline
from biofm.modalities.ehr.tokenizer import N_GAP, EhrTokenizer
from biofm.tokenizer import load_tokenizer
from tests.modalities.ehr.conftest import day

NAT = np.datetime64("NaT", "us")


def timeline(sid: str, events: list[tuple]) -> Timeline:
    """(time or None, code, value or None) events, already in order."""
    return Timeline(sid, np.array([NAT if t is None else t for t, _, _ in events],
                                  dtype="datetime64[us]"),
                    np.array([c for _, c, _ in events], dtype=object),
                    np.array([np.nan if v is None else v for _, _, v in events], dtype=float))


BORN = day(-int(42 * 365.25))  # 42 years before day 0, to the day
ALICE = timeline("alice", [(None, "Gender/F", None), (BORN, "MEDS_BIRTH", None),
                           (day(0), "LOINC/2085-9", 30.0), (day(0), "ICD10CM/I10", None),
                           (day(3), "LOINC/2085-9", 70.0), (day(400), "ICD10CM/E11.9", None)])


def bin_id(tok: EhrTokenizer, age_bin: int, gap_bin: int, parity: int) -> int:
    return 1 + (age_bin * N_GAP + gap_bin) * 2 + parity


@pytest.fixture
def tok() -> EhrTokenizer:
    # value edges come from these training values only: 10, 20, ..., 100 → deciles
    train = [timeline(f"t{i}", [(day(i), "LOINC/2085-9", float(v))])
             for i, v in enumerate(range(10, 101, 10))]
    return EhrTokenizer.fit([*train, ALICE], n_bins=2)  # one edge: the median, 55


def test_tokens_and_time_bins_of_a_known_timeline(tok):
    seq = tok.encode(ALICE)
    tokens = [tok.vocab[i] for i in seq.ids]
    assert tokens == ["<cls>", "Gender/F", "<sep>", "MEDS_BIRTH", "<sep>", "LOINC/2085-9|q1",
                      "ICD10CM/I10", "<sep>", "LOINC/2085-9|q2", "<sep>", "ICD10CM/E11.9",
                      "<sep>", "<eos>"]
    unknown_age = tok.n_age - 1
    expected = [0,
                bin_id(tok, unknown_age, 0, 0), 0,   # static: age unknown, no gap
                bin_id(tok, 0, 0, 0), 0,             # birth: age 0, first event, visit 0
                bin_id(tok, 8, 9, 1),                # day 0: age 42 → bin 8; gap >= 5 y
                bin_id(tok, 8, 1, 1), 0,             # same day, same visit
                bin_id(tok, 8, 2, 0), 0,             # 3 days later: < 1 week; visit 2
                bin_id(tok, 8, 7, 1), 0, 0]          # day 400: age 43.1 (40-44); < 2 y
    assert seq.values.tolist() == expected
    assert tok.value_bins == 1 + tok.n_age * N_GAP * 2 and max(expected) < tok.value_bins


def test_value_bins_come_from_the_fitted_patients_only(tok):
    assert tok.edges["LOINC/2085-9"].tolist() == [55.0]
    # a value far outside the training range falls in the last bin, not a new one
    extreme = timeline("x", [(day(0), "LOINC/2085-9", 1e6), (day(1), "LOINC/2085-9", None)])
    assert tok.split(extreme) == ["LOINC/2085-9|q2", "<sep>", "LOINC/2085-9", "<sep>"]
    unseen = timeline("y", [(day(0), "SNOMED/1", None)])
    assert tok.split(unseen) == ["<unk>", "<sep>"]


def test_long_timelines_keep_the_most_recent_events_and_the_statics():
    events = [(None, "Gender/M", None)] + [(day(i), f"ICD10CM/A{i:02d}", None) for i in range(30)]
    tl = timeline("long", events)
    tok = EhrTokenizer.fit([tl])
    seq = tok.encode(tl, max_length=12)
    tokens = [tok.vocab[i] for i in seq.ids]
    assert len(seq) == 12 and tokens[:3] == ["<cls>", "Gender/M", "<sep>"]
    assert tokens[3:] == ["ICD10CM/A26", "<sep>", "ICD10CM/A27", "<sep>", "ICD10CM/A28",
                          "<sep>", "ICD10CM/A29", "<sep>", "<eos>"]


def test_round_trip_through_tokenizer_json(tok, tmp_path):
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, EhrTokenizer) and again.to_dict() == tok.to_dict()
    a, b = tok.encode(ALICE, max_length=8), again.encode(ALICE, max_length=8)
    assert a.ids.tolist() == b.ids.tolist() and a.values.tolist() == b.values.tolist()


def test_cut_timelines_encode_only_events_up_to_the_cut(tok):
    cut = ALICE.cut(day(0))
    assert tok.split(cut) == ["Gender/F", "<sep>", "MEDS_BIRTH", "<sep>", "LOINC/2085-9|q1",
                              "ICD10CM/I10", "<sep>"]
    assert cut.end == day(0)


def test_non_timelines_are_refused(tok):
    with pytest.raises(BiofmError, match="encodes patient timelines, got str"):
        tok.encode("ICD10CM/I10")
