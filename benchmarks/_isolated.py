"""Shared by the benchmark scripts: one fresh process per (dataset, seed), and table formatting."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pandas as pd


def run_isolated(run_one: Callable[[str, int], pd.DataFrame], datasets, seeds) -> pd.DataFrame:
    """Call ``run_one(name, seed)`` in a fresh spawned process each, so time and peak memory are its own."""
    frames = []
    ctx = mp.get_context("spawn")
    for name in datasets:
        for seed in seeds:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                frames.append(pool.submit(run_one, name, seed).result())
            print(f"done {name} seed {seed}", flush=True)
    return pd.concat(frames, ignore_index=True)


def pm(s: pd.Series) -> str:
    """``mean ± std`` over seeds (std 0 for a single seed)."""
    return f"{s.mean():.3f} ± {s.std(ddof=1) if len(s) > 1 else 0.0:.3f}"


def settings(train_kwargs: dict | None) -> str:
    """Describe a run's settings for the header of its table: the defaults, or what was changed."""
    if not train_kwargs:
        return "default settings"
    return "default settings except train_kwargs " + ", ".join(f"{k}={v!r}" for k, v in train_kwargs.items())


def add_train_kwargs(parser) -> None:
    """Add ``--train-kwargs JSON`` (extra ``train_kwargs`` for every fit) to a benchmark's argument parser."""
    parser.add_argument(
        "--train-kwargs",
        type=json.loads,
        default=None,
        help="JSON of extra `train_kwargs` for every fit, e.g. '{\"lambda_curl\": 0.02}' (default: none)",
    )


def with_train_kwargs(fit_kw: dict | None, train_kwargs: dict | None) -> dict:
    """``fit_kw`` with ``train_kwargs`` merged into its own ``train_kwargs`` (a new dict; the given ones unchanged)."""
    fit_kw = dict(fit_kw or {})
    if train_kwargs:
        fit_kw["train_kwargs"] = {**fit_kw.get("train_kwargs", {}), **train_kwargs}
    return fit_kw
