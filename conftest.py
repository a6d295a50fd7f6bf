"""Keep every test away from the user's Hugging Face cache, token and endpoint, and from the zoo's own local Hub:
each session gets its own HF_HOME and ADAPTERZOO_HOME. Under pytest-xdist, each worker computes on one thread (and
so do the processes it starts), since the workers already use every core."""

from __future__ import annotations

import os
import shutil
import tempfile

HF_HOME = tempfile.mkdtemp(prefix="adapterzoo-tests-hf-home-")
os.environ["HF_HOME"] = HF_HOME
ADAPTERZOO_HOME = tempfile.mkdtemp(prefix="adapterzoo-tests-home-")
os.environ["ADAPTERZOO_HOME"] = ADAPTERZOO_HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for variable in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
    os.environ.pop(variable, None)
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(HF_HOME, ignore_errors=True)
    shutil.rmtree(ADAPTERZOO_HOME, ignore_errors=True)
