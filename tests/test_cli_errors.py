"""Bad input through the command line: one line naming the flag as typed, exit code 2 for a usage
error and 1 for a failure, nothing loaded or written before the options are checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_store import write_fake_store
from typer.testing import CliRunner

from mmpid import pipeline
from mmpid.cli import FLAGS, app, flag
from mmpid.errors import InputError

runner = CliRunner()


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a model or dataset would load: every check must come first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model/dataset loaded before the options were checked")

    monkeypatch.setattr(pipeline, "_load", refuse)


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: a bug, not a user error
    return result.exit_code, result.output


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A small finished input-fusion store with 3 layers, written without a model."""
    return write_fake_store(tmp_path / "store")


ANALYZE = ["analyze", "--model", "zoo:normal"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "95"], r"--level must be a number in (0, 1), e.g. 0.95; got 95.0."),
        (["--level", "0"], "--level must be a number in (0, 1)"),
        (["--limit", "0"], "--limit must be an int >= 1 (or left out for every sample); got 0."),
        (["--bootstrap", "1"], "--bootstrap must be an int >= 2; got 1."),
        (["--permutations", "1"], "--permutations must be an int >= 2; got 1."),
        (["--seed", "-1"], "--seed must be a non-negative int; got -1."),
        (["--clusters", "many"], "--clusters must be one of auto, conservative or an integer, e.g. --clusters 6; got 'many'."),
        (["--clusters", "0"], "--clusters must be one of ['auto', 'conservative'], an int >= 1"),
        (["--protocol", "pooled"], "--protocol must be one of ['input-fusion', 'span', 'tokens']; got 'pooled'."),
        (["--pooling", "median"], "--pooling must be one of ['mean', 'last', 'max']; got 'median'."),
        (["--target", "truth"], "--target must be one of ['prediction', 'label']; got 'truth'."),
        (["--target", "label"], "--target must be left at its default ('prediction') with protocol='input-fusion'"),
        (["--batch-size", "0"], "--batch-size must be an int >= 1; got 0."),
        (["--device", "tpu"], "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'tpu'."),
        (["--dtype", "int8"], "--dtype must be None or one of"),
        (["--dataset", " "], "--dataset must be a non-empty string; got ' '."),
        (["--split", "nope"], "--split must be one of ['train', 'test'] for easy-vqa; got 'nope'."),
        (["--column", "image=img"], "--column must be left out for easy-vqa; got {'image': 'img'}. Its columns are fixed."),
        (["--column", "picture"], "--column must be ROLE=NAME with ROLE one of image, question, answer"),
        (["--layers", ","], "--layers must name at least one layer, e.g. --layers 0,4,8; got ','."),
        (["--layers", "a,b"], "--layers must be comma-separated integers"),
        (["--model", "zoo:nope"], "--model must be a hub id, a model folder, or one of ['zoo:blind'"),
        (["--model", "/nonexistent/model"], "No such model folder: '/nonexistent/model'."),
    ],
)
def test_analyze_refuses_bad_flags_before_any_work(
    no_loading: None, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, output = _invoke(*ANALYZE, "--out", str(out), *args)
    assert code == 2
    assert message in _one_line(output)
    assert not out.exists()  # nothing created on disk


def test_out_below_a_file(no_loading: None, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for command in (ANALYZE, ["extract", "--model", "zoo:normal"]):
        code, output = _invoke(*command, "--out", str(tmp_path / "file" / "sub"))
        assert code == 2
        assert "--out must be a folder path" in _one_line(output) and "lies below the file" in output
    code, output = _invoke(*ANALYZE, "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file" in _one_line(output)


def test_extract_and_demo_check_first(no_loading: None, tmp_path: Path) -> None:
    code, output = _invoke("extract", "--model", "zoo:normal", "--out", str(tmp_path / "s"), "--limit", "0")
    assert code == 2 and "--limit must be" in _one_line(output) and not (tmp_path / "s").exists()
    code, output = _invoke("demo", "--out", str(tmp_path / "d"), "--limit", "0")
    assert code == 2 and "--limit must be" in _one_line(output) and not (tmp_path / "d").exists()


def test_estimate_flags(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    code, output = _invoke("estimate", str(store), "--out", str(out), "--layers", ",")
    assert code == 2 and "--layers must name at least one layer" in _one_line(output)
    code, output = _invoke("estimate", str(store), "--out", str(out), "--layers", "0,7")
    assert code == 2 and "--layers must be layers the store holds, 0..2; got [7]." in _one_line(output)
    code, output = _invoke("estimate", str(store), "--out", str(out), "--level", "95")
    assert code == 2 and "--level must be a number in (0, 1)" in _one_line(output)
    code, output = _invoke("estimate", str(store), "--out", str(out), "--estimator", "kde")
    assert code == 2 and "--estimator must be one of ['discrete', 'gaussian', 'both']" in _one_line(output)
    assert not out.exists()
    code, output = _invoke("estimate", str(tmp_path / "nostore"), "--out", str(out))
    assert code == 1 and "No feature store at" in _one_line(output)
    code, output = _invoke(
        "estimate", str(store), "--out", str(out), "--layers", "2", "--bootstrap", "20", "--permutations", "10"
    )
    assert code == 0, output
    assert (out / "results.json").is_file()


def test_decompose_bad_tables(tmp_path: Path) -> None:
    (tmp_path / "notes.npy").write_text("not an array\n")
    code, output = _invoke("decompose", str(tmp_path / "notes.npy"))
    assert code == 1 and "is not a .npy array file; write one with numpy.save" in _one_line(output)
    np.save(tmp_path / "complex.npy", np.ones((2, 2, 2)) * (1 + 1j))
    code, output = _invoke("decompose", str(tmp_path / "complex.npy"))
    assert code == 1 and "got a complex array" in _one_line(output)
    np.save(tmp_path / "neg.npy", -np.ones((2, 2, 2)))
    code, output = _invoke("decompose", str(tmp_path / "neg.npy"))
    assert code == 1 and "must be non-negative" in _one_line(output)
    code, output = _invoke("decompose", str(tmp_path / "xor.npy"), "--method", "cvx")
    assert code == 2 and "No such table file" in _one_line(output)
    np.save(tmp_path / "ok.npy", np.ones((2, 2, 2)))
    code, output = _invoke("decompose", str(tmp_path / "ok.npy"), "--method", "cvx")
    assert code == 2 and "--method must be one of ['exact', 'ipfp']; got 'cvx'." in _one_line(output)


def test_report_on_missing_results(tmp_path: Path) -> None:
    code, output = _invoke("report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"))
    assert code == 1 and "No results file at" in _one_line(output)
    assert not (tmp_path / "r").exists()


def test_report_out_below_a_file(store: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    assert _invoke("estimate", str(store), "--out", str(res), "--layers", "0", "--bootstrap", "20",
                   "--permutations", "10")[0] == 0
    (tmp_path / "file").write_text("x")
    code, output = _invoke("report", str(res), "--out", str(tmp_path / "file" / "r"))
    assert code == 2 and "--out must be a folder path" in _one_line(output)


def test_ctrl_c_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_load", interrupted)
    result = runner.invoke(app, [*ANALYZE, "--out", str(tmp_path / "o")])
    assert result.exit_code == 130
    assert "interrupted: finished shards and layers are kept" in result.output


def test_debug_keeps_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "notes.npy").write_text("text")
    result = runner.invoke(app, ["--debug", "decompose", str(tmp_path / "notes.npy")])
    assert isinstance(result.exception, InputError)


def test_flag_names() -> None:
    assert flag("n_bootstrap") == "--bootstrap" and flag("batch_size") == "--batch-size"
    assert set(FLAGS.values()) <= {"--bootstrap", "--permutations", "--seed", "--column", "--out", "--model", "--method", "NAME"}


def test_zoo_train_names_its_argument(tmp_path: Path) -> None:
    code, output = _invoke("zoo", "train", "nope", "--out", str(tmp_path / "z"))
    assert code == 1 and _one_line(output).startswith("error: NAME must be one of")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mmpid.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_real_process_exit_codes_and_stderr(tmp_path: Path) -> None:
    """The installed entry point as a user runs it: the error on stderr, the code as documented."""
    out = tmp_path / "out"
    done = _run("analyze", "--model", "zoo:normal", "--out", str(out), "--level", "95")
    assert done.returncode == 2 and done.stdout == ""
    assert _one_line(done.stderr) == "error: --level must be a number in (0, 1), e.g. 0.95; got 95.0."
    assert not out.exists()
    (tmp_path / "notes.npy").write_text("text")
    done = _run("decompose", str(tmp_path / "notes.npy"))
    assert done.returncode == 1 and "is not a .npy array file" in _one_line(done.stderr)
