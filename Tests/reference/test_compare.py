"""`embedlapse compare`: two runs on one evaluation set side by side. The union of their steps, what
each panel shows, the right run rotated onto the left (against scipy), the per-sample comparisons
of --dump-data (against each run's own --dump-data), refusals of mismatched evaluation sets, and
`demo --compare`."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from conftest import SHARED, frames_in, run_cli

REAL_RUN = SHARED / "runs" / "cnn-fmnist"


def steps_of(run):
    return sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))


def copy_run(source, target, transform, drop=()):
    """A copy of `source` whose embeddings go through transform(embeddings, step), without the `drop` steps."""
    shutil.copytree(source, target)
    for step in steps_of(target):
        folder = target / f"checkpoint-{step}"
        if step in drop:
            shutil.rmtree(folder)
            continue
        embeddings = np.load(folder / "embeddings.npy").astype(np.float32)
        np.save(folder / "embeddings.npy", transform(embeddings, step).astype(np.float32))
    return target


@pytest.fixture(scope="module")
def real_steps():
    return steps_of(REAL_RUN)


@pytest.fixture(scope="module")
def compared(tmp_path_factory, binary, real_steps):
    """cnn-fmnist against a noisy, rotated copy that lacks every third checkpoint and the last two."""
    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(3)
    width = np.load(REAL_RUN / f"checkpoint-{real_steps[0]}" / "embeddings.npy").shape[1]
    rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
    dropped = set(real_steps[1::3]) | set(real_steps[-2:])
    copy = copy_run(REAL_RUN, root / "copy", lambda e, step: e @ rotation + 0.05 * e.std() * rng.standard_normal(e.shape),
                    drop=dropped)
    run_cli("compare", REAL_RUN, copy, "-o", root / "cmp.mp4", "--dump-data", root / "dump", "--tween", "3",
            "--names", "original,copy")
    for run, name in ((REAL_RUN, "a"), (copy, "b")):
        run_cli("render", run, "--tween", "1", "--dump-data", root / f"own-{name}")
    return root, copy, dropped


def test_the_film_runs_over_the_union_of_both_runs_steps(compared, real_steps):
    root, _, _ = compared
    document = json.loads((root / "dump" / "comparison.json").read_text())
    assert document["names"] == ["original", "copy"]
    assert [frame["step"] for frame in document["frames"]] == real_steps
    assert frames_in(root / "cmp.mp4") == (len(real_steps) - 1) * 3 + 1


def test_each_panel_shows_its_latest_checkpoint_and_says_so(compared, real_steps):
    root, copy, dropped = compared
    copy_steps = steps_of(copy)
    for frame in json.loads((root / "dump" / "comparison.json").read_text())["frames"]:
        step = frame["step"]
        shown = max(s for s in copy_steps if s <= step)
        assert frame["shown_steps"] == [step, shown]
        assert frame["states"][0] == "current"
        if step in copy_steps:
            assert frame["states"][1] == "current"
        elif step > copy_steps[-1]:
            assert frame["states"][1] == "finished"
        else:
            assert frame["states"][1] == "older"
    shared = json.loads((root / "dump" / "comparison.json").read_text())["shared_steps"]
    assert shared == [s for s in real_steps if s not in dropped]


def test_the_right_run_is_rotated_onto_the_left_as_scipy_would(compared):
    root, copy, _ = compared
    for step in steps_of(copy)[::4]:
        left = np.load(root / "own-a" / f"aligned-{step}.npy").astype(np.float64)
        right_own = np.load(root / "own-b" / f"aligned-{step}.npy").astype(np.float64)
        assert np.array_equal(np.load(root / "dump" / f"aligned-a-{step}.npy"), left.astype(np.float32))
        rotation, _ = orthogonal_procrustes(right_own - right_own.mean(0), left - left.mean(0))
        expected = right_own @ rotation
        got = np.load(root / "dump" / f"aligned-b-{step}.npy")
        np.testing.assert_allclose(got, expected, atol=2e-4)
        # A rotated, slightly noisy copy of one run: once aligned, each sample sits where it sits on the left.
        assert np.median(np.linalg.norm(got - left, axis=1)) < 0.1


def test_a_panel_keeps_its_points_while_its_run_has_no_new_checkpoint(compared, real_steps):
    root, copy, dropped = compared
    for step in sorted(dropped):
        shown = max(s for s in steps_of(copy) if s <= step)
        assert np.array_equal(np.load(root / "dump" / f"aligned-b-{step}.npy"), np.load(root / "dump" / f"aligned-b-{shown}.npy"))


def test_the_per_sample_comparison_is_each_runs_own_numbers(compared):
    root, copy, _ = compared
    top = json.loads((root / "dump" / "comparison.json").read_text())["top"]
    for step in steps_of(copy)[::5]:
        table = np.genfromtxt(root / "dump" / f"comparison-{step}.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
        assert list(table["index"]) == list(range(1000))
        for name in ("a", "b"):
            scores = np.load(root / f"own-{name}" / f"outlier-scores-{step}.npy")
            ranks = np.empty(len(scores), int)
            ranks[np.lexsort((np.arange(len(scores)), scores))] = np.arange(1, len(scores) + 1)
            assert np.array_equal(table[f"outlier_rank_{name}"], ranks)
            agreement = np.load(root / f"own-{name}" / f"label_agreement-{step}.npy")
            np.testing.assert_array_equal(table[f"label_agreement_{name}"].astype(np.float32), agreement)
        in_a, in_b = table["outlier_rank_a"] <= top, table["outlier_rank_b"] <= top
        expected = np.where(in_a & in_b, "both", np.where(in_a, "a", np.where(in_b, "b", "")))
        assert list(np.char.strip(table["top_outlier_in"].astype(str))) == list(expected)


def test_disagreement_ranks_the_samples_the_runs_see_differently(tmp_path, binary):
    """Two runs that agree except on 12 samples, moved to another class's cluster in the second:
    those 12 lead the disagreement leaderboard."""
    rng = np.random.default_rng(0)
    n, d = 600, 16
    labels = np.arange(n) % 4
    centres = 6 * np.eye(4, d)
    moved = rng.choice(n, 12, replace=False)
    runs = [tmp_path / "a", tmp_path / "b"]
    for step in (0, 10):
        shared = centres[labels] + rng.standard_normal((n, d))
        changed = shared.copy()
        changed[moved] = centres[(labels[moved] + 1) % 4] + rng.standard_normal((12, d))
        for run, embeddings in zip(runs, (shared, changed)):
            (run / f"checkpoint-{step}").mkdir(parents=True)
            np.save(run / f"checkpoint-{step}" / "embeddings.npy", embeddings.astype(np.float32))
    for run in runs:
        np.save(run / "labels.npy", labels.astype(np.int64))
    run_cli("compare", *runs, "--dump-data", tmp_path / "dump", "--leaderboard", "disagreement", "--top", "12",
            "-o", tmp_path / "d.mp4", "--tween", "1")
    frames = json.loads((tmp_path / "dump" / "comparison.json").read_text())["frames"]
    assert frames[-1]["leaderboards"][0] == frames[-1]["leaderboards"][1], "one list for both panels"
    assert set(frames[-1]["leaderboards"][0]) == set(moved.tolist())


@pytest.mark.parametrize("change,message", [
    ("fewer", "are not one evaluation set: 1000 samples against 999"),
    ("labels", "are not one evaluation set: their labels differ at 3 of 1000 samples (first sample 5:"),
])
def test_a_different_evaluation_set_is_refused_and_nothing_written(tmp_path, binary, change, message):
    other = tmp_path / "other"
    shutil.copytree(REAL_RUN, other)
    if change == "fewer":
        for folder in other.glob("checkpoint-*"):
            np.save(folder / "embeddings.npy", np.load(folder / "embeddings.npy")[:999])
        for name in ("labels.npy", "images.npy"):
            np.save(other / name, np.load(other / name)[:999])
    else:
        labels = np.load(other / "labels.npy")
        labels[[5, 60, 700]] = (labels[[5, 60, 700]] + 1) % 10
        np.save(other / "labels.npy", labels)
    proc = run_cli("compare", REAL_RUN, other, "-o", tmp_path / "cmp.mp4", "--dump-data", tmp_path / "dump", check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "cmp.mp4").exists() and not (tmp_path / "dump").exists()
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("args,message", [
    (["--names", "onlyone"], "--names takes two names"),
    (["--names", "a,"], "--names takes two names"),
    (["--summary-frame"], "--summary-frame maps one run's training dynamics"),
    ([], "nothing to write"),
])
def test_bad_compare_flags_are_refused_in_one_line(tmp_path, binary, args, message):
    outputs = [] if not args else ["-o", str(tmp_path / "c.mp4")]
    proc = run_cli("compare", REAL_RUN, REAL_RUN, *outputs, *args, check=False)
    assert proc.returncode == 64 and message in proc.stderr, proc.stderr


def test_disagreement_is_only_for_comparisons(tmp_path, binary):
    proc = run_cli("render", REAL_RUN, "-o", tmp_path / "r.mp4", "--leaderboard", "disagreement", check=False)
    assert proc.returncode == 64 and "use embedlapse compare" in proc.stderr


def test_demo_compare_trains_frozen_and_full_and_films_both(tmp_path, binary):
    proc = run_cli("demo", "--compare", "-o", tmp_path / "demo.mp4", "--save-run", tmp_path / "runs", "--steps", "80",
                   "--pretrain-steps", "80", "--checkpoint-every", "40", "--eval-size", "600", "--tween", "2")
    lines = proc.stderr.splitlines()
    assert any(line.startswith("frozen backbone: fine-tuned 80 steps") and "test accuracy" in line for line in lines), proc.stderr
    assert any(line.startswith("full fine-tuning: fine-tuned 80 steps") and "test accuracy" in line for line in lines), proc.stderr
    assert steps_of(tmp_path / "runs" / "frozen") == steps_of(tmp_path / "runs" / "full") == [0, 40, 80]
    assert frames_in(tmp_path / "demo.mp4") == 5
    for name in ("frozen", "full"):
        assert np.load(tmp_path / "runs" / name / "labels.npy").shape == (600,)
