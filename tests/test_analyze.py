"""End to end: `mmpid analyze` on a tiny LLaVA folder and easy-vqa, offline, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmpid.cli import app
from mmpid.report.results import ATOMS

from tiny_models import build_llava

runner = CliRunner()
FAST = ["--bootstrap", "30", "--permutations", "10"]


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llava(tmp_path_factory.mktemp("llava") / "model", layers=2)


@pytest.fixture(scope="module")
def analyzed(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(
        app,
        ["analyze", "--model", str(tiny_llava), "--dataset", "easy-vqa", "--limit", "300",
         "--device", "cpu", "--out", str(out), *FAST],
    )
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    return out


@pytest.mark.slow
def test_analyze_writes_store_results_and_report_per_layer(analyzed: Path) -> None:
    manifest = json.loads((analyzed / "store" / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["protocol"] == "input-fusion"
    n_layers = manifest["n_layers"]
    assert n_layers == 3  # embeddings + 2 decoder layers

    results = json.loads((analyzed / "results.json").read_text())
    assert results["layers"] == list(range(n_layers))
    per_layer = {layer: {r["atom"] for r in results["records"] if r["layer"] == layer} for layer in results["layers"]}
    assert all(atoms == set(ATOMS) for atoms in per_layer.values())
    assert results["config"]["n"] + len(manifest.get("skipped", [])) == 300

    csv_lines = (analyzed / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + n_layers * len(ATOMS)

    html = (analyzed / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64," in html
    assert 'src="http' not in html


@pytest.mark.slow
def test_estimate_resumes_from_finished_layers(analyzed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmpid.pipeline as pipeline

    before = json.loads((analyzed / "results.json").read_text())
    (analyzed / "results.json").unlink()

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished layer was estimated again")

    monkeypatch.setattr(pipeline, "_estimate_layer", boom)
    result = runner.invoke(app, ["estimate", str(analyzed / "store"), "--out", str(analyzed), *FAST])
    assert result.exit_code == 0, result.output
    after = json.loads((analyzed / "results.json").read_text())
    assert after["records"] == before["records"]


def test_model_folder_without_processor_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    result = runner.invoke(app, ["extract", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--limit", "5"])
    assert result.exit_code == 1
    assert "error:" in result.output


def test_unknown_family_lists_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = runner.invoke(app, ["extract", "--model", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "llava" in result.output and "bert" in result.output


def test_bad_column_mapping_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["extract", "--model", "x", "--out", str(tmp_path), "--column", "picture=img"]
    )
    assert result.exit_code == 2
    assert "ROLE=NAME" in result.output


def test_zoo_list_shows_each_model_with_its_accuracy() -> None:
    from mmpid import zoo

    result = runner.invoke(app, ["zoo", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in zoo.list_models():
        assert f"zoo:{name}" in result.output
        assert f"{zoo.info(name)['test']['accuracy']:.1%}" in result.output


def test_decompose_command_prints_the_atoms_of_a_table(tmp_path: Path) -> None:
    import numpy as np

    xor = np.zeros((2, 2, 2))
    for a in (0, 1):
        for b in (0, 1):
            xor[a, b, a ^ b] = 1
    np.save(tmp_path / "xor.npy", xor)
    result = runner.invoke(app, ["decompose", str(tmp_path / "xor.npy")])
    assert result.exit_code == 0, result.output
    atoms = json.loads(result.output)
    assert abs(atoms["synergy"] - 1.0) < 1e-6 and abs(atoms["redundancy"]) < 1e-6
    missing = runner.invoke(app, ["decompose", str(tmp_path / "nope.npy")])
    assert missing.exit_code == 2 and "No such table file" in missing.output
