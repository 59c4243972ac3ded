"""ltmpq.artifacts: the cached intermediate results of a run (checkpoint, features, classifiers)."""

from __future__ import annotations

import pytest
import torch

import ltmpq.artifacts as artifacts
from ltmpq.config import DecoupleConfig


@pytest.mark.parametrize("entry", ["checkpoint", "features", "classifiers"])
def test_a_loadable_but_incomplete_cache_entry_is_rebuilt(tiny_cfg, patched_data, entry, caplog):
    """Probe: {} as a checkpoint crashed with KeyError instead of being rebuilt like a corrupt one."""
    dcfg = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 1.0))
    before = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    run = artifacts.run_dir(tiny_cfg)
    if entry == "checkpoint":
        (run / "features.pt").unlink()
        torch.save({}, run / "checkpoint.pt")
    elif entry == "features":
        sha = artifacts.features(tiny_cfg, progress=False)["weights_sha256"]
        stub = {"config_hash": tiny_cfg.key, "data_sha256": None, "weights_sha256": sha}
        torch.save(stub, run / "features.pt")
    else:
        sha = artifacts.features(tiny_cfg, progress=False)["weights_sha256"]
        torch.save({}, artifacts.classifiers_path(tiny_cfg, dcfg, sha))
    with caplog.at_level("WARNING", logger="ltmpq"):
        after = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    for name, head in before.items():  # rebuilt to the same classifiers: everything is seeded
        for k, v in head.state_dict().items():
            assert torch.equal(v, after[name].state_dict()[k]), (name, k)
    if entry != "checkpoint":  # the checkpoint's note goes to tqdm, the caches' to the log
        assert "incomplete cache entry" in caplog.text
