#!/usr/bin/env bash
# GPU check for ruotools: installs nothing; needs the package and its test extra installed and one CUDA GPU.
# Fits the simulated gene network and the embryoid-body-sized synthetic set (17,000 cells x 100 dims x 5 times)
# with default settings on the GPU, prints fit time, accuracy and peak GPU memory, then runs the `gpu` tests.
# Sized to finish in under 5 minutes on one GPU.   Usage: bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python - <<'PY'
import time

import torch

import ruotools as rt

assert torch.cuda.is_available(), "no CUDA device visible"
rt.settings.verbosity = "warning"
print(f"device: {torch.cuda.get_device_name()} | torch {torch.__version__} | ruotools {rt.__version__}")
print("| data | cells x dims x times | fit (s) | W1 per later time (SDE) | peak GPU memory (MB) |")
print("|---|---|---|---|---|")
datasets = {
    "simulated_gene": rt.datasets.simulated_gene,
    "synthetic EB-sized": lambda: rt.datasets.synthetic_branching(17_000, 100, 5, random_state=0),
}
for name, load in datasets.items():
    adata = load()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    rt.tl.fit_ruot(adata, "time", use_rep="X", accelerator="cuda", random_state=0, show_progress_bar=False)
    torch.cuda.synchronize()
    fit_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20
    w1 = rt.tl.evaluate(adata, max_cells=2000, random_state=0)["W1"]
    n_times = adata.obs["time"].nunique()
    shape = f"{adata.n_obs:,} x {adata.n_vars} x {n_times}"
    print(f"| {name} | {shape} | {fit_s:.1f} | {' / '.join(f'{w:.3f}' for w in w1)} | {peak:.0f} |", flush=True)
PY

MPLBACKEND=Agg python -m pytest -m gpu -q -p no:cacheprovider
