"""--projection umap and tsne against umap-learn, openTSNE and scikit-learn on the same runs: a picture
as faithful as theirs, clearly more than PCA's, that moves far less than independent fits, the same
every time."""
import json

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from sklearn.manifold import trustworthiness

from conftest import ONE_FRAME_PER_CHECKPOINT, SHARED, checkpoints, run_cli, runs_to_compare

umap = pytest.importorskip("umap")
openTSNE = pytest.importorskip("openTSNE")

SAMPLE_RUN = SHARED / "runs" / "cnn-fmnist"


def peer_layout(projection, x, metric):
    """The peer library's layout of one checkpoint, fitted on its own."""
    if projection == "umap":
        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric=metric, random_state=0).fit_transform(x)
    return np.asarray(openTSNE.TSNE(perplexity=30, metric=metric, random_state=0, n_jobs=1).fit(x))


def dump(run, out, projection, *extra):
    run_cli("render", run, "--projection", projection, "--dump-data", out, *ONE_FRAME_PER_CHECKPOINT, *extra)
    return json.loads((out / "alignment.json").read_text())


def normalised(points):
    """Centred, at unit root-mean-square radius: displacements of layouts of any scale compare."""
    centred = points - points.mean(axis=0)
    return centred / np.sqrt((centred ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("projection", ["umap", "tsne"])
@pytest.mark.parametrize("run_name", runs_to_compare())
def test_trustworthiness_is_the_peers_and_above_pca(projection, run_name, resolve_run, tmp_path):
    run = resolve_run(run_name)
    document = dump(run, tmp_path / "dump", projection)
    assert document["projection"] == projection
    step, path = checkpoints(run)[-1]
    x = np.load(path).astype(np.float32)
    metric = "cosine" if x.shape[1] > 3 else "euclidean"
    ours = np.load(tmp_path / "dump" / f"aligned-{step}.npy")
    layout = np.load(tmp_path / "dump" / f"layout-{step}.npy")
    pca = np.load(tmp_path / "dump" / f"pca-{step}.npy")
    t_ours = trustworthiness(x, ours, n_neighbors=10, metric=metric)
    assert trustworthiness(x, layout, n_neighbors=10, metric=metric) == pytest.approx(t_ours, abs=1e-9)
    t_peer = trustworthiness(x, peer_layout(projection, x, metric), n_neighbors=10, metric=metric)
    t_pca = trustworthiness(x, pca, n_neighbors=10, metric=metric)
    assert t_ours >= t_peer - 0.01, (t_ours, t_peer)
    # Clearly above PCA's: at least a tenth fewer neighbourhood errors, where PCA already keeps most.
    assert 1 - t_ours <= 0.9 * (1 - t_pca), (t_ours, t_pca, t_peer)
    # The number the frame shows is scikit-learn's (exact up to 2,000 samples, sampled above).
    shown = document["checkpoints"][-1]["faithfulness"]
    assert shown["n_neighbors"] == 10 and shown["sampled"] == (x.shape[0] > 2000)
    assert shown["trustworthiness"] == pytest.approx(t_ours, abs=1e-3 if not shown["sampled"] else 0.01)


@pytest.mark.parametrize("projection", ["umap", "tsne"])
def test_the_film_moves_less_than_independent_fits_and_repeats(projection, tmp_path):
    steps = [step for step, _ in checkpoints(SAMPLE_RUN)]
    dump(SAMPLE_RUN, tmp_path / "a", projection)
    dump(SAMPLE_RUN, tmp_path / "b", projection)
    for step in steps:
        assert (tmp_path / "a" / f"aligned-{step}.npy").read_bytes() == (tmp_path / "b" / f"aligned-{step}.npy").read_bytes()
    # The peer fitted at every fourth checkpoint on its own, each fit rotated onto the previous one.
    chosen = list(range(0, len(steps), 4))
    independent = []
    for index in chosen:
        x = np.load(checkpoints(SAMPLE_RUN)[index][1]).astype(np.float32)
        fitted = normalised(peer_layout(projection, x, "cosine"))
        if independent:
            rotation, _ = orthogonal_procrustes(fitted, independent[-1])
            fitted = fitted @ rotation
        independent.append(fitted)
    ours = [normalised(np.load(tmp_path / "a" / f"aligned-{steps[i]}.npy")) for i in chosen]

    def mean_move(layouts):
        return np.mean([np.linalg.norm(b - a, axis=1).mean() for a, b in zip(layouts, layouts[1:])])
    # Ours, between checkpoints as far apart as the independent fits', moves at most half as much.
    assert mean_move(ours) <= 0.5 * mean_move(independent), (mean_move(ours), mean_move(independent))


@pytest.mark.parametrize("args, words", [
    (("--projection", "umap", "--align", "last"), "--align last works with --projection pca only"),
    (("--projection", "tsne", "--align", "last"), "--align last works with --projection pca only"),
    (("--projection", "umap", "--neighbors", "1"), "--neighbors 1: must be from 2 to 200"),
    (("--projection", "umap", "--min-dist", "nan"), "--min-dist"),
    (("--projection", "tsne", "--perplexity", "0"), "--perplexity 0.0: must be from 2 to 100"),
    (("--projection", "isomap"), "isomap"),
])
def test_bad_projection_options_are_one_line(args, words, tmp_path):
    proc = run_cli("render", SAMPLE_RUN, "-o", tmp_path / "film.mp4", *args, check=False)
    assert proc.returncode != 0 and words in proc.stderr
    assert not (tmp_path / "film.mp4").exists()


def test_the_cache_keeps_the_longer_lists_a_layout_needs(tmp_path):
    """`analyse --projection umap` caches 14 neighbours a sample; a UMAP film then searches nothing, and
    is the film that filled a cache itself. A cache of 10 is recomputed once with 14, saying why."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(SAMPLE_RUN, run)
    run_cli("analyse", run)
    first = run_cli("render", run, "--projection", "umap", "--dump-data", tmp_path / "a", "--timings", tmp_path / "a.json",
                    *ONE_FRAME_PER_CHECKPOINT)
    assert "lists 10 neighbours a sample, and the layout needs 14" in first.stderr
    meta = json.loads(next((run / ".embedlapse" / "analysis").glob("analysis-*/meta.json")).read_text())
    assert meta["graph_neighbours"] == 14 and meta["neighbours"] == 10
    second = run_cli("render", run, "--projection", "umap", "--dump-data", tmp_path / "b", "--timings", tmp_path / "b.json",
                     *ONE_FRAME_PER_CHECKPOINT)
    assert "recomputing" not in second.stderr
    assert not json.loads((tmp_path / "b.json").read_text()).get("outliers"), "a cached film searches nothing"
    assert json.loads((tmp_path / "a.json").read_text()).get("outliers"), "the film that filled the cache searched"
    for step, _ in checkpoints(run):
        assert (tmp_path / "a" / f"aligned-{step}.npy").read_bytes() == (tmp_path / "b" / f"aligned-{step}.npy").read_bytes()
    # A cache analysed for UMAP serves PCA films (the first 10 of its lists) and t-SNE's needs more.
    run_cli("render", run, "--dump-data", tmp_path / "c", "--timings", tmp_path / "c.json", *ONE_FRAME_PER_CHECKPOINT)
    assert not json.loads((tmp_path / "c.json").read_text()).get("outliers")
    run_cli("analyse", run, "--projection", "tsne")
    meta = json.loads(next((run / ".embedlapse" / "analysis").glob("analysis-*/meta.json")).read_text())
    assert meta["graph_neighbours"] == 90
