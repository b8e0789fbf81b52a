"""The `lab` command line: help everywhere, clear errors for bad arguments and bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.cli import EXIT_USAGE, build_parser, main
from shared.settings import ENVIRONMENT

README = Path(__file__).resolve().parent.parent / "README.md"

SUBCOMMANDS = ("setup", "generate", "run", "oracle", "verify", "experiments", "kappa", "lambda", "replay")
KAPPA_ACTIONS = ("replay", "drop", "status", "passthrough")
LAMBDA_ACTIONS = ("batch", "query", "status")


@pytest.mark.parametrize(
    "argv",
    [[name, "--help"] for name in SUBCOMMANDS]
    + [["kappa", a, "--help"] for a in KAPPA_ACTIONS]
    + [["lambda", a, "--help"] for a in LAMBDA_ACTIONS],
)
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    assert "usage: lab" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["kappa", "replay", "--help"]])
def test_help_lists_every_setting_with_its_default(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    out = capsys.readouterr().out
    for variable in ENVIRONMENT:
        line = next((line for line in out.splitlines() if line.split()[:1] == [variable.name]), "")
        assert variable.default in line, f"{variable.name} with its default {variable.default} in --help"


def test_readme_settings_line_lists_every_setting_with_its_default():
    text = README.read_text(encoding="utf-8")
    paragraph = " ".join(text[text.index("Settings (") :].split("\n\n")[0].split())
    listed = dict(re.findall(r"`(LAB_[A-Z_]+)` \(([^()]*)\)", paragraph))  # `LAB_X` (default, meaning)
    assert set(listed) == {variable.name for variable in ENVIRONMENT}
    for variable in ENVIRONMENT:
        assert re.match(rf"(default )?`?{re.escape(variable.default)}`?(\W|$)", listed[variable.name]), variable.name


def test_generate_takes_its_watermark_from_the_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_WATERMARK_SECONDS", "3600")
    assert main(["--quiet", "generate", "--rows", "500", "--out", str(tmp_path / "short")]) == 0
    manifest = json.loads((tmp_path / "short" / "_manifest.json").read_text())
    assert manifest["options"]["watermark_seconds"] == 3600
    assert manifest["resolved"]["out_of_order_lag_minutes"][1] < 60 < manifest["resolved"]["late_lag_minutes"][0]
    monkeypatch.delenv("LAB_WATERMARK_SECONDS")
    assert main(["--quiet", "generate", "--rows", "500", "--out", str(tmp_path / "default")]) == 0
    assert json.loads((tmp_path / "default" / "_manifest.json").read_text())["options"]["watermark_seconds"] == 7200


def test_console_script_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--rows", "0", "--out", "x"],
        ["generate", "--rows", "10", "--out", "x", "--late-fraction", "1.5"],
        ["run", "sideways", "--input", "a", "--workdir", "b"],
        ["experiments", "--profile", "huge"],
    ],
)
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_missing_input_directory_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["--quiet", "oracle", "--input", str(missing), "--workdir", str(tmp_path / "w")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "does not exist" in err and "nowhere" in err


def test_run_refuses_an_input_without_sales_files_before_starting_spark(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    assert (
        main(["--quiet", "run", "kappa", "--input", str(tmp_path / "in"), "--workdir", str(tmp_path / "w")])
        == EXIT_USAGE
    )
    assert "no sales files" in capsys.readouterr().err


def test_generate_then_oracle(tmp_path, capsys):
    assert main(["--quiet", "generate", "--rows", "2000", "--seed", "3", "--out", str(tmp_path / "in")]) == 0
    assert main(["--quiet", "oracle", "--input", str(tmp_path / "in"), "--workdir", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "raw lines 2,001" in out  # 2,000 rows + one file header
    assert (tmp_path / "w" / "results" / "oracle" / "city_revenue.csv").exists()


def test_generate_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["--quiet", "generate", "--rows", "10", "--out", str(tmp_path)]) == EXIT_USAGE
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_kappa_status_and_drop_errors(tmp_path, capsys):
    assert main(["--quiet", "kappa", "status", "--workdir", str(tmp_path)]) == 0
    assert "no version serves yet" in capsys.readouterr().out
    assert main(["--quiet", "kappa", "drop", "--workdir", str(tmp_path), "--version", "v9"]) == EXIT_USAGE
    assert "no version v9" in capsys.readouterr().err
    assert main(["--quiet", "kappa", "drop", "--workdir", str(tmp_path), "--version", "../x"]) == EXIT_USAGE
    assert "bad version name" in capsys.readouterr().err


def test_replay_to_landing_needs_a_landing_folder(tmp_path, capsys):
    assert main(["--quiet", "replay", "--input", str(tmp_path), "--to", "landing"]) == EXIT_USAGE
    assert "--landing" in capsys.readouterr().err
