import argparse
import re
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from ruotools import datasets
from ruotools.cli import main, parse_train_kwargs


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
    # the table of rt.tl.evaluate (which may add reference columns such as W1_floor)
    assert {"W1", "W2", "TMV", "RME", "action"} <= set(metrics.columns)
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


# Growth, relative masses and time labels from the command line (issue 16).

#: Python keywords of `rt.tl.fit_ruot` that a command-line message must not show.
PYTHON_NAMES = re.compile(
    r"\b(time_key|use_rep|n_dims|relative_mass|random_state|batch_size|checkpoint_dir|key_added|growth=)\b"
)


def _day_labels_file(tmp_path, counts=(30, 4, 30)):
    """An .h5ad whose obs['day'] holds "day 0", "day 2", "day 4" with ``counts`` cells (few on day 2)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["day 0", "day 2", "day 4"], counts)
    t = np.repeat([0.0, 2.0, 4.0], counts)
    adata = ad.AnnData((rng.normal(size=(len(t), 3)) + t[:, None]).astype(np.float32))
    adata.obs["day"] = pd.Categorical(labels)
    src = tmp_path / "days.h5ad"
    adata.write_h5ad(src)
    return src


def _fit_argv(src, out, *extra):
    return ["fit", str(src), "--time-key", "day", "-o", str(out), "--max-epochs", "1", "--no-progress",
            "--batch-size", "16", "--accelerator", "cpu", *extra]  # fmt: skip


def test_cli_fit_warns_in_flags_when_growth_comes_from_cell_counts(tmp_path, capsys, ruotools_log):
    src, out = _day_labels_file(tmp_path), tmp_path / "out.h5ad"
    assert main(_fit_argv(src, out)) == 0
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if line.startswith("ruotools: warning: ")]
    assert "`--relative-mass` is not given" in warning
    assert "proportional to the number of cells sampled" in warning
    assert "30 → 4 cells from day 0 to 2" in warning
    assert '`--relative-mass "TIME:SIZE,…"`' in warning
    assert "`--no-growth`" in warning
    assert not PYTHON_NAMES.search(warning)
    assert '"day 2" → 2.0' in ruotools_log.text  # the labels' mapping is logged
    fitted = ad.read_h5ad(out)
    assert not bool(fitted.uns["ruot"]["params"]["relative_mass_given"])
    np.testing.assert_allclose(fitted.uns["ruot"]["params"]["relative_mass"], [1.0, 4 / 30, 1.0])


def test_cli_fit_relative_mass_alpha_sigma(tmp_path, capsys):
    src, out = _day_labels_file(tmp_path), tmp_path / "out.h5ad"
    argv = _fit_argv(src, out, "--relative-mass", "day 0:2, day 2:3.6,4:6.2", "--alpha", "0.5", "--sigma", "0.3")
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err
    params = ad.read_h5ad(out).uns["ruot"]["params"]
    np.testing.assert_allclose(params["relative_mass"], [1.0, 1.8, 3.1])
    assert bool(params["relative_mass_given"])
    assert params["alpha"] == pytest.approx(0.5)
    assert params["sigma"] == pytest.approx(0.3)
    assert bool(params["growth"])


def test_cli_fit_no_growth(tmp_path, capsys):
    src, out = _day_labels_file(tmp_path), tmp_path / "out.h5ad"
    assert main(_fit_argv(src, out, "--no-growth")) == 0
    assert "warning" not in capsys.readouterr().err  # no growth: the counts are not used as masses
    fitted = ad.read_h5ad(out)
    assert not bool(fitted.uns["ruot"]["params"]["growth"])
    assert not bool(fitted.uns["ruot"]["params"]["relative_mass_given"])
    assert (fitted.obs["ruot_growth_rate"] == 0).all()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--n-dims", "5"], "`--n-dims 5` exceeds the 3 columns of `adata.X`; pass `--n-dims <= 3`"),
        (["--sigma", "-1"], "`--sigma` must be a finite number ≥ 0"),
        (["--alpha", "-1"], "`--alpha` must be a finite number ≥ 0"),
        (["--flavor", "var_ruot", "--alpha", "0"], "`--flavor var_ruot` with growth needs `--alpha` > 0"),
        (["--relative-mass", "day 0:1,day 2:1.8"], "`--relative-mass` has no entry for time point(s) [4.0]"),
        (["--relative-mass", "ctrl:1,day 2:1.8,day 4:3"], "`--relative-mass` keys must be time points"),
        (["--relative-mass", "day 0:1,day 2:0,day 4:3"], "`--relative-mass` values must be positive"),
        (["--use-rep", "X_bad"], "or pass `--use-rep X`"),
        (["--resume"], "`--resume` needs the `--checkpoint-dir` of the interrupted fit"),
    ],
)
def test_cli_errors_speak_in_flags(tmp_path, capsys, extra, expected):
    src, out = _day_labels_file(tmp_path, counts=(10, 10, 10)), tmp_path / "out.h5ad"
    assert main(_fit_argv(src, out, *extra)) == 2
    (line,) = _error_lines(capsys)
    assert line.startswith("ruotools: error: ")
    assert expected in line
    assert not PYTHON_NAMES.search(line)
    assert not out.exists()


def test_cli_error_for_unreadable_time_labels(tmp_path, capsys):
    adata = ad.read_h5ad(_day_labels_file(tmp_path, counts=(10, 10, 10)))
    adata.obs["stage"] = pd.Categorical(np.repeat(["ctrl", "day2_rep1", "day 4"], 10))
    src = tmp_path / "stage.h5ad"
    adata.write_h5ad(src)
    assert main(["fit", str(src), "--time-key", "stage", "-o", str(tmp_path / "out.h5ad")]) == 2
    (line,) = _error_lines(capsys)
    assert "'ctrl' (no number)" in line
    assert "then pass `--time-key stage_numeric`" in line


@pytest.mark.parametrize("command", [["fit", "in.h5ad", "--time-key", "t", "-o", "o.h5ad"], ["example", "-o", "d"]])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_cli_max_epochs_must_be_positive(command, value, capsys):
    assert main([*command, "--max-epochs", value]) == 2
    (line,) = _error_lines(capsys)
    assert "argument --max-epochs: must be a positive integer" in line


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("day 0=1", "expected TIME:SIZE pairs separated by commas"),
        ("0:1,,2:3", "expected TIME:SIZE pairs"),
        (":1", "expected TIME:SIZE pairs"),
        ("0:1,2:big", "the size of '2' must be a number, got 'big'"),
        ("day 2:1,day 2:3", "time 'day 2' is given twice"),
    ],
)
def test_cli_relative_mass_syntax_errors(value, message, capsys):
    argv = ["fit", "in.h5ad", "--time-key", "t", "-o", "o.h5ad", f"--relative-mass={value}"]
    assert main(argv) == 2
    (line,) = _error_lines(capsys)
    assert "argument --relative-mass" in line
    assert message in line


def test_parse_relative_mass():
    from ruotools.cli import parse_relative_mass

    assert parse_relative_mass("0:1,2:1.8,4:3.1") == {"0": 1.0, "2": 1.8, "4": 3.1}
    assert parse_relative_mass(" day 0 : 1 , Day 2:1.8") == {"day 0": 1.0, "Day 2": 1.8}
    assert parse_relative_mass("-1:1,0:2.5") == {"-1": 1.0, "0": 2.5}
    assert parse_relative_mass("t 12:00:2") == {"t 12:00": 2.0}  # the last colon ends TIME


def test_to_options_rewrites_quoted_arguments_only():
    from ruotools.cli import OPTION_OF_ARGUMENT, to_options

    assert to_options("Pass `time_key=` one of the `.obs` columns.") == "Pass `--time-key` one of the `.obs` columns."
    assert to_options("`growth=False` or `resume=True`") == "`--no-growth` or `--resume`"
    assert to_options("`random_state` must be") == "`--seed` must be"
    assert to_options("`flavor='var_ruot'` needs `alpha` > 0") == "`--flavor var_ruot` needs `--alpha` > 0"
    # code that merely contains an argument's name, and unquoted words, are left alone
    kept = "`adata.obs['time_key']` and time_key, `lambda_ot`"
    assert to_options(kept) == kept
    assert to_options("`sigma` and an unpaired ` backtick") == "`sigma` and an unpaired ` backtick"
    # every option named exists on `ruotools fit`
    from ruotools.cli import build_parser

    fit_help = build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    for option in OPTION_OF_ARGUMENT.values():
        assert option in fit_help


def test_cli_fit_train_kwargs(tmp_path, capsys):
    # two time points: var_ruot's geodesic target is on by default, and --train-kwargs turns it off
    gene = datasets.simulated_gene()[::10]
    src = tmp_path / "two.h5ad"
    gene[gene.obs["time"] <= 1].copy().write_h5ad(src)
    out = tmp_path / "out.h5ad"
    argv = ["fit", str(src), "--time-key", "time", "-o", str(out), "--max-epochs", "1", "--no-progress"]
    assert main([*argv, "--flavor", "var_ruot", "--train-kwargs", '{"lambda_geodesic": 0}']) == 0
    assert ad.read_h5ad(out).uns["ruot"]["model"]["config"]["lambda_geodesic"] == 0.0
    assert main([*argv, "--flavor", "var_ruot"]) == 0
    assert ad.read_h5ad(out).uns["ruot"]["model"]["config"]["lambda_geodesic"] == 0.1
    capsys.readouterr()
    for value, expected in [("[0]", "a JSON object of settings"), ("{lambda: 0}", "not JSON")]:
        assert main([*argv, "--train-kwargs", value]) == 2
        (line,) = _error_lines(capsys)
        assert "--train-kwargs" in line
        assert expected in line
    # a setting that only the other flavor uses: the library's message, in terms of the option
    assert main([*argv, "--train-kwargs", '{"lambda_geodesic": 0}']) == 2
    (line,) = _error_lines(capsys)
    assert "`--train-kwargs` key 'lambda_geodesic' does not apply to flavor 'deepruot'" in line


def test_parse_train_kwargs():
    assert parse_train_kwargs('{"lambda_geodesic": 0.2, "steps_per_epoch": 5}') == {
        "lambda_geodesic": 0.2,
        "steps_per_epoch": 5,
    }
    with pytest.raises(argparse.ArgumentTypeError, match="not JSON"):
        parse_train_kwargs("lambda_geodesic=0")
