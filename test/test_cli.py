import subprocess
import sys

import pytest

from hand_pose_refiner.cli import main


def test_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "hand_pose_refiner.cli", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("config", "doctor", "labels-to-bag"):
        assert command in result.stdout


def test_config_check_accepts_the_default(capsys):
    assert main(["config", "check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_config_check_refuses_a_bad_file_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("qos:\n  image_depth: -1\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: qos.image_depth = -1: out of range" in err


def test_config_show_flat(capsys):
    assert main(["config", "show", "--flat"]) == 0
    assert "spatial_filter.max_hands = 2" in capsys.readouterr().out


def test_missing_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
