import subprocess
import sys

import anndata as ad
import pandas as pd
import pytest

from ruotools import datasets
from ruotools.cli import main


def _error_lines(capsys):
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.strip()]


def test_fit_missing_input_file(tmp_path, capsys):
    rc = main(["fit", str(tmp_path / "missing.h5ad"), "--time-key", "t", "-o", str(tmp_path / "x.h5ad")])
    assert rc == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("ruotools: error: ")
    assert "missing.h5ad" in lines[0]
    assert not (tmp_path / "x.h5ad").exists()


def test_fit_input_not_h5ad(tmp_path, capsys):
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not an hdf5 file")
    rc = main(["fit", str(bad), "--time-key", "t", "-o", str(tmp_path / "x.h5ad")])
    assert rc == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("ruotools: error: ")
    assert "bad.h5ad" in lines[0]


def test_example_unknown_name(tmp_path, capsys):
    rc = main(["example", "nonexistent_name", "-o", str(tmp_path)])
    assert rc == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("ruotools: error: ")
    assert "nonexistent_name" in lines[0]
    assert "simulated_gene" in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fit", "in.h5ad", "-o", "out.h5ad"],  # no --time-key
        ["fit", "in.h5ad", "--time-key", "t"],  # no -o
        ["fit", "in.h5ad", "--time-key", "t", "-o", "o.h5ad", "--max-epochs", "many"],
        ["example"],  # no -o
        ["frobnicate"],
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    assert main(argv) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("ruotools: error: ")


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out
    assert "example" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ruotools ")
    assert main(["fit", "--help"]) == 0
    assert "--time-key" in capsys.readouterr().out


def test_python_dash_m(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ruotools", "example", "nonexistent_name", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ruotools: error: ")


# End-to-end: these need ruotools.tl.


def test_cli_example_end_to_end(tmp_path, capsys):
    rc = main(["example", "simulated_gene", "-o", str(tmp_path), "--max-epochs", "2", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "simulated_gene.h5ad").is_file()
    metrics = pd.read_csv(tmp_path / "metrics.csv", index_col=0)
    assert list(metrics.columns) == ["W1", "W2", "TMV", "RME", "action"]
    assert len(metrics) == 4
    out = capsys.readouterr().out
    assert "W1" in out
    assert "TMV" in out
    # the figures, drawn from what the .h5ad holds
    figures = {path.name for path in (tmp_path / "figures").glob("*.png")}
    expected = {"trajectories", "growth", "mass", "history", "metrics", "landscape", "landscape_surface", "potential"}
    assert {f"{name}.png" for name in expected} <= figures
    for name in figures:
        assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fitted = ad.read_h5ad(tmp_path / "simulated_gene.h5ad")
    assert {"ruot_trajectories", "ruot_landscape"} <= set(fitted.uns)


def test_cli_example_no_figures_option():
    from ruotools.cli import build_parser

    args = build_parser().parse_args(["example", "-o", "out", "--no-figures"])
    assert args.no_figures
    assert not build_parser().parse_args(["example", "-o", "out"]).no_figures


def test_cli_fit_missing_time_key(tmp_path, capsys):
    src = tmp_path / "gene.h5ad"
    datasets.simulated_gene().write_h5ad(src)
    out = tmp_path / "out.h5ad"
    rc = main(["fit", str(src), "--time-key", "nope", "-o", str(out), "--max-epochs", "2", "--no-progress"])
    assert rc == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("ruotools: error: ")
    assert "nope" in lines[0]
    assert not out.exists()


def test_cli_fit_end_to_end(tmp_path):
    src = tmp_path / "gene.h5ad"
    datasets.simulated_gene().write_h5ad(src)
    out = tmp_path / "sub" / "out.h5ad"
    rc = main(["fit", str(src), "--time-key", "time", "-o", str(out), "--max-epochs", "2", "--no-progress"])
    assert rc == 0
    fitted = ad.read_h5ad(out)
    assert "ruot_growth_rate" in fitted.obs
    assert "ruot" in fitted.uns
    # the input file is left as it was
    assert "ruot_growth_rate" not in ad.read_h5ad(src).obs


def test_cli_fit_flavor(tmp_path, capsys):
    src = tmp_path / "gene.h5ad"
    datasets.simulated_gene()[::10].copy().write_h5ad(src)
    out = tmp_path / "out.h5ad"
    argv = ["fit", str(src), "--time-key", "time", "-o", str(out), "--max-epochs", "1", "--no-progress"]
    assert main([*argv, "--flavor", "var_ruot"]) == 0
    fitted = ad.read_h5ad(out)
    assert fitted.uns["ruot"]["params"]["flavor"] == "var_ruot"
    assert list(fitted.uns["ruot"]["history"]) == ["least_action", "score"]
    capsys.readouterr()
    assert main([*argv, "--flavor", "varruot"]) == 2
    (line,) = _error_lines(capsys)
    assert "--flavor" in line
    assert "'deepruot', 'var_ruot'" in line
