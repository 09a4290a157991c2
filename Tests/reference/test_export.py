"""`embedlapse export`: the analysis as one CSV table, checked through pandas against --dump-data and
sklearn, and refused or abandoned cleanly (no file, one line) when it cannot be written whole."""
import json
import signal
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import BINARY, run_cli, wait_for, writing_unnamed_file
from test_cli import tiny_run

COLUMNS = ["step", "index", "label", "class_name", "x", "y", "outlier_score", "label_agreement", "label_margin",
           "projection"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, binary):
    root = tmp_path_factory.mktemp("export")
    run = tiny_run(root / "run", n=80, d=12, steps=(0, 7, 30, 31), seed=4)
    run_cli("export", run, "-o", root / "table.csv")
    run_cli("render", run, "--tween", "1", "--dump-data", root / "dump")
    return run, root / "table.csv", root / "dump"


def test_the_table_round_trips_through_pandas_as_dump_data(exported):
    run, table, dump = exported
    frame = pd.read_csv(table)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 80 * 4 and sorted(frame.step.unique()) == [0, 7, 30, 31]
    labels = np.load(run / "labels.npy")
    names = json.loads((run / "class_names.json").read_text())
    for step, rows in frame.groupby("step"):
        rows = rows.sort_values("index")
        assert rows["index"].tolist() == list(range(80))
        assert (rows.label.to_numpy() == labels).all()
        assert rows.class_name.tolist() == [names[label] for label in labels]
        # float32 written in shortest form: read back, the very same numbers as the .npy files.
        assert np.array_equal(rows[["x", "y"]].to_numpy(np.float32), np.load(dump / f"aligned-{step}.npy"))
        assert np.array_equal(rows.outlier_score.to_numpy(np.float32), np.load(dump / f"outlier-scores-{step}.npy"))
        assert np.array_equal(rows.label_agreement.to_numpy(np.float32), np.load(dump / f"label_agreement-{step}.npy"))
        assert np.array_equal(rows.label_margin.to_numpy(np.float32), np.load(dump / f"label_margin-{step}.npy"))
    assert set(frame.projection) == {"pca"}


@pytest.mark.parametrize("options,named", [
    (("--projection", "umap", "--neighbors", "7", "--min-dist", "0.25", "--seed", "3"),
     "umap n_neighbors=7 min_dist=0.25 seed=3"),
    (("--projection", "tsne", "--perplexity", "12"), "tsne perplexity=12 seed=0"),
])
def test_the_table_names_the_projection_behind_x_and_y(tmp_path, binary, options, named):
    run = tiny_run(tmp_path / "run", n=80, d=12, steps=(0, 7), seed=5)
    run_cli("export", run, "-o", tmp_path / "t.csv", *options)
    run_cli("render", run, "--tween", "1", "--dump-data", tmp_path / "dump", *options)
    frame = pd.read_csv(tmp_path / "t.csv")
    assert list(frame.columns) == COLUMNS and set(frame.projection) == {named}
    assert json.loads((tmp_path / "dump" / "alignment.json").read_text())["projection"] == named.split()[0]
    for step, rows in frame.groupby("step"):
        rows = rows.sort_values("index")
        assert np.array_equal(rows[["x", "y"]].to_numpy(np.float32), np.load(tmp_path / "dump" / f"aligned-{step}.npy"))


def test_label_agreement_is_sklearns_cosine_neighbours(exported):
    from sklearn.neighbors import NearestNeighbors
    run, table, _ = exported
    frame = pd.read_csv(table)
    labels = np.load(run / "labels.npy")
    embeddings = np.load(run / "checkpoint-30" / "embeddings.npy").astype(np.float64)
    k = 10
    _, neighbours = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(embeddings).kneighbors(embeddings)
    expected = (labels[neighbours[:, 1:]] == labels[:, None]).mean(axis=1)
    got = frame[frame.step == 30].sort_values("index").label_agreement.to_numpy()
    assert np.mean(np.abs(got - expected) < 1e-6) > 0.97  # ties at the k-th distance may pick another neighbour


def test_without_labels_the_label_columns_are_empty(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    for name in ("labels.npy", "class_names.json"):
        (run / name).unlink()
    run_cli("export", run, "-o", tmp_path / "t.csv")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert list(frame.columns) == COLUMNS and len(frame) == 60 * 3
    assert frame[["label", "class_name", "label_agreement", "label_margin"]].isna().all().all()
    assert frame[["x", "y", "outlier_score"]].notna().all().all()


def test_class_names_with_commas_and_quotes_stay_one_field(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    names = ['a, "quoted" name', "line\nbreak", "plain"]
    (run / "class_names.json").write_text(json.dumps(names))
    run_cli("export", run, "-o", tmp_path / "t.csv")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert len(frame) == 180
    assert set(frame.class_name) == set(names)


@pytest.mark.parametrize("output,message", [
    ("t.txt", "the table is CSV: the name must end in .csv"),
    ("missing/t.csv", "the folder missing does not exist"),
    ("folder.csv", "is a folder, not a file"),
])
def test_bad_outputs_are_refused_in_one_line_before_reading(tmp_path, binary, output, message):
    (tmp_path / "folder.csv").mkdir()
    proc = subprocess.run([str(BINARY), "export", str(tmp_path / "no-run"), "-o", output], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.csv"]


def test_a_bad_run_writes_nothing(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    (run / "checkpoint-10" / "embeddings.npy").write_bytes(b"\x93NUMPY garbage")
    proc = run_cli("export", run, "-o", tmp_path / "t.csv", check=False)
    assert proc.returncode == 1 and "checkpoint-10" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob(".*partial"))


def test_ctrl_c_leaves_no_table_and_keeps_an_earlier_one(tmp_path, binary):
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    for step in range(40):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        np.save(run / f"checkpoint-{step}" / "embeddings.npy", rng.standard_normal((8000, 64)).astype(np.float32))
    table = tmp_path / "t.csv"
    table.write_text("earlier\n")
    proc = subprocess.Popen([str(BINARY), "export", str(run), "-o", str(table)], stderr=subprocess.PIPE, text=True)
    # A few checkpoints in (about 0.8 MB of rows each), with most of the table still to come.
    assert wait_for(lambda: writing_unnamed_file(proc.pid, tmp_path, larger_than=2_000_000) or proc.poll() is not None,
                    timeout=60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: nothing written" in err
    assert table.read_text() == "earlier\n"
    assert not list(tmp_path.glob(".t.csv.*"))
