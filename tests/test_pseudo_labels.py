"""bpiml pseudo-label: outputs, manifest, resume after interruption, corrupt images."""

import json

import numpy as np
import pytest

from boxpromptiml.boxes.from_masks import simulate_dataset_boxes
from boxpromptiml.boxes.simulate import BoxSimulationConfig
from boxpromptiml.cli import main
from boxpromptiml.data import read_probability_map
from boxpromptiml.data.samples import Dataset, Sample
from boxpromptiml.errors import ConfigError
from boxpromptiml.pseudo_labels import MANIFEST_NAME, generate_pseudo_labels
from boxpromptiml.teachers import create_teacher
from boxpromptiml.teachers.classical import BoxTeacher


@pytest.fixture
def boxed(toy_dataset):
    run = simulate_dataset_boxes(toy_dataset, BoxSimulationConfig())
    return toy_dataset.with_boxes({name: boxes for name, (_, boxes) in run.results.items()})


class Interrupting(BoxTeacher):
    """A teacher that is 'killed' (Ctrl-C) while working on its n-th image."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.left = after

    def segment_boxes(self, image, boxes):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().segment_boxes(image, boxes)


def test_writes_masks_and_manifest(boxed, tmp_path):
    run = generate_pseudo_labels(boxed, create_teacher("box"), tmp_path, boxes_source="b.json")
    assert len(run.results) == 8 and not run.failures
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(s.name for s in boxed.tampered)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["teacher"]["teacher"] == "box" and manifest["boxes"] == "b.json"
    entry = manifest["images"][boxed.tampered[0].name]
    assert entry["boxes"] == [list(b.to_xyxy()) for b in boxed.tampered[0].boxes] and entry["seconds"] >= 0
    prob = read_probability_map(tmp_path / entry["file"])
    assert prob.shape == (entry["height"], entry["width"]) and prob.max() == 1.0
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_after_interruption(boxed, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        generate_pseudo_labels(boxed, Interrupting(after=3), tmp_path)
    assert len(json.loads((tmp_path / MANIFEST_NAME).read_text())["images"]) == 3
    assert len(list(tmp_path.glob("*.png"))) == 3 and not list(tmp_path.glob(".*.tmp"))
    run = generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    assert len(run.skipped) == 3 and len(run.results) == 5
    again = generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    assert len(again.skipped) == 8 and not again.results


def test_a_damaged_output_is_redone(boxed, tmp_path):
    generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    victim = boxed.tampered[2].name
    (tmp_path / f"{victim}.png").write_bytes(b"garbage")
    run = generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    assert list(run.results) == [victim]


def test_other_teacher_in_same_folder_is_refused(boxed, tmp_path):
    generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    with pytest.raises(ConfigError, match="another teacher"):
        generate_pseudo_labels(boxed, create_teacher("grabcut"), tmp_path)


def test_corrupt_image_in_the_middle_is_skipped_and_reported(boxed, tmp_path):
    broken = tmp_path / "in" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(boxed.tampered[0].image.read_bytes()[:60])
    samples = list(boxed.samples)
    samples.insert(4, Sample(broken, boxed.tampered[0].mask, boxed.tampered[0].label, boxed.tampered[0].boxes))
    run = generate_pseudo_labels(Dataset(samples, boxed.root, "with a broken image"), create_teacher("box"),
                                 tmp_path / "out")
    assert list(run.failures) == ["broken"] and "broken.png" in run.failures["broken"]
    assert len(run.results) == 8
    assert "broken" in json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())["failures"]


def test_cli_pseudo_label_then_evaluate(toy_dataset, tmp_path, capsys):
    source = str(toy_dataset.source)
    assert main(["boxes", "-d", source, "-o", str(tmp_path / "b.json")]) == 0
    assert main(["pseudo-label", "-d", source, "--boxes", str(tmp_path / "b.json"), "--teacher", "grabcut",
                 "-o", str(tmp_path / "pl")]) == 0
    assert "8 done" in capsys.readouterr().out
    assert main(["evaluate", "-d", source, "--pred", str(tmp_path / "pl"), "--tampered-only",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["pixel_f1"] > 0.5


def test_cli_rejects_sam_settings_for_classical_teachers(toy_dataset, tmp_path, capsys):
    assert main(["boxes", "-d", str(toy_dataset.source), "-o", str(tmp_path / "b.json")]) == 0
    code = main(["pseudo-label", "-d", str(toy_dataset.source), "--boxes", str(tmp_path / "b.json"),
                 "--teacher", "box", "--multimask", "-o", str(tmp_path / "pl")])
    assert code == 2 and "takes no SAM settings" in capsys.readouterr().err


def test_authentic_images_get_no_mask(boxed, tmp_path):
    generate_pseudo_labels(boxed, create_teacher("box"), tmp_path)
    assert not any((tmp_path / f"{s.name}.png").exists() for s in boxed.authentic)
    assert np.all([read_probability_map(p).max() > 0 for p in tmp_path.glob("*.png")])


def test_shards_give_exactly_the_files_of_one_run(boxed, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from boxpromptiml.sharding import Shard

    generate_pseudo_labels(boxed, create_teacher("grabcut"), tmp_path / "single")
    with ThreadPoolExecutor(3) as pool:  # three shards at once on one folder
        list(pool.map(lambda k: generate_pseudo_labels(boxed, create_teacher("grabcut"), tmp_path / "sharded",
                                                       shard=Shard(k, 3)), range(3)))
    single = sorted(p.name for p in (tmp_path / "single").glob("*.png"))
    assert single == sorted(p.name for p in (tmp_path / "sharded").glob("*.png")) and single
    for name in single:
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
    merged = json.loads((tmp_path / "sharded" / MANIFEST_NAME).read_text())
    reference = json.loads((tmp_path / "single" / MANIFEST_NAME).read_text())
    assert sorted(merged["images"]) == sorted(reference["images"])  # every image once
    assert {n: e["sha256"] for n, e in merged["images"].items()} == \
        {n: e["sha256"] for n, e in reference["images"].items()}
    assert merged["shards"] == {"3": [0, 1, 2]}
    # a shard run again has nothing left to do
    again = generate_pseudo_labels(boxed, create_teacher("grabcut"), tmp_path / "sharded", shard=Shard(1, 3))
    assert not again.results and again.skipped


def test_cli_shard_option_and_torchrun_rank(boxed, tmp_path, monkeypatch):
    from boxpromptiml.sharding import Shard, resolve_shard

    boxes = tmp_path / "boxes.json"
    assert main(["boxes", "-d", str(boxed.source), "-o", str(boxes)]) == 0
    args = ["pseudo-label", "-d", str(boxed.source), "--boxes", str(boxes), "--teacher", "box", "-o",
            str(tmp_path / "out")]
    assert main([*args, "--shard", "0/2"]) == 0
    first = set(json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())["images"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert resolve_shard(None) == Shard(1, 2)
    assert main(args) == 0  # rank 1 of a torchrun launch takes the other half
    merged = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert first < set(merged["images"]) and len(merged["images"]) == len(boxed.tampered)
    with pytest.raises(ConfigError):
        Shard.parse("2/2")


def test_cli_processes_write_what_one_process_writes(boxed, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    assert main(["boxes", "-d", str(boxed.source), "-o", str(boxes)]) == 0
    args = ["pseudo-label", "-d", str(boxed.source), "--boxes", str(boxes), "--teacher", "grabcut", "--threads", "2"]
    assert main([*args, "-o", str(tmp_path / "one"), "--processes", "1"]) == 0
    assert main([*args, "-o", str(tmp_path / "two"), "--processes", "2"]) == 0
    assert "(2 processes)" in capsys.readouterr().out
    one = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert one and one == sorted(p.name for p in (tmp_path / "two").glob("*.png"))
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    images = json.loads((tmp_path / "two" / MANIFEST_NAME).read_text())["images"]
    assert sorted(images) == sorted(json.loads((tmp_path / "one" / MANIFEST_NAME).read_text())["images"])


def test_cli_encoder_backend_only_for_teachers_with_an_encoder(toy_dataset, tmp_path, capsys):
    assert main(["boxes", "-d", str(toy_dataset.source), "-o", str(tmp_path / "b.json")]) == 0
    code = main(["pseudo-label", "-d", str(toy_dataset.source), "--boxes", str(tmp_path / "b.json"),
                 "--teacher", "grabcut", "--encoder-backend", "torch", "-o", str(tmp_path / "pl")])
    assert code == 2 and "has no image encoder" in capsys.readouterr().err


def test_a_folder_resumes_under_another_encoder_backend(boxed, tmp_path):
    """What runs the encoder is recorded, but a folder begun with one backend goes on with another (the same
    teacher and weights): the masks agree within rounding."""
    first = generate_pseudo_labels(boxed, create_teacher("litemedsam").use_encoder_backend("torch"), tmp_path)
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["teacher"]["encoder_backend"] == "torch"
    again = generate_pseudo_labels(boxed, create_teacher("litemedsam"), tmp_path)  # refused before
    assert len(first.results) == 8 and not again.results and not again.failures  # every image already done
