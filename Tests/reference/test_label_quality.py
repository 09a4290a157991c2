"""Label quality against independent references: label_agreement and label_margin against
scikit-learn's NearestNeighbors (cosine, brute force) plus numpy, dynamics.csv recomputed in numpy
from the dumped per-checkpoint arrays, and planted label flips found by kNN-AUM."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from conftest import checkpoints, run_cli, runs_to_compare

K = 10
# Neighbours closer together than this (cosine distance) may swap across the k-th place between
# float32 and float64 searches: such samples are left out of the exact comparison.
TIE = 1e-5

_dumps = {}


def dump(run, tmp_path_factory):
    key = str(run)
    if key not in _dumps:
        out = tmp_path_factory.mktemp("labels")
        run_cli("render", run, "--dump-data", out)
        _dumps[key] = out
    return _dumps[key]


def reference_votes(x, labels):
    """Agreement, margin (fractions of k) and which samples are free of distance ties at the k-th
    place, from scikit-learn's exact cosine neighbours in float64, each point itself excluded."""
    n = len(x)
    k = min(K, n - 1)
    extra = 1 if k < n - 1 else 0  # the (k+1)-th neighbour, to see ties at the k-th place
    nn = NearestNeighbors(n_neighbors=k + extra, metric="cosine", algorithm="brute").fit(x.astype(np.float64))
    distances, indices = nn.kneighbors()  # no query: each point is not its own neighbour
    neighbour_labels = labels[indices[:, :k]]
    own = (neighbour_labels == labels[:, None]).sum(axis=1)
    # Votes of each neighbour's label within the row; the strongest label other than the own one.
    counts = (neighbour_labels[:, :, None] == neighbour_labels[:, None, :]).sum(axis=2)
    other = np.where(neighbour_labels != labels[:, None], counts, 0).max(axis=1)
    clear = distances[:, k] - distances[:, k - 1] > TIE if extra else np.ones(n, dtype=bool)
    return own / k, (own - other) / k, clear


@pytest.mark.parametrize("name", runs_to_compare())
def test_agreement_and_margin_equal_scikit_learn(binary, resolve_run, name, tmp_path_factory):
    run = resolve_run(name)
    if not (run / "labels.npy").exists():
        pytest.skip(f"{run} has no labels")
    labels = np.load(run / "labels.npy").astype(np.int64)
    out = dump(run, tmp_path_factory)
    compared = total = 0
    for step, path in checkpoints(run):
        x = np.load(path)
        agreement, margin, clear = reference_votes(x, labels)
        got_agreement = np.load(out / f"label_agreement-{step}.npy")
        got_margin = np.load(out / f"label_margin-{step}.npy")
        assert got_agreement.dtype == np.float32 and got_agreement.shape == (len(x),)
        assert got_margin.dtype == np.float32 and got_margin.shape == (len(x),)
        assert np.all((got_agreement >= 0) & (got_agreement <= 1)) and np.all(np.abs(got_margin) <= 1)
        bad = clear & ((np.abs(got_agreement - agreement) > 1e-6) | (np.abs(got_margin - margin) > 1e-6))
        assert not bad.any(), (f"step {step}: {bad.sum()} samples differ from scikit-learn, e.g. "
                               f"{np.flatnonzero(bad)[:5].tolist()}")
        # Samples with ties at the k-th place may differ by a vote, but hardly any do.
        same = (np.abs(got_agreement - agreement) <= 1e-6) & (np.abs(got_margin - margin) <= 1e-6)
        assert same.mean() >= 0.995, f"step {step}: only {same.mean():.4f} of the samples agree"
        compared += clear.sum()
        total += len(x)
    assert compared >= 0.9 * total, f"only {compared} of {total} samples were free of ties"


def read_dynamics(out):
    with open(out / "dynamics.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    return header, rows


@pytest.mark.parametrize("name", runs_to_compare())
def test_dynamics_recomputed_from_the_dumps(binary, resolve_run, name, tmp_path_factory):
    run = resolve_run(name)
    if not (run / "labels.npy").exists():
        pytest.skip(f"{run} has no labels")
    labels = np.load(run / "labels.npy").astype(np.int64)
    out = dump(run, tmp_path_factory)
    steps = [step for step, _ in checkpoints(run)]
    agreement = np.stack([np.load(out / f"label_agreement-{s}.npy").astype(np.float64) for s in steps])
    margin = np.stack([np.load(out / f"label_margin-{s}.npy").astype(np.float64) for s in steps])
    c, n = margin.shape
    header, rows = read_dynamics(out)
    assert header == ["index", "label", "knn_aum", "knn_aum_last_half", "mean_agreement", "variability",
                      "forgetting_events", "stable_from_step", "final_outlier_score"]
    assert len(rows) == n
    column = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    assert [int(v) for v in column["index"]] == list(range(n))
    assert np.array_equal(np.array([int(v) for v in column["label"]]), labels)

    def floats(name):
        return np.array([float(v) for v in column[name]])

    assert np.allclose(floats("knn_aum"), margin.mean(axis=0), atol=1e-6, rtol=0)
    half = math.ceil(c / 2)
    assert np.allclose(floats("knn_aum_last_half"), margin[c - half:].mean(axis=0), atol=1e-6, rtol=0)
    assert np.allclose(floats("mean_agreement"), agreement.mean(axis=0), atol=1e-6, rtol=0)
    assert np.allclose(floats("variability"), agreement.std(axis=0), atol=1e-6, rtol=0)
    # The kNN-majority label is the sample's own when its own label wins the vote outright.
    wins = margin > 0
    forgetting = (wins[:-1] & ~wins[1:]).sum(axis=0)
    assert np.array_equal(np.array([int(v) for v in column["forgetting_events"]]), forgetting)
    for i in range(n):
        if not wins[-1, i]:
            expected = ""
        else:
            lost = np.flatnonzero(~wins[:, i])
            expected = str(steps[lost[-1] + 1] if lost.size else steps[0])
        assert column["stable_from_step"][i] == expected, f"sample {i}"
    final = np.load(out / f"outlier-scores-{steps[-1]}.npy")
    assert np.array_equal(floats("final_outlier_score").astype(np.float32), final)


def test_no_labels_no_label_files(binary, tmp_path):
    run = tmp_path / "run"
    rng = np.random.default_rng(3)
    for step in (0, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        np.save(run / f"checkpoint-{step}" / "embeddings.npy", rng.standard_normal((40, 6)).astype(np.float32))
    out = tmp_path / "dump"
    run_cli("render", run, "--dump-data", out)
    assert (out / "outlier-scores-10.npy").exists()
    assert not list(out.glob("label_*")) and not (out / "dynamics.csv").exists()


def small_run(path, x, labels, steps=(0, 1)):
    for step in steps:
        (path / f"checkpoint-{step}").mkdir(parents=True)
        np.save(path / f"checkpoint-{step}" / "embeddings.npy", np.asarray(x, dtype=np.float32))
    np.save(path / "labels.npy", np.asarray(labels, dtype=np.int64))
    return path


def test_three_samples(binary, tmp_path):
    """The fewest the CLI takes: k = N - 1 = 2, every other sample is a neighbour (N = 2 is in the
    Swift tests)."""
    x = [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 0, 1, 0, 1]]
    for labels, agreement, margin in [([0, 0, 1], [0.5, 0.5, 0], [0, 0, -1]), ([2, 2, 2], [1, 1, 1], [1, 1, 1]),
                                      ([0, 1, 2], [0, 0, 0], [-0.5, -0.5, -0.5])]:
        name = "-".join(map(str, labels))
        run = small_run(tmp_path / f"run-{name}", x, labels)
        out = tmp_path / f"dump-{name}"
        run_cli("render", run, "--dump-data", out)
        assert np.array_equal(np.load(out / "label_agreement-1.npy"), np.array(agreement, dtype=np.float32))
        assert np.array_equal(np.load(out / "label_margin-1.npy"), np.array(margin, dtype=np.float32))


def test_two_dimensions_vote_on_cosine_neighbours(binary, tmp_path):
    """With D <= 3 the outlier scorer measures Euclidean distance, but the votes are cosine: two
    rays of points, one class each, whose points near the origin are Euclidean neighbours."""
    rng = np.random.default_rng(8)
    radius = np.concatenate([np.linspace(0.2, 6, 12), np.linspace(0.2, 6, 12)])
    angle = np.concatenate([rng.normal(0, 0.01, 12), rng.normal(1.2, 0.01, 12)])
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    labels = np.repeat([0, 1], 12)
    run = small_run(tmp_path / "run", x, labels)
    out = tmp_path / "dump"
    run_cli("render", run, "--dump-data", out)
    agreement, margin, _ = reference_votes(x.astype(np.float32), labels)
    assert np.all(agreement == 1), "the reference itself: each ray votes for its own class"
    assert np.array_equal(np.load(out / "label_agreement-1.npy"), agreement.astype(np.float32))
    assert np.array_equal(np.load(out / "label_margin-1.npy"), margin.astype(np.float32))
    euclidean = NearestNeighbors(n_neighbors=K).fit(x).kneighbors()[1]
    assert (labels[euclidean] != labels[:, None]).any(), "Euclidean neighbours would have mixed the classes"


@pytest.mark.parametrize("dim", [2, 3])
def test_low_dimensional_votes_equal_scikit_learn(binary, tmp_path, dim):
    """The cosine votes of D <= 3 come from a k-d tree over the rows scaled to unit length: on
    rows in every direction (classes by sector, lengths at random), with a block of equal rows
    and a few zero rows, they are scikit-learn's wherever the k-th neighbour is not tied."""
    rng = np.random.default_rng(30 + dim)
    n = 2000
    x = rng.normal(size=(n, dim))
    labels = np.argmax(x @ rng.normal(size=(dim, 5)), axis=1)
    x *= rng.uniform(0.1, 5, (n, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
    x[100:400] = x[100]
    x[[7, 1000, 1999]] = 0
    run = small_run(tmp_path / "run", x, labels)
    out = tmp_path / "dump"
    run_cli("render", run, "--dump-data", out, "--tween", "1", "-o", tmp_path / "film.mp4")
    agreement, margin, clear = reference_votes(x.astype(np.float32), labels)
    assert clear.sum() > n / 2
    assert np.array_equal(np.load(out / "label_agreement-1.npy")[clear], agreement[clear].astype(np.float32))
    assert np.array_equal(np.load(out / "label_margin-1.npy")[clear], margin[clear].astype(np.float32))


def clusters_run(path, *, n=1500, d=48, classes=6, checkpoints=12, flip=0.04, model_saw_flips=False, seed=0):
    """Class clusters that separate as training goes on (class means at unit distance from a common
    offset, per-sample noise of norm about 1), a few percent of the labels flipped.

    With `model_saw_flips`, each flipped sample's embedding moves from its true class to the class
    of its flipped label between 10% and 40% of training, and stays there: the model memorised the
    wrong label, and from then on the neighbourhood agrees with it. Otherwise the flips are planted
    in labels.npy after training. Returns the flipped mask."""
    rng = np.random.default_rng(seed)
    true = rng.permutation(np.arange(n) % classes)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, int(round(flip * n)), replace=False)] = True
    labels = true.copy()
    labels[flipped] = (true[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    means = rng.standard_normal((classes, d))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    offset = rng.standard_normal(d)
    offset *= 2 / np.linalg.norm(offset)
    z = rng.standard_normal((n, d)) / math.sqrt(d)
    path.mkdir(parents=True)
    for j in range(checkpoints):
        progress = j / (checkpoints - 1)
        separation = 0.05 + 1.0 * (1 - math.exp(-3 * progress))
        centre = means[true]
        if model_saw_flips:
            pull = min(1.0, max(0.0, (progress - 0.1) / 0.3))
            centre = centre.copy()
            centre[flipped] = (1 - pull) * means[true[flipped]] + pull * means[labels[flipped]]
        x = offset + separation * centre + z + 0.1 * rng.standard_normal((n, d)) / math.sqrt(d)
        (path / f"checkpoint-{j * 50}").mkdir()
        np.save(path / f"checkpoint-{j * 50}" / "embeddings.npy", x.astype(np.float32))
    np.save(path / "labels.npy", labels.astype(np.int64))
    return flipped


@pytest.mark.parametrize("model_saw_flips,floor", [(False, 0.95), (True, 0.7)], ids=["flipped-after", "flipped-before"])
def test_planted_flips_are_found(binary, tmp_path, model_saw_flips, floor):
    run = tmp_path / "run"
    flipped = clusters_run(run, model_saw_flips=model_saw_flips, seed=5 if model_saw_flips else 4)
    out = tmp_path / "dump"
    run_cli("render", run, "--dump-data", out)
    header, rows = read_dynamics(out)
    aum = np.array([float(row[header.index("knn_aum")]) for row in rows])
    last_half = np.array([float(row[header.index("knn_aum_last_half")]) for row in rows])
    agreement = np.array([float(row[header.index("mean_agreement")]) for row in rows])
    final = np.load(out / f"label_margin-{checkpoints(run)[-1][0]}.npy")
    auroc, final_auroc = roc_auc_score(flipped, -aum), roc_auc_score(flipped, -final)
    print(f"\nplanted flips ({'model saw them' if model_saw_flips else 'after training'}): "
          f"AUROC of -knn_aum {auroc:.4f}, of -knn_aum_last_half {roc_auc_score(flipped, -last_half):.4f}, "
          f"of -mean_agreement {roc_auc_score(flipped, -agreement):.4f}, of the last margin alone {final_auroc:.4f}")
    assert auroc > floor, f"AUROC {auroc:.4f} of -knn_aum at finding the flipped labels"
    if model_saw_flips:
        # The test is only worth something if the flips were memorised: the last checkpoint alone
        # cannot tell them apart, only their history can.
        assert final_auroc < 0.6, f"the last checkpoint's margin finds the flips too (AUROC {final_auroc:.4f})"


@pytest.mark.parametrize("name", [pytest.param("samples", id="cnn-fmnist")])
def test_flips_planted_in_a_real_run_are_found(binary, resolve_run, name, tmp_path):
    """3% of a real run's labels flipped after training (its checkpoints linked, not copied)."""
    source = resolve_run(name)
    run = tmp_path / "run"
    run.mkdir()
    for step, path in checkpoints(source):
        (run / f"checkpoint-{step}").mkdir()
        (run / f"checkpoint-{step}" / "embeddings.npy").symlink_to(path)
    labels = np.load(source / "labels.npy").astype(np.int64)
    classes = labels.max() + 1
    rng = np.random.default_rng(12)
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), int(round(0.03 * len(labels))), replace=False)] = True
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    np.save(run / "labels.npy", noisy)
    out = tmp_path / "dump"
    run_cli("render", run, "--dump-data", out)
    header, rows = read_dynamics(out)
    aum = np.array([float(row[header.index("knn_aum")]) for row in rows])
    auroc = roc_auc_score(flipped, -aum)
    print(f"\nflips planted in {source.name}: AUROC of -knn_aum {auroc:.4f}")
    assert auroc > 0.95, f"AUROC {auroc:.4f} of -knn_aum at finding the flipped labels"
