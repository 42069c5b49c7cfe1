"""Progress output in logs and pipes, and the warning for fits on UMAP / t-SNE coordinates."""

import io
import re
import warnings

import numpy as np
import pytest

import ruotools as rt
from ruotools import _logging as logg
from ruotools import _validation as val

# --------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_line_progress_is_coarse_and_has_no_carriage_returns():
    out = io.StringIO()
    bar = logg.LineProgress(range(1000), desc="  pretrain", unit="epoch", file=out)
    for i in bar:
        bar.set_postfix(loss=f"{1.0 / (i + 1):.3g}")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10  # one per tenth
    assert lines[0].startswith("pretrain: epoch 100/1000, loss=0.01 (")
    assert lines[-1].startswith("pretrain: epoch 1000/1000, loss=0.001 (")


def test_line_progress_reports_an_early_stop_once():
    out = io.StringIO()
    bar = logg.LineProgress(range(100), desc="joint", unit="epoch", file=out)
    for i in bar:
        if i == 14:
            break
    bar.close()
    bar.close()
    lines = out.getvalue().splitlines()
    # at 10 (a tenth), then the stop at epoch 15 when closed — and a second close adds nothing
    assert [line.split(" (")[0] for line in lines] == ["joint: epoch 10/100", "joint: epoch 15/100"]


def test_short_loop_prints_each_step_and_empty_loop_prints_nothing():
    out = io.StringIO()
    for _ in logg.LineProgress(range(3), desc="refine", file=out):
        pass
    assert len(out.getvalue().splitlines()) == 3
    out = io.StringIO()
    bar = logg.LineProgress(range(0), desc="score", file=out)
    list(bar)
    bar.close()
    assert out.getvalue() == ""


def test_progress_bar_is_tqdm_in_a_terminal_only(monkeypatch):
    """A terminal keeps the redrawn tqdm bar (carriage returns); a pipe gets plain lines."""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bar = logg.progress_bar(range(5), desc="pretrain", unit="epoch")
    list(bar)
    bar.close()
    assert "\r" in terminal.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    bar = logg.progress_bar(range(5), desc="pretrain", unit="epoch")
    assert isinstance(bar, logg.LineProgress)
    list(bar)
    bar.close()
    assert "\r" not in pipe.getvalue()
    assert len(pipe.getvalue().splitlines()) == 5


def test_fit_with_progress_into_a_non_tty_stream(tiny_fit_kwargs, capsys):
    """A tiny fit with the progress bar on, stderr captured (not a TTY): no carriage returns and a
    bounded number of lines per phase."""
    kwargs = {**tiny_fit_kwargs, "show_progress_bar": True, "early_stopping": False}
    kwargs["max_epochs"] = {"pretrain": 25, "refine": 2, "score": 2, "joint": 1}
    adata = rt.datasets.simulated_gene()[::6].copy()
    rt.tl.fit_ruot(adata, "time", **kwargs)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if re.match(r"^\s*\w+: epoch \d+/\d+", line)]
    by_phase = {}
    for line in lines:
        by_phase.setdefault(line.split(":")[0].strip(), []).append(line)
    assert set(by_phase) == {"pretrain", "refine", "score", "joint"}
    assert len(by_phase["pretrain"]) == 10  # 25 epochs, one line per tenth
    assert by_phase["pretrain"][-1].startswith("pretrain: epoch 25/25")
    assert [len(v) for k, v in by_phase.items() if k != "pretrain"] == [2, 2, 1]
    assert "loss=" in by_phase["pretrain"][-1]


# --------------------------------------------------------------------------- fits on embeddings

EMBEDDING_WARNING = r"UMAP and t-SNE distort distances.*use_rep='X_pca'"


def _with_embedding(key):
    adata = rt.datasets.simulated_gene()[::10].copy()
    adata.obsm[key] = np.asarray(adata.X, dtype=np.float32).copy()
    return adata


@pytest.mark.parametrize("key", ["X_umap", "X_UMAP", "X_tsne", "X_tSNE", "X_t-SNE", "umap_3d"])
def test_fit_on_an_embedding_warns(key):
    """The warning comes before training (here a missing time column stops the call right after)."""
    adata = _with_embedding(key)
    with pytest.warns(UserWarning, match=EMBEDDING_WARNING) as record, pytest.raises(KeyError, match="nope"):
        rt.tl.fit_ruot(adata, "nope", use_rep=key)
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the user's call
    assert key in str(record[0].message)


@pytest.mark.parametrize("key", ["X_pca", "X_diffmap", "X"])
def test_fit_on_other_representations_does_not_warn(key):
    adata = _with_embedding("X_pca")
    adata.obsm["X_diffmap"] = adata.obsm["X_pca"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*UMAP and t-SNE")
        with pytest.raises(KeyError, match="nope"):
            rt.tl.fit_ruot(adata, "nope", use_rep=key)


def test_reading_an_embedding_outside_a_fit_does_not_warn():
    """Tools that only read coordinates (plots, kNN projections) do not repeat the warning."""
    adata = _with_embedding("X_umap")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*UMAP and t-SNE")
        x, key, _ = val.resolve_rep(adata, "X_umap", None)
    assert key == "X_umap"
    np.testing.assert_array_equal(x, np.asarray(adata.obsm["X_umap"], dtype=np.float64))


def test_complete_fit_on_umap_warns_and_still_fits(tiny_fit_kwargs):
    adata = _with_embedding("X_umap")
    with pytest.warns(UserWarning, match=EMBEDDING_WARNING):
        model = rt.tl.fit_ruot(adata, "time", use_rep="X_umap", **tiny_fit_kwargs)
    assert model.use_rep == "X_umap"
    assert "ruot_velocity_umap" in adata.obsm
