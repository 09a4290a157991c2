"""Every checkpoint's numbers against independent references on the same data:
scikit-learn's PCA, scipy's procrustes and cleanlab's OutOfDistribution."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cleanlab.outlier import OutOfDistribution
from scipy.spatial import procrustes
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from conftest import SHARED, checkpoints, run_cli, runs_to_compare

_dumps = {}


def dump(binary, run, align, tmp_path_factory):
    key = (str(run), align)
    if key not in _dumps:
        out = tmp_path_factory.mktemp("dump")
        run_cli("render", run, "--dump-data", out, "--align", align)
        _dumps[key] = out
    return _dumps[key]


def embeddings(path):
    return np.ascontiguousarray(np.load(path), dtype=np.float32)


@pytest.mark.parametrize("name", runs_to_compare())
def test_pca_equals_scikit_learn(binary, resolve_run, name, tmp_path_factory):
    """Equal to scikit-learn's float32 PCA within that PCA's own float32 error.

    scikit-learn centres in float32, which loses digits when embeddings share a large offset;
    Embedlapse centres in double. Both are measured against scikit-learn in float64."""
    run = resolve_run(name)
    out = dump(binary, run, "previous", tmp_path_factory)
    for step, path in checkpoints(run):
        x = np.load(path)
        single = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(x.astype(np.float32))
        double = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(x.astype(np.float64))
        got = np.load(out / f"pca-{step}.npy")
        assert got.dtype == np.float32 and got.shape == single.shape
        spread = np.abs(double).max()
        sklearn_error = np.abs(single - double).max() / spread
        assert np.abs(got - double).max() / spread < 2e-5, f"step {step}: PCA is off the float64 result"
        assert np.abs(got - single).max() / spread < 2e-5 + sklearn_error, f"step {step}: PCA differs from scikit-learn"


def display_to_scipy(out, step, record):
    """scipy's transformed matrix from the display coordinates, as alignment.json documents."""
    aligned = np.load(out / f"aligned-{step}.npy").astype(np.float64)
    pca = np.load(out / f"pca-{step}.npy").astype(np.float64)
    rotation = np.array(record["rotation"])
    offset = (np.array(record["centre"]) - pca.mean(axis=0)) @ rotation.T
    return (aligned * record["display_scale"] + offset) * record["scale"] / record["frobenius_norm"]


@pytest.mark.parametrize("name", runs_to_compare())
def test_align_previous_equals_scipy_procrustes_chain(binary, resolve_run, name, tmp_path_factory):
    run = resolve_run(name)
    out = dump(binary, run, "previous", tmp_path_factory)
    records = {r["step"]: r for r in json.loads((out / "alignment.json").read_text())["checkpoints"]}
    previous = None
    for step, path in checkpoints(run):
        y = np.load(out / f"pca-{step}.npy").astype(np.float64)  # scipy fed the same PCA scores
        target = y if previous is None else previous
        _, expected, disparity = procrustes(target, y)
        record = records[step]
        got = display_to_scipy(out, step, record)
        assert np.abs(got - expected).max() < 1e-5, f"step {step}: aligned coordinates differ from scipy"
        assert abs(record["disparity"] - disparity) < 1e-6
        r = np.array(record["rotation"])
        assert np.allclose(r @ r.T, np.eye(2), atol=1e-9), "rotation is not orthogonal"
        previous = expected


@pytest.mark.parametrize("name", runs_to_compare())
def test_align_last_equals_scipy_procrustes(binary, resolve_run, name, tmp_path_factory):
    run = resolve_run(name)
    out = dump(binary, run, "last", tmp_path_factory)
    records = {r["step"]: r for r in json.loads((out / "alignment.json").read_text())["checkpoints"]}
    steps = checkpoints(run)
    reference = np.load(out / f"pca-{steps[-1][0]}.npy").astype(np.float64)
    for step, _ in steps:
        y = np.load(out / f"pca-{step}.npy").astype(np.float64)
        _, expected, disparity = procrustes(reference, y)
        got = display_to_scipy(out, step, records[step])
        assert np.abs(got - expected).max() < 1e-5, f"step {step}: aligned coordinates differ from scipy"
        assert abs(records[step]["disparity"] - disparity) < 1e-6


@pytest.mark.parametrize("name", runs_to_compare())
def test_outlier_scores_equal_cleanlab(binary, resolve_run, name, tmp_path_factory):
    run = resolve_run(name)
    out = dump(binary, run, "previous", tmp_path_factory)
    for step, path in checkpoints(run):
        expected = OutOfDistribution().fit_score(features=embeddings(path), verbose=False).astype(np.float32)
        got = np.load(out / f"outlier-scores-{step}.npy")
        rel = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-30)
        assert rel.max() < 1e-4, f"step {step}: scores differ from cleanlab by {rel.max():.2e} relative"
        top = json.loads((out / f"outliers-{step}.json").read_text())
        order = np.argsort(expected, kind="stable")
        expected_top = order[:8]
        gap = (expected[order[8]] - expected[order[7]]) / max(abs(expected[order[7]]), 1e-30)
        if gap > 1e-4:  # a near-tie at the 8th place may swap within tolerance
            assert set(top["indices"]) == set(expected_top.tolist()), f"step {step}: top-8 differs from cleanlab"
        assert top["indices"][:1] == expected_top[:1].tolist() or gap <= 1e-4
        assert np.allclose(top["scores"], expected[top["indices"]], rtol=1e-4)


def test_planted_outliers_are_found(binary, synthetic_run, tmp_path_factory):
    """The generator plants outliers; once classes separate they must lead the leaderboard."""
    out = dump(binary, synthetic_run, "previous", tmp_path_factory)
    planted = set(json.loads((synthetic_run / "truth.json").read_text())["planted_outliers"])
    last = checkpoints(synthetic_run)[-1][0]
    top = json.loads((out / f"outliers-{last}.json").read_text())["indices"]
    assert planted <= set(top), f"planted {sorted(planted)} not all in top-8 {top}"


@pytest.mark.parametrize("dim", [2, 3])
def test_low_dimensional_outliers_equal_cleanlab_at_scale(tmp_path, dim):
    """D <= 3 is searched with a k-d tree: at 20,000 rows, with a block of 3,000 equal rows and a
    coarse lattice (ties everywhere), the means are scikit-learn's and the scores cleanlab's."""
    run = tmp_path / "run"
    # The generator makes D >= 4: its first D coordinates keep its clusters.
    subprocess.run([sys.executable, str(SHARED / "reference" / "make_synthetic_run.py"), str(run), "--n", "20000",
                    "--dim", "4", "--checkpoints", "2", "--seed", "17"], check=True, capture_output=True)
    for _, path in checkpoints(run):
        x = np.ascontiguousarray(np.load(path)[:, :dim])
        x[1000:4000] = x[1000]
        x[5000:9000] = np.round(x[5000:9000] * 2) / 2
        np.save(path, x)
    cache = tmp_path / "cache"
    run_cli("analyse", run, "--cache", cache)
    for step, path in checkpoints(run):
        x = np.load(path).astype(np.float64)
        distances, _ = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x)
        # A row's own zero distance comes first among its equal rows: drop one zero per row.
        expected_means = distances[:, 1:].mean(axis=1)
        found = np.load(cache / f"analysis-{step}" / "average_distances.npy").astype(np.float64)
        assert np.abs(found - expected_means).max() <= 1e-5 * max(1.0, np.abs(expected_means).max()), f"step {step}"
        expected = OutOfDistribution().fit_score(features=x)
        scores = np.load(cache / f"analysis-{step}" / "outlier_scores.npy").astype(np.float64)
        assert np.abs(scores - expected).max() < 1e-4, f"step {step}"
