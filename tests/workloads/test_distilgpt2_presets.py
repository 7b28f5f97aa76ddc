"""Table 1's DistilGPT2 / ELI5-Category rows as presets: the exact grids, the targets, N."""

import pytest

from surge.sweep import get_preset
from surge.sweep.plan import WorkloadUnavailable, plan_sweep
from surge.sweep.spec import load_spec
from surge.workloads import eli5

BATCHES = (4, 14, 24, 34, 44, 54, 64, 74, 84, 94, 104, 114)  # 4..114 by 10, both ends included
ADAM_LRS = (1e-5, 1.3e-4, 2.5e-4, 3.7e-4, 4.9e-4, 6.1e-4, 7.3e-4, 8.5e-4, 9.7e-4, 1.09e-3)  # 1e-5..1.09e-3 by 1.2e-4
SIGN_LRS = (1e-5, 7e-5, 1.3e-4, 1.9e-4, 2.5e-4, 3.1e-4, 3.7e-4, 4.3e-4, 4.9e-4, 5.5e-4)  # 1e-5..5.5e-4 by 6e-5


def _no_data(name, data_dir):
    raise WorkloadUnavailable(f"workload {name!r} cannot load: no ELI5-Category here")


@pytest.mark.parametrize(
    "name, betas, lrs", [("distilgpt2-adam", (0.9, 0.999), ADAM_LRS), ("distilgpt2-sign", (0.0, 0.0), SIGN_LRS)]
)
def test_grids_are_table_1_rows(name, betas, lrs, tmp_path):
    spec = get_preset(name)
    assert spec.workload == "distilgpt2-eli5" and spec.optimizer.name == "adam" and spec.optimizer.betas == betas
    assert spec.lrs == lrs and spec.batch_sizes == BATCHES
    assert spec.rounds == 30 and spec.n_trials == 10 * 12 * 30
    assert spec.target_loss == eli5.ELI5_TARGETS and spec.extra_steps == eli5.LM_EXTRA_STEPS == 50
    assert spec.max_steps == 10_000 and spec.group_size == 5
    # it plans where the data cannot be loaded (a dry run), every group one batch size of at most 5 trials
    plan = plan_sweep(spec, strict=False, resolver=_no_data)
    assert plan.n_trials == 3600 and plan.target_losses == (7.0, 6.5, 6.0) and plan.extra_steps == 50
    assert len(plan.groups) == 720 and all(len(g) <= 5 for g in plan.groups)  # 300 trials per batch size
    # and survives a round trip through TOML
    path = tmp_path / f"{name}.toml"
    path.write_text(spec.to_toml())
    assert load_spec(path) == spec
