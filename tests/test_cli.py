"""The CLI: every command has --help, and docs/cli.md is exactly what the commands print."""

import importlib.util
from pathlib import Path

import pytest

from lmp_gnn.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def _reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference()


def test_docs_cli_md_is_current():
    assert (ROOT / "docs" / "cli.md").read_text() == _reference(), \
        "docs/cli.md is stale: run `python scripts/cli_reference.py`"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: lmp-gnn {name}" in capsys.readouterr().out


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "<command>" in capsys.readouterr().out


def test_bad_input_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    argv = ["import", str(tmp_path / "missing.data"), str(tmp_path / "missing.dump"), "-o",
            str(tmp_path / "t.npz"), "--timestep", "0.05"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("lmp-gnn import: error: ") and "missing.data" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="missing.data"):
        main(["--debug"] + argv)
    assert not (tmp_path / "t.npz").exists()


def test_evaluate_refuses_a_strain_outside_the_compression(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "zero", "--data", str(tmp_path), "-o", str(tmp_path / "out"), "--strains", "-0.5"])
    assert exit_info.value.code == 2
    assert "expected a compressive strain in (0, 0.5), e.g. 0.01 for 1 %, got -0.5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
