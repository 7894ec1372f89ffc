import subprocess
import sys

import pytest

from boxpromptiml.cli import COMMANDS, build_parser, main


def _subcommands():
    return list(build_parser()._subparsers._group_actions[0].choices)


def test_commands_follow_the_data_flow():
    assert _subcommands() == ["toy-data", "synthesize", "boxes", "pseudo-label", "train", "evaluate", "robustness",
                              "predict", "export", "bench", "demo"]
    assert len(COMMANDS) == 9


@pytest.mark.parametrize("command", _subcommands())
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: bpiml" in out and out.count("--") >= 2


def test_toy_boxes_evaluate_pipeline(tmp_path):
    assert main(["toy-data", str(tmp_path / "toy"), "--tampered", "3", "--authentic", "2"]) == 0
    assert main(["boxes", "-d", str(tmp_path / "toy" / "dataset.json"), "-o", str(tmp_path / "b.json"),
                 "--filled-masks", str(tmp_path / "maps")]) == 0
    assert main(["evaluate", "-d", str(tmp_path / "toy"), "--pred", str(tmp_path / "maps")]) == 0


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "boxpromptiml.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "evaluate" in out.stdout
