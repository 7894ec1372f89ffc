"""Where the protocol keeps its files, and its test sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from boxpromptiml.data import load_dataset
from boxpromptiml.data.samples import Dataset

from ..common import DEFAULT_DATA, REPO

WORK = REPO / "runs" / "v2"  # the paths inside benchmarks/configs/v2_base.yaml point here
BASE_CONFIG = REPO / "benchmarks" / "configs" / "v2_base.yaml"
RECORD = REPO / "docs" / "protocol_v2_runs.json"
PAPER_F1 = {"CASIA v1": 0.552, "COVERAGE": 0.403}  # the paper's box-supervised pixel F1
TEST_SETS = {  # name -> (tampered list, authentic list, first authentic id kept)
    "CASIA v1": ("casia1_dev/test.json", "casia1_dev/authentic.json", None),
    # COVERAGE's authentic.json holds the originals of all 100 images; only 71-100 belong to the test split.
    "COVERAGE": ("coverage/test.json", "coverage/authentic.json", 71),
}


@dataclass(frozen=True)
class Layout:
    """The work folder is fixed (``runs/v2``): the base config names its files."""

    data: Path = DEFAULT_DATA
    work: Path = WORK

    @property
    def split(self) -> Path:
        return self.work / "casia1_split"

    def boxes(self, source: str) -> Path:
        return self.work / f"{source}_boxes.json"

    def pseudo(self, teacher: str, source: str) -> Path:
        """Pseudo masks of the default teacher live where the base config expects them."""
        return self.work / ("pseudo" if teacher == "litemedsam" else f"pseudo_{teacher}") / source

    @property
    def coverage_authentic(self) -> Path:
        return self.work / "coverage_train_authentic.json"

    def run(self, name: str) -> Path:
        return self.work / "runs" / name


def test_datasets(data: Path, limit: int | None = None) -> dict[str, Dataset]:
    """The test sets, tampered + authentic (``limit``: the first N tampered and N/2 authentic images)."""
    out = {}
    for name, (tampered, authentic, first_id) in TEST_SETS.items():
        tp, au = load_dataset(data / tampered), load_dataset(data / authentic)
        if first_id is not None:
            au = au.replace_samples([s for s in au if int(s.name) >= first_id])
        tp_samples, au_samples = tp.samples, au.samples
        if limit is not None:
            tp_samples, au_samples = tp_samples[:limit], au_samples[: max(2, limit // 2)]
        out[name] = tp.replace_samples(tp_samples + au_samples)
    return out
