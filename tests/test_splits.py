"""Validation splits by source photo: CASIA names, transitive groups, quotas, and the CLI."""

import json

import pytest

from boxpromptiml.data import load_dataset
from boxpromptiml.data.readers import write_imdl_json
from boxpromptiml.data.samples import Dataset, Label, Sample
from boxpromptiml.data.splits import source_groups, source_photos, split_by_source
from boxpromptiml.errors import ConfigError


def test_casia_names_declare_their_sources():
    assert source_photos("Sp_D_CND_A_pla0005_pla0023_0281") == ("pla0005", "pla0023")
    assert source_photos("Sp_S_NNN_R_txt0062_txt0062_0062") == ("txt0062",)
    assert source_photos("Au_pla_0005") == ("pla0005",)
    assert source_photos("12t") == ("12t",)


def test_groups_follow_chains_of_shared_photos():
    names = ["Sp_D_CND_A_pla0005_pla0023_0281", "Sp_D_CND_A_pla0023_art0001_0282", "Au_art_0001",
             "Au_pla_0099", "other"]
    groups = source_groups(names)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4]}) == 3


def _casia_like(tmp_path, n_groups=20):
    samples = []
    for g in range(n_groups):
        for k in range(3):
            samples.append(Sample(tmp_path / f"Sp_D_NNN_A_abc{g:04d}_xyz{g:04d}_{k:04d}.jpg",
                                  tmp_path / f"m{g}_{k}.png", Label.TAMPERED))
        samples.append(Sample(tmp_path / f"Au_abc_{g:04d}.jpg", None, Label.AUTHENTIC))
    return Dataset(samples, tmp_path, "casia-like")


def test_split_is_source_disjoint_near_the_fraction_and_seeded(tmp_path):
    dataset = _casia_like(tmp_path)
    train, val = split_by_source(dataset, 0.2, seed=3)
    photos = lambda d: {p for s in d for p in source_photos(s.name)}  # noqa: E731
    assert not photos(train) & photos(val)
    assert len(train) + len(val) == len(dataset)
    assert 0.15 <= len(val.tampered) / len(dataset.tampered) <= 0.3
    assert val.authentic, "authentic images of the validation photos go to validation too"
    again = split_by_source(dataset, 0.2, seed=3)[1]
    assert [s.name for s in again] == [s.name for s in val]
    with pytest.raises(ConfigError):
        split_by_source(dataset, 1.5)


def test_cli_split_writes_lists_that_read_back(toy_dataset, tmp_path):
    from boxpromptiml.cli import main

    assert main(["split", "-d", str(toy_dataset.source), "-o", str(tmp_path / "s"), "--val-fraction", "0.25"]) == 0
    train, val = load_dataset(tmp_path / "s" / "train.json"), load_dataset(tmp_path / "s" / "val.json")
    assert sorted(s.name for s in [*train, *val]) == sorted(s.name for s in toy_dataset)
    assert {s.image.resolve() for s in val} <= {s.image.resolve() for s in toy_dataset}
    assert all(isinstance(e, list) for e in json.loads((tmp_path / "s" / "val.json").read_text()))


def test_written_list_round_trips(toy_dataset, tmp_path):
    write_imdl_json(toy_dataset, tmp_path / "sub" / "list.json")
    back = load_dataset(tmp_path / "sub" / "list.json")
    assert [(s.image.resolve(), s.label) for s in back] == [(s.image.resolve(), s.label) for s in toy_dataset]
