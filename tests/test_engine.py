"""The engine options: checked at the door, before a cluster, model or dataset is touched, in the
same words in the library and on the command line (no Ray cluster is started here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fake_store import write_fake_store
from test_cli_errors import ANALYZE, _invoke, _one_line, no_loading  # noqa: F401 (a fixture)

from mmpid.engine import EngineOptions
from mmpid.errors import InputError, OptionError
from mmpid.pipeline import estimate_store, extract_features


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "spark"}, "'engine' must be one of ['local', 'ray']; got 'spark'."),
        ({"workers": 2}, "'workers' must be left out with engine='local'; got 2. It sizes the Ray engine's pool"),
        ({"address": "auto"}, "'address' must be left out with engine='local'; got 'auto'. It names a Ray cluster"),
        ({"gpus_per_worker": 1}, "'gpus_per_worker' must be left out with engine='local'; got 1.0."),
        ({"engine": "ray", "workers": 0}, "'workers' must be None (what the cluster allows) or an int >= 1; got 0."),
        ({"engine": "ray", "workers": True}, "'workers' must be None (what the cluster allows) or an int >= 1"),
        ({"engine": "ray", "gpus_per_worker": -1}, "'gpus_per_worker' must be a number >= 0, e.g. 1; got -1."),
        ({"engine": "ray", "cpus_per_worker": 0}, "'cpus_per_worker' must be a number > 0, e.g. 1; got 0.0."),
        ({"engine": "ray", "address": " "}, "'address' must be None or a Ray address such as 'auto'"),
        ({"engine": "ray", "tables_per_task": -1}, "'tables_per_task' must be an int >= 0 (0: one task per layer)"),
        ({"tables_per_task": 10}, "'tables_per_task' must be left out with engine='local'; got 10."),
    ],
)
def test_engine_options_name_the_option(kwargs: dict[str, object], message: str) -> None:
    if kwargs.get("engine") == "ray":
        pytest.importorskip("ray")
    with pytest.raises(OptionError) as info:
        EngineOptions(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, InputError)


def test_without_ray_the_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find(name, *a))
    with pytest.raises(OptionError, match=r"Ray is not installed; got 'ray'\. Install it with: pip install \"mmpid\[ray\]\""):
        EngineOptions(engine="ray")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "--engine must be one of ['local', 'ray']; got 'spark'."),
        (["--workers", "2"], "--workers must be left out with engine='local'; got 2."),
        (["--address", "auto"], "--address must be left out with engine='local'; got 'auto'."),
        (["--gpus-per-worker", "1"], "--gpus-per-worker must be left out with engine='local'; got 1.0."),
    ],
)
def test_cli_engine_flags_fail_before_any_work(
    no_loading: None, tmp_path: Path, args: list[str], message: str  # noqa: F811
) -> None:
    for command in (ANALYZE, ["extract", "--model", "zoo:normal"]):
        out = tmp_path / "out"
        code, output = _invoke(*command, "--out", str(out), *args)
        assert code == 2
        assert message in _one_line(output)
        assert not out.exists()


def test_cli_estimate_checks_the_engine_before_reading(tmp_path: Path) -> None:
    store = write_fake_store(tmp_path / "store")
    code, output = _invoke("estimate", str(store), "--out", str(tmp_path / "r"), "--workers", "3")
    assert code == 2 and "--workers must be left out with engine='local'; got 3." in _one_line(output)
    assert not (tmp_path / "r").exists()


def test_library_checks_the_engine_before_loading(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="'engine' must be one of"):
        extract_features("zoo:nope", tmp_path / "s", engine="dask")
    with pytest.raises(OptionError, match="'workers' must be left out"):
        estimate_store(tmp_path / "missing", tmp_path / "r", workers=2)
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()


def test_pinned_threads_limits_and_restores() -> None:
    import numba
    import torch
    from threadpoolctl import threadpool_info

    from mmpid.distributed import pinned_threads

    numba.get_num_threads()  # numba's threading layer starts on first use, and resets OpenMP's pool
    before = (torch.get_num_threads(), numba.get_num_threads())
    with pinned_threads(1):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


def test_worker_failures_become_mmpid_errors() -> None:
    from mmpid.distributed import _worker_errors
    from mmpid.engine import EngineError
    from mmpid.errors import DatasetError

    died = type("ActorDiedError", (Exception,), {"__module__": "ray.exceptions"})
    report = "The actor died.\nTraceback (most recent call last):\n  File x\nmmpid.errors.DatasetError: differs"
    expected = r"^Extraction failed on a Ray worker: mmpid\.errors\.DatasetError: differs \("
    with pytest.raises(EngineError, match=expected), _worker_errors("Extraction"):
        raise died(report)
    carried = died("RayTaskError(DatasetError): ...")
    carried.cause = DatasetError("no such column 'image'")  # what Ray's task errors carry
    with pytest.raises(DatasetError, match="^no such column 'image'$"), _worker_errors("Loading the model"):
        raise carried
    with pytest.raises(KeyError), _worker_errors("Extraction"):  # not from Ray: untouched
        raise KeyError("x")


@pytest.mark.parametrize(
    ("n", "per_task", "bounds"),
    [
        (250, 100, [(0, 100), (100, 250)]),  # the remainder joins the last chunk
        (199, 100, [(0, 199)]),  # fewer than two full chunks: one
        (300, 100, [(0, 100), (100, 200), (200, 300)]),
        (31, 8, [(0, 8), (8, 16), (16, 31)]),
        (500, 0, [(0, 500)]),  # 0: never cut
    ],
)
def test_chunk_bounds_cover_the_stack_once(n: int, per_task: int, bounds: list[tuple[int, int]]) -> None:
    from mmpid.distributed import chunk_bounds

    assert chunk_bounds(n, per_task) == bounds


def test_an_estimate_with_its_solves_cut_into_chunks_is_the_same_to_the_last_bit() -> None:
    """The hook the Ray engine uses: estimate() hands its whole stack of tables to the splitter,
    and chunks solved apart and joined give the atoms of one solve."""
    import numpy as np

    from mmpid import estimate, synthetic
    from mmpid.distributed import chunk_bounds
    from mmpid.estimate.solve import AtomColumns, solve_tables, splitting_solves

    d = synthetic.make("and", 600, dim_image=8, dim_text=8, seed=3)
    kwargs = {"n_bootstrap": 40, "n_permutations": 20, "seed": 5}
    whole = estimate(d.x_image, d.x_text, d.y, **kwargs)
    stacks: list[int] = []

    def split(tables: np.ndarray, method: str, backend: str) -> AtomColumns:
        stacks.append(len(tables))
        parts = [solve_tables(tables[a:b], method=method, backend=backend) for a, b in chunk_bounds(len(tables), 7)]
        return AtomColumns.concatenate(parts)

    with splitting_solves(split):
        cut = estimate(d.x_image, d.x_text, d.y, **kwargs)
    assert stacks == [1 + 40 + 20]
    assert cut.to_frame().equals(whole.to_frame())
    assert cut.details["solver"] == whole.details["solver"]
