"""The sweep spec: ranges, validation errors, TOML round trip, presets against the paper's Table 1."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surge.errors import SurgeError
from surge.sweep import BatchGrid, LRGrid, OptimizerConfig, SweepSpec, get_preset, list_presets, load_spec
from surge.sweep.spec import spec_from_dict, spec_from_toml

BASE = """
workload = "fake"
rounds = 2
[lr]
start = 1e-4
stop = 1e-3
step = 1e-4
[batch_size]
values = [1, 2, 4]
"""


def toml(extra_top: str = "", base: str = BASE) -> str:
    return extra_top + "\n" + base


# -- ranges ----------------------------------------------------------------------------------------


def test_lr_range_is_inclusive_and_free_of_float_error():
    points = LRGrid(start=1e-4, stop=1e-3, step=1e-4).points()
    assert points == (1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3)
    assert repr(points[2]) == "0.0003"  # not 0.00030000000000000003


def test_ranges_of_table_1():
    # DistilGPT2 rows: stop exactly on the grid.
    assert len(LRGrid(start=1e-5, stop=1.09e-3, step=1.2e-4).points()) == 10
    assert LRGrid(start=1e-5, stop=5.5e-4, step=6e-5).points()[-1] == 5.5e-4
    assert BatchGrid(start=4, stop=114, step=10).points() == tuple(range(4, 115, 10))
    # ResNet-18 row: stop off the grid, the range ends at the last point not past it.
    lrs = LRGrid(start=1e-4, stop=7.876e-4, step=7.65e-5).points()
    assert len(lrs) == 9 and lrs[-1] <= 7.876e-4
    assert BatchGrid(start=16, stop=376, step=33).points()[-1] == 346


@given(start=st.integers(1, 50), n=st.integers(1, 40), step_e=st.integers(-6, -2), mant=st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_lr_range_has_the_right_number_of_points(start, n, step_e, mant):
    step = mant * 10.0**step_e
    lo = start * step
    hi = lo + (n - 1) * step  # float arithmetic: may land a hair above or below the exact grid point
    points = LRGrid(start=lo, stop=hi, step=step).points()
    assert len(points) == n
    for i, p in enumerate(points):
        assert math.isclose(p, lo + i * step, rel_tol=1e-10)


def test_single_point_range():
    assert BatchGrid(start=8, stop=8, step=1).points() == (8,)


def test_bare_array_is_a_list_of_values():
    spec = spec_from_toml(toml("batch_size = [8, 2]").replace("[batch_size]\nvalues = [1, 2, 4]", ""))
    assert spec.batch_sizes == (8, 2)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exc", "match"),
    [
        (toml("bogus = 1"), ValueError, r"unknown key 'bogus' at the top level of the spec"),
        (toml("round = 1"), ValueError, r"unknown key 'round'.*did you mean 'rounds'"),
        (
            toml() + "[optimizer]\nname = 'adam'\nbeta = [0.9, 0.99]\n",
            ValueError,
            r"unknown key 'beta' in section \[optimizer\].*did you mean 'betas'",
        ),
        (toml().replace("step = 1e-4", "step = 1e-4\nend = 1"), ValueError, r"unknown key 'end' in section \[lr\]"),
        (toml("rounds_ = 'x'"), ValueError, r"unknown key 'rounds_'"),
        (toml().replace("rounds = 2", "rounds = 'ten'"), TypeError, r"rounds must be an integer, got 'ten' \(string\)"),
        (toml().replace("rounds = 2", "rounds = 2.0"), TypeError, r"rounds must be an integer.*write 2"),
        (toml().replace("rounds = 2", "rounds = 0"), ValueError, r"rounds must be positive, got 0"),
        (toml().replace("[1, 2, 4]", "[1, 2.5]"), TypeError, r"batch_size.values\[1\] must be an integer"),
        (toml().replace("[1, 2, 4]", "[1, 0]"), ValueError, r"batch_size.values\[1\] must be positive, got 0"),
        (toml().replace("[1, 2, 4]", "[]"), ValueError, r"batch_size.values must not be empty"),
        (toml().replace("[1, 2, 4]", "[1, 2, 2]"), ValueError, r"batch_size.values has duplicates: 2"),
        (toml().replace("stop = 1e-3", "stop = 1e-5"), ValueError, r"lr range is reversed: stop 1e-05 < start 0.0001"),
        (toml().replace("step = 1e-4", "step = 0.0"), ValueError, r"lr.step must be > 0, got 0"),
        (toml().replace("start = 1e-4", "start = -1e-4"), ValueError, r"lr.start must be > 0, got -0.0001"),
        (toml().replace("step = 1e-4\n", ""), ValueError, r"lr.step is missing"),
        (toml().replace("start = 1e-4", "start = 'a'"), TypeError, r"lr.start must be a number, got 'a' \(string\)"),
        (
            toml("batch_size = 3").replace("[batch_size]\nvalues = [1, 2, 4]", ""),
            TypeError,
            r"batch_size must be a table \(start, stop, step\) or an array",
        ),
        (
            toml().replace("[batch_size]\nvalues = [1, 2, 4]", "[batch_size]\nvalues = [1]\nstart = 1"),
            ValueError,
            r"batch_size takes either values or start/stop/step, not both",
        ),
        (
            toml() + "[optimizer]\nname = 'adagrad'\n",
            ValueError,
            r"optimizer.name must be one of 'adam', 'adamw', 'sgd', 'signsgd', 'lion'; got 'adagrad'",
        ),
        (toml() + "[optimizer]\nbetas = [0.9]\n", ValueError, r"optimizer.betas must have 2 elements"),
        (toml() + "[optimizer]\nbetas = [0.9, 1.0]\n", ValueError, r"optimizer.betas\[1\] must be < 1, got 1"),
        (toml() + "[optimizer]\neps = -1.0\n", ValueError, r"optimizer.eps must be >= 0"),
        (toml() + "[optimizer]\nbetas = 0.9\n", TypeError, r"optimizer.betas must be an array"),
        (toml("target_loss = [0.5, 0.6]"), ValueError, r"target_loss must be strictly decreasing"),
        (toml("target_loss = [0.5, 0.0]"), ValueError, r"target_loss\[1\] must be > 0, got 0"),
        (toml("target_loss = []"), ValueError, r"target_loss must not be empty"),
        (toml("extra_steps = 0"), ValueError, r"extra_steps must be positive, got 0"),
        (toml("max_steps = -5"), ValueError, r"max_steps must be positive, got -5"),
        (toml("max_examples = 0"), ValueError, r"max_examples must be positive"),
        (toml("seed = -1"), ValueError, r"seed must be >= 0, got -1"),
        (toml("device = 'tpu'"), ValueError, r"device must be 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"),
        (toml("dtype = 'int8'"), ValueError, r"dtype must be one of 'float32', 'float64'; got 'int8'"),
        (toml("strategy = 'fast'"), ValueError, r"strategy must be one of 'auto', 'lockstep', 'loop'"),
        (toml("group_size = 0"), ValueError, r"group_size must be positive"),
        (toml("workload = ''", base=BASE.replace('workload = "fake"', "")), ValueError, r"workload must not be empty"),
        (BASE.replace('workload = "fake"', ""), ValueError, r"the spec lacks the required key 'workload'"),
        ("workload = [", ValueError, r"spec is not valid TOML"),
    ],
)
def test_spec_errors_name_the_key(text, exc, match):
    with pytest.raises(exc, match=match):
        spec_from_toml(text)


def test_python_construction_validates_too():
    with pytest.raises(ValueError, match=r"lr range is reversed"):
        SweepSpec(workload="fake", lr=LRGrid(start=1.0, stop=0.5, step=0.1), batch_size=BatchGrid(values=(1,)))
    with pytest.raises(ValueError, match=r"optimizer.momentum must be < 1"):
        OptimizerConfig(name="sgd", momentum=1.5)
    with pytest.raises(TypeError, match=r"a sweep spec must be a table"):
        spec_from_dict([1, 2])
    for step in (1e-300, 1e-320):  # 1e-320: the point count overflows a float (was OverflowError)
        with pytest.raises(SurgeError, match=r"lr range 0.0001..0.001 by .* points; the limit is 10000 per axis"):
            LRGrid(start=1e-4, stop=1e-3, step=step)


def test_load_spec_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"SPEC file '.*nope.toml' does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("workload = \n")
    with pytest.raises(ValueError, match=r"SPEC file '.*bad.toml' is not valid TOML"):
        load_spec(bad)
    good = tmp_path / "mine.toml"
    good.write_text(BASE)
    assert load_spec(good).name == "mine"  # the name defaults to the file's stem


# -- serialisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", [p.name for p in list_presets()])
def test_toml_round_trip_of_presets(preset, tmp_path):
    spec = get_preset(preset)
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml())
    again = load_spec(path)
    assert again == spec
    assert again.spec_hash() == spec.spec_hash()


def test_toml_round_trip_of_every_field():
    spec = SweepSpec(
        name='all fields "quoted"',
        workload="pkg.mod:attr",
        lr=LRGrid(values=(3e-4, 1e-3)),
        batch_size=BatchGrid(start=2, stop=10, step=4),
        optimizer=OptimizerConfig(name="adamw", betas=(0.0, 0.0), eps=1e-6, weight_decay=0.1, momentum=0.0),
        rounds=3,
        seed=7,
        target_loss=(1.5, 0.25),
        extra_steps=11,
        max_steps=123,
        max_examples=4567,
        device="cuda:1",
        dtype="float64",
        strategy="loop",
        data_dir="/tmp/d",
        group_size=9,
    )
    assert spec_from_toml(spec.to_toml()) == spec
    assert spec_from_dict(spec.to_dict()) == spec


def test_hash_changes_with_content():
    a = spec_from_toml(BASE)
    assert a.spec_hash() == spec_from_toml(BASE).spec_hash()
    assert a.spec_hash() != a.replace(rounds=3).spec_hash()


# -- presets ---------------------------------------------------------------------------------------


def test_presets_are_table_1_cnn_rows():
    small, large = get_preset("cnn-small-batch"), get_preset("cnn-large-batch")
    for spec in (small, large):
        assert spec.workload == "cnn-fashion-mnist"
        assert spec.optimizer.name == "adam" and spec.optimizer.betas == (0.9, 0.999)
        assert spec.lrs == tuple(round(1e-4 * k, 10) for k in range(1, 11))
        assert spec.rounds == 100
    assert small.batch_sizes == tuple(range(1, 13))
    assert large.batch_sizes == tuple(range(64, 1165, 100))
    assert small.n_trials == large.n_trials == 10 * 12 * 100


def test_smoke_preset_is_tiny():
    spec = get_preset("smoke")
    assert spec.rounds == 2 and len(spec.target_loss) == 2
    assert 2 <= len(spec.lrs) <= 4 and 2 <= len(spec.batch_sizes) <= 4


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'; available: cnn-small-batch, cnn-large-batch, smoke"):
        get_preset("nope")
