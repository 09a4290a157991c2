"""`--search approximate`: the cell search's leaderboard is cleanlab's, sample for sample, at every
checkpoint; every mean distance it keeps is an upper bound on scikit-learn's exact one; its reported
error is no larger than the error there is; the cache keeps approximate and exact entries apart."""
import json
import subprocess
import sys

import numpy as np
import pytest
from cleanlab.outlier import OutOfDistribution
from sklearn.neighbors import NearestNeighbors

from conftest import SHARED, run_cli
from test_compare import steps_of

REAL_RUN = SHARED / "runs" / "cnn-fmnist"


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """6,000 samples: above the size where the cell search starts."""
    out = tmp_path_factory.mktemp("approximate") / "run"
    subprocess.run([sys.executable, str(SHARED / "reference" / "make_synthetic_run.py"), str(out), "--n", "6000",
                    "--dim", "48", "--checkpoints", "3", "--seed", "5"], check=True, capture_output=True)
    return out


def exact_means(x, k=10):
    """Each row's mean cosine distance to its k nearest other rows (scikit-learn, brute force)."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    return np.clip(distances[:, 1:], 0, 2).mean(axis=1)


def test_the_leaderboard_is_cleanlabs_at_every_checkpoint(big_run, tmp_path):
    dump = tmp_path / "dump"
    proc = run_cli("render", big_run, "--search", "approximate", "--tween", "1", "--no-cache", "-o", tmp_path / "a.mp4",
                   "--dump-data", dump)
    assert "warning" not in proc.stderr
    for step in steps_of(big_run):
        x = np.load(big_run / f"checkpoint-{step}" / "embeddings.npy").astype(np.float64)
        cleanlab = OutOfDistribution().fit_score(features=x)
        expected = np.argsort(cleanlab, kind="stable")[:8]
        top = json.loads((dump / f"outliers-{step}.json").read_text())
        assert top["search"] == "approximate"
        assert top["certificate"]["certified_top"] == 8
        assert top["indices"] == expected.tolist(), f"step {step}"
        # The scores are approximate (the scaling factor is a median of upper bounds): close, not equal.
        assert np.abs(np.array(top["scores"]) - cleanlab[expected]).max() < 0.05


def test_means_are_upper_bounds_and_the_report_is_honest(big_run, tmp_path):
    cache = tmp_path / "cache"
    run_cli("analyse", big_run, "--search", "approximate", "--cache", cache)
    for step in steps_of(big_run):
        x = np.load(big_run / f"checkpoint-{step}" / "embeddings.npy").astype(np.float64)
        exact = exact_means(x)
        entry = cache / f"analysis-{step}"
        found = np.load(entry / "average_distances.npy").astype(np.float64)
        certificate = json.loads((entry / "meta.json").read_text())["certificate"]
        assert (found >= exact - 1e-5).all(), "a mean below the exact one: not a real neighbour"
        top = np.argsort(-exact, kind="stable")[:8]
        assert np.abs(found[top] - exact[top]).max() < 1e-5
        error = found - exact
        assert error.max() > 1e-4, "the cell search finds every neighbour here: the test proves nothing"
        assert 0 <= certificate["sample_distance_error_median"] <= certificate["sample_distance_error_max"]
        assert certificate["sample_distance_error_max"] <= error.max() + 1e-5
        assert certificate["exact_candidates"] >= 8 and certificate["sample"] == 256
        neighbours = np.load(entry / "neighbours.npy")
        assert neighbours.shape == (len(x), 10)
        assert all(i not in row and len(set(row)) == 10 for i, row in enumerate(neighbours))


def test_the_cache_keeps_the_searches_apart(big_run, tmp_path):
    cache = tmp_path / "cache"
    run_cli("analyse", big_run, "--search", "approximate", "--cache", cache)
    step = steps_of(big_run)[0]
    # An exact film recomputes (and replaces) the approximate entries ...
    run_cli("render", big_run, "--search", "exact", "--cache", cache, "--tween", "1", "--dump-data", tmp_path / "exact")
    assert json.loads((tmp_path / "exact" / f"outliers-{step}.json").read_text())["search"] == "exact"
    assert "certificate" not in json.loads((cache / f"analysis-{step}" / "meta.json").read_text())
    # ... and analyse reports why it recomputes them for an approximate search with a longer top.
    proc = run_cli("analyse", big_run, "--search", "approximate", "--top", "16", "--cache", cache)
    assert "computed with the exact search" in proc.stderr
    proc = run_cli("analyse", big_run, "--search", "approximate", "--top", "20", "--cache", cache)
    assert "certified for the top 16 only" in proc.stderr
    meta = json.loads((cache / f"analysis-{step}" / "meta.json").read_text())
    assert meta["certificate"]["certified_top"] == 20
    run_cli("render", big_run, "--search", "approximate", "--top", "12", "--cache", cache, "--tween", "1",
            "--dump-data", tmp_path / "approximate")
    top = json.loads((tmp_path / "approximate" / f"outliers-{step}.json").read_text())
    assert top["certificate"]["certified_top"] == 20 and len(top["indices"]) == 12


def test_small_sets_are_searched_exactly(tmp_path):
    """cnn-fmnist has 1,000 samples: below the cell search's size, so exact, as cleanlab."""
    dump = tmp_path / "dump"
    run_cli("render", REAL_RUN, "--search", "approximate", "--tween", "1", "-o", tmp_path / "a.mp4", "--dump-data", dump)
    step = steps_of(REAL_RUN)[-1]
    top = json.loads((dump / f"outliers-{step}.json").read_text())
    assert top["search"] == "exact" and "certificate" not in top
    x = np.load(REAL_RUN / f"checkpoint-{step}" / "embeddings.npy").astype(np.float64)
    assert top["indices"] == np.argsort(OutOfDistribution().fit_score(features=x), kind="stable")[:8].tolist()


@pytest.mark.parametrize("args, words", [
    (["render", "RUN", "--search", "nearest", "-o", "x.mp4"], "--search"),
    (["analyse", "RUN", "--top", "0"], "--top 0"),
    (["analyse", "RUN", "--top", "33"], "--top 33"),
])
def test_bad_search_options_are_refused_in_one_line(big_run, tmp_path, args, words):
    args = [str(big_run) if a == "RUN" else str(tmp_path / a) if a == "x.mp4" else a for a in args]
    proc = run_cli(*args, check=False)
    assert proc.returncode == 64
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
