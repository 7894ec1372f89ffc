"""Data-parallel training: 2 Gloo processes on the CPU match one process with the same global batch,
only rank 0 writes the run folder, and a run started on 2 processes resumes on 1."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from boxpromptiml.training.checkpoint import load_student
from boxpromptiml.training.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(prepared, **optim) -> dict:
    return {
        # stochastic depth off and batch-norm statistics frozen: both are per process by design
        "student": {"input_size": 64, "encoder": "efficientnet_lite0", "encoder_init": "random", "drop_path": 0.0},
        "data": {"train": [{"dataset": prepared["dataset"], "boxes": prepared["boxes"],
                            "pseudo_labels": prepared["pl"]}], "val": [prepared["dataset"]]},
        "optim": {"epochs": 2, "samples_per_epoch": 16, "batch_size": 4, "lr": 3e-3, "workers": 0, "threads": 1,
                  "freeze_batchnorm": True, "device": "cpu", **optim},
    }


def _worker(rank: int, world: int, port: int, config: dict, run_dir: str, log_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from boxpromptiml import fileio
    from boxpromptiml.training import checkpoint, loop

    writes = []
    real = fileio.write_atomic

    def recording(path, write):
        writes.append(str(path))
        return real(path, write)

    fileio.write_atomic = checkpoint.write_atomic = recording
    try:
        loop.train(TrainConfig.from_dict(config), run_dir)
    finally:
        with open(os.path.join(log_dir, f"writes-{rank}.json"), "w") as handle:
            json.dump(writes, handle)
        torch.distributed.destroy_process_group()


def _run_ddp(config: dict, run_dir, log_dir, world: int = 2) -> None:
    mp.start_processes(_worker, args=(world, _free_port(), config, str(run_dir), str(log_dir)), nprocs=world,
                       start_method="spawn")


def _assert_same_weights(a, b):
    model_a, _ = load_student(a)
    model_b, _ = load_student(b)
    for (name, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)


def test_two_gloo_processes_match_one_and_only_rank_0_writes(prepared, tmp_path):
    from boxpromptiml.training import loop

    loop.train(TrainConfig.from_dict(_config(prepared)), tmp_path / "single")
    _run_ddp(_config(prepared), tmp_path / "ddp", tmp_path)
    _assert_same_weights(tmp_path / "single" / "last", tmp_path / "ddp" / "last")
    assert json.loads((tmp_path / "writes-1.json").read_text()) == []
    written = json.loads((tmp_path / "writes-0.json").read_text())
    assert any(p.endswith("metrics.csv") for p in written) and any("checkpoints" in p for p in written)
    rows = (tmp_path / "ddp" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per epoch


def test_a_run_started_on_two_processes_resumes_on_one(prepared, tmp_path):
    from boxpromptiml.training import loop

    loop.train(TrainConfig.from_dict(_config(prepared)), tmp_path / "reference")
    # stop after the first epoch (the time limit is an invocation setting), then go on in one process
    _run_ddp(_config(prepared, max_minutes=1e-6), tmp_path / "run", tmp_path)
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 2
    result = loop.train(TrainConfig.from_dict(_config(prepared)), tmp_path / "run")
    assert result.epochs_done == 2
    _assert_same_weights(tmp_path / "reference" / "last", tmp_path / "run" / "last")


def test_a_killed_data_parallel_run_restarts_where_it_stopped(prepared, tmp_path, monkeypatch):
    from boxpromptiml.training import loop

    loop.train(TrainConfig.from_dict(_config(prepared)), tmp_path / "reference")
    # rank 0 is killed (SIGKILL) in the middle of writing epoch 2's checkpoint; torch.multiprocessing then stops
    # the other process, as torchrun would
    monkeypatch.setenv("BPIML_TEST_CRASH_AT", "before-last-pointer:1")
    with pytest.raises(mp.ProcessExitedException):
        _run_ddp(_config(prepared), tmp_path / "run", tmp_path)
    monkeypatch.delenv("BPIML_TEST_CRASH_AT")
    _run_ddp(_config(prepared), tmp_path / "run", tmp_path)  # the same command again
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    _assert_same_weights(tmp_path / "reference" / "last", tmp_path / "run" / "last")
