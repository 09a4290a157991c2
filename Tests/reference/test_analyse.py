"""`embedlapse analyse`: the analysis cache. Its numbers against scikit-learn and cleanlab, shards
analysed by separate processes against one process (bit for bit), entries kept, and stale, partial
or older-format entries recomputed, never used; bad arguments refused in one line."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from cleanlab.outlier import OutOfDistribution
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from conftest import BINARY, ROOT, SHARED, run_cli
from test_compare import steps_of

REAL_RUN = SHARED / "runs" / "cnn-fmnist"


def synthetic_run(root, n=600, d=256, steps=(0, 50, 100, 150), seed=0):
    """Clustered embeddings wider than 192 dimensions (where films warm-start their PCA)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    centres = rng.standard_normal((4, d)) * 3
    for i, step in enumerate(steps):
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        x = centres[labels] * (1 + i) / len(steps) + rng.standard_normal((n, d))
        np.save(folder / "embeddings.npy", x.astype(np.float32))
    np.save(root / "labels.npy", labels.astype(np.int64))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyse")
    return {"cnn-fmnist": shutil.copytree(REAL_RUN, root / "cnn-fmnist"), "synthetic": synthetic_run(root / "synthetic")}


def files_of(cache):
    return {p.relative_to(cache): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["cnn-fmnist", "synthetic"])
def test_the_cache_holds_scikit_learns_pca_and_cleanlabs_scores_and_the_true_neighbours(runs, name, binary):
    run = runs[name]
    cache = run.parent / f"cache-{name}"
    proc = run_cli("analyse", run, "--cache", cache)
    steps = steps_of(run)
    assert f"analysed {len(steps)} checkpoints, 0 already cached" in proc.stderr
    for step in steps[:: max(1, len(steps) // 4)]:
        entry = cache / f"analysis-{step}"
        x = np.load(run / f"checkpoint-{step}" / "embeddings.npy").astype(np.float64)
        meta = json.loads((entry / "meta.json").read_text())
        assert meta["version"] == 2 and meta["step"] == step and meta["samples"] == len(x) and meta["neighbours"] == 10
        assert meta["source"]["shape"] == list(x.shape)
        # PCA: the same scores as scikit-learn's up to each component's sign.
        expected = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(x)
        got = np.load(entry / "pca.npy").astype(np.float64)
        assert got.shape == (len(x), 2)
        signs = np.sign((got * expected).sum(axis=0))
        assert np.abs(got * signs - expected).max() / np.abs(expected).max() < 2e-5, f"step {step}"
        # Outlier scores: cleanlab's.
        reference = OutOfDistribution().fit_score(features=x.astype(np.float32), verbose=False)
        scores = np.load(entry / "outlier_scores.npy")
        assert np.abs(scores - reference).max() / np.abs(reference).max() < 1e-4, f"step {step}"
        # Neighbours: scikit-learn's cosine neighbours, as sets (ties may order differently).
        neighbours = np.load(entry / "neighbours.npy")
        assert neighbours.dtype == np.int32 and neighbours.shape == (len(x), 10) and meta["graph_neighbours"] == 10
        # Their distances: scikit-learn's, nearest first; the first 10 average to the recorded mean.
        distances = np.load(entry / "neighbour_distances.npy")
        assert distances.dtype == np.float32 and distances.shape == (len(x), 10)
        assert np.all(np.diff(distances, axis=1) >= 0)
        assert np.allclose(distances.mean(axis=1), np.load(entry / "average_distances.npy"), rtol=1e-5, atol=1e-7)
        _, truth = NearestNeighbors(n_neighbors=11, metric="cosine").fit(x).kneighbors(x)
        truth = truth[:, 1:]
        agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(neighbours, truth)])
        assert agree > 0.995, f"step {step}: {agree:.4f} of the neighbours agree with scikit-learn"
        # Each score is exp(-mean distance / scaling factor), as cleanlab's.
        distances = np.load(entry / "average_distances.npy").astype(np.float64)
        assert distances.shape == (len(x),)
        assert np.allclose(scores, np.exp(-distances / max(meta["scaling_factor"], 1e-6)), rtol=1e-5, atol=1e-30)


def test_shards_in_separate_processes_write_what_one_process_writes(runs, binary):
    run = runs["synthetic"]
    one, shards = run.parent / "one-process", run.parent / "two-shards"
    run_cli("analyse", run, "--cache", one)
    procs = [subprocess.Popen([str(BINARY), "analyse", str(run), "--cache", str(shards), "--checkpoints", part],
                              stderr=subprocess.PIPE) for part in ("0:2", "2:")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert files_of(shards) == files_of(one)
    assert len(files_of(one)) == 6 * 4 + 1  # with the marker


def test_the_local_shard_script_writes_what_one_process_writes(runs, binary, tmp_path):
    run = runs["cnn-fmnist"]
    one, shards = tmp_path / "one", tmp_path / "three-shards"
    # OpenBLAS sums in another order on another number of threads: bit for bit needs the same --threads.
    run_cli("analyse", run, "--cache", one, "--threads", "1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "analyse-shards.sh"), str(run), "3", "--cache", str(shards),
                           "--threads", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EMBEDLAPSE_BIN": str(BINARY)})
    assert proc.returncode == 0, proc.stderr
    counts = sorted(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("analysed"))
    assert counts == [10, 10, 11], proc.stderr  # 31 checkpoints in three near-equal shards
    assert files_of(shards) == files_of(one)


def test_a_second_run_keeps_every_entry(runs, binary):
    run = runs["cnn-fmnist"]
    cache = run.parent / "kept"
    run_cli("analyse", run, "--cache", cache)
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    proc = run_cli("analyse", run, "--cache", cache)
    assert f"analysed 0 checkpoints, {len(steps_of(run))} already cached" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before


def test_the_default_cache_is_inside_the_run(runs, binary):
    run = runs["synthetic"]
    run_cli("analyse", run, "--checkpoints", ":1")
    assert sorted(p.name for p in (run / ".embedlapse" / "analysis").iterdir()) == ["analysis-0", "embedlapse-cache.json"]
    shutil.rmtree(run / ".embedlapse")


@pytest.mark.parametrize("spoil, reason", [
    ("rewrite", "computed from another file than"),
    ("version", "format version 0"),
    ("truncate", "truncated"),
    ("remove", "neighbours.npy"),
    ("meta", "meta.json: missing or unreadable"),
])
def test_an_unusable_entry_is_recomputed_and_the_others_kept(tmp_path, binary, spoil, reason):
    run = synthetic_run(tmp_path / "run", n=200, d=16)
    cache = tmp_path / "cache"
    run_cli("analyse", run, "--cache", cache)
    entry = cache / "analysis-50"
    kept = {p: p.read_bytes() for p in (cache / "analysis-100").iterdir()}
    if spoil == "rewrite":
        x = np.load(run / "checkpoint-50" / "embeddings.npy")
        np.save(run / "checkpoint-50" / "embeddings.npy", x[::-1].copy())  # same size, new content
    elif spoil == "version":
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, "version": 0}))
    elif spoil == "truncate":
        data = (entry / "pca.npy").read_bytes()
        (entry / "pca.npy").write_bytes(data[:-40])
    elif spoil == "remove":
        (entry / "neighbours.npy").unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    proc = run_cli("analyse", run, "--cache", cache)
    assert "analysed 1 checkpoints, 3 already cached" in proc.stderr, proc.stderr
    assert "recomputed step 50" in proc.stderr and reason in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in (cache / "analysis-100").iterdir()} == kept
    # The new entry is the analysis of the file as it is now.
    fresh = tmp_path / "fresh"
    run_cli("analyse", run, "--cache", fresh, "--checkpoints", "1:2")
    entries = lambda c: {k: v for k, v in files_of(c).items() if k.parts[0] == "analysis-50"}
    assert entries(fresh) == entries(cache) and len(entries(fresh)) == 6
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "no partial entry is left behind"


@pytest.mark.parametrize("args, message", [
    (["--checkpoints", "5:2"], "--checkpoints"),
    (["--checkpoints", "x:1"], "--checkpoints"),
    (["--checkpoints", "1:2:3"], "--checkpoints"),
    (["--threads", "0"], "--threads must be 1 to 1024"),
    (["--shard", "0/2"], "--shard"),
    (["--shard", "3/2"], "--shard"),
    (["--shard", "1/0"], "--shard"),
    (["--shard", "0/0"], "--shard"),
    (["--shard", "1/2", "--checkpoints", "0:1"], "give one"),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, binary, args, message):
    run = synthetic_run(tmp_path / "run", n=50, d=8, steps=(0,))
    proc = run_cli("analyse", run, *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (run / ".embedlapse").exists()


def test_a_missing_run_or_an_unwritable_cache_fails_in_one_line(tmp_path, binary):
    proc = run_cli("analyse", tmp_path / "nowhere", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "nowhere" in proc.stderr
    run = synthetic_run(tmp_path / "run", n=50, d=8, steps=(0,))
    proc = run_cli("analyse", run, "--cache", "/proc/embedlapse-cache", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "cannot write the analysis cache /proc/embedlapse-cache" in lines[0], lines


def test_an_empty_range_does_nothing(tmp_path, binary):
    run = synthetic_run(tmp_path / "run", n=50, d=8, steps=(0, 10))
    proc = run_cli("analyse", run, "--checkpoints", "5:")
    assert "no checkpoint in 5: " in proc.stderr and not (run / ".embedlapse").exists()


# ---------------------------------------------------------------- films from the cache


def dumps_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".npy", ".json", ".csv")}


@pytest.fixture(scope="module")
def filmed(tmp_path_factory, binary):
    """A run 256 wide (films warm-start its PCA) rendered without a cache, filling one, and from it."""
    root = tmp_path_factory.mktemp("filmed")
    run = synthetic_run(root / "run", n=800, d=256, steps=(0, 50, 100, 150, 200))
    run_cli("render", run, "--no-cache", "--tween", "1", "--dump-data", root / "plain")
    run_cli("render", run, "--cache", root / "cache", "--tween", "1", "--dump-data", root / "filling", "-o", root / "filling.mp4")
    run_cli("render", run, "--cache", root / "cache", "--tween", "1", "--dump-data", root / "reading", "-o", root / "reading.mp4")
    run_cli("analyse", run, "--cache", root / "analysed")
    return root, run


def test_a_film_that_fills_the_cache_writes_what_analyse_writes(filmed):
    root, _ = filmed
    assert files_of(root / "cache") == files_of(root / "analysed")


def test_a_film_from_the_cache_is_the_film_that_filled_it(filmed):
    root, _ = filmed
    assert dumps_of(root / "reading") == dumps_of(root / "filling")
    assert (root / "reading.mp4").read_bytes() == (root / "filling.mp4").read_bytes()


def test_a_film_from_the_cache_has_the_films_numbers(filmed):
    """Without a cache the film warm-starts its PCA: the same numbers within the PCA's tolerance."""
    root, run = filmed
    for step in steps_of(run):
        plain, cached = np.load(root / "plain" / f"aligned-{step}.npy"), np.load(root / "reading" / f"aligned-{step}.npy")
        assert np.abs(plain - cached).max() < 1e-4, step
        np.testing.assert_allclose(np.load(root / "plain" / f"outlier-scores-{step}.npy"),
                                   np.load(root / "reading" / f"outlier-scores-{step}.npy"), rtol=1e-6)


def test_the_film_reads_its_scores_from_the_cache_and_no_cache_ignores_it(tmp_path, binary):
    run = synthetic_run(tmp_path / "run", n=300, d=16)
    run_cli("analyse", run)  # the run's own cache: films use it without being told
    entry = run / ".embedlapse" / "analysis" / "analysis-100"
    scores = np.load(entry / "outlier_scores.npy")
    # Planted: every distance doubled, and the scores those distances give (the cache checks they agree,
    # and that the neighbours' distances average to the means).
    scale = json.loads((entry / "meta.json").read_text())["scaling_factor"]
    distances = np.load(entry / "average_distances.npy") * np.float32(2)
    lists = np.load(entry / "neighbour_distances.npy") * np.float32(2)
    planted = np.exp(-distances.astype(np.float64) / max(scale, 1e-6)).astype(np.float32)
    for name, values in (("average_distances.npy", distances), ("outlier_scores.npy", planted),
                         ("neighbour_distances.npy", lists)):
        with open(entry / name, "wb") as f:
            np.save(f, values)
    run_cli("render", run, "--tween", "1", "--dump-data", tmp_path / "own")
    np.testing.assert_array_equal(np.load(tmp_path / "own" / "outlier-scores-100.npy"), planted)
    run_cli("render", run, "--no-cache", "--tween", "1", "--dump-data", tmp_path / "none")
    np.testing.assert_array_equal(np.load(tmp_path / "none" / "outlier-scores-100.npy"), scores)
    run_cli("export", run, "-o", tmp_path / "table.csv")
    rows = np.genfromtxt(tmp_path / "table.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    exported = rows["outlier_score"][rows["step"] == 100]
    np.testing.assert_allclose(exported, planted, rtol=1e-6)


def test_a_film_never_creates_a_cache_unasked_and_goes_on_when_it_cannot_write_one(tmp_path, binary):
    run = synthetic_run(tmp_path / "run", n=100, d=8, steps=(0, 10))
    run_cli("render", run, "--tween", "1", "--dump-data", tmp_path / "out")
    assert not (run / ".embedlapse").exists()
    proc = run_cli("render", run, "--tween", "1", "-o", tmp_path / "film.mp4", "--cache", "/proc/embedlapse-cache")
    warnings = [line for line in proc.stderr.splitlines() if "cannot write the analysis cache" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: "), proc.stderr
    assert (tmp_path / "film.mp4").stat().st_size > 0
    proc = run_cli("render", run, "-o", tmp_path / "x.mp4", "--cache", tmp_path / "c", "--no-cache", check=False)
    assert proc.returncode != 0 and "--cache and --no-cache" in proc.stderr
