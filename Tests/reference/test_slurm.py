"""scripts/slurm-analyse.sh on a real single-node Slurm (scripts/slurm-local.sh): a job array whose
three tasks analyse 10, 10 and 11 of cnn-fmnist's 31 checkpoints into the cache one process writes
(bit for bit, --threads 1 on both sides), and a render job that waits for them (afterok) and writes
the film one process renders from that cache. A failed shard leaves the render job cancelled, never
run, and the script says which shard failed and why; so it does for a failed render job. Skipped
where Slurm and munge are missing."""
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import BINARY, ROOT, SHARED, frames_in, run_cli
from test_analyse import files_of

REAL_RUN = SHARED / "runs" / "cnn-fmnist"
LOCAL = ROOT / "scripts" / "slurm-local.sh"
ANALYSE = ROOT / "scripts" / "slurm-analyse.sh"
MISSING = [tool for tool in ("sbatch", "scontrol", "slurmctld", "slurmd", "munged") if not shutil.which(tool)]

pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"Slurm is not installed ({', '.join(MISSING)} missing): "
                                                      "apt-get install -y slurmctld slurmd slurm-client munge")


def answers():
    """Whether a Slurm controller answers (scontrol ping answers at once; sinfo retries for seconds)."""
    return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30).returncode == 0


def scontrol(*args):
    proc = subprocess.run(["scontrol", *map(str, args)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def jobs(job):
    """Each record `scontrol show job` has of a job (one per array task) as a dict of its fields."""
    return [dict(field.split("=", 1) for field in line.split() if "=" in field)
            for line in scontrol("show", "job", "-o", job).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def slurm():
    """The local cluster, started for these tests (and stopped after) unless it was already up."""
    was_up = answers()
    if was_up:
        cluster = re.search(r"ClusterName\s*=\s*(\S+)", scontrol("show", "config"))
        if not cluster or cluster.group(1) != "embedlapse-local":
            pytest.skip("a Slurm cluster other than scripts/slurm-local.sh's answers: not sending it test jobs")
    elif os.geteuid() != 0:
        pytest.skip("scripts/slurm-local.sh starts munged, slurmctld and slurmd: needs root")
    proc = subprocess.run(["bash", str(LOCAL), "start"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.fullmatch(r"slurm-local: (up|already up): \S+ idle \d+ CPUs \d+ MB.*\n", proc.stdout), proc.stdout
    node = scontrol("show", "node", "-o")
    assert f"CPUTot={os.cpu_count()} " in node or f"CPUTot={len(os.sched_getaffinity(0))} " in node, node
    yield node.split()[0].split("=", 1)[1]
    if not was_up:
        proc = subprocess.run(["bash", str(LOCAL), "stop"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and not answers(), proc.stdout + proc.stderr


def slurm_analyse(*args, timeout=120):
    env = {**os.environ, "EMBEDLAPSE_BIN": str(BINARY), "EMBEDLAPSE_SLURM_POLL": "0.5"}
    return subprocess.run(["bash", str(ANALYSE), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env)


def job_ids(stdout):
    analysis = re.search(r"analysis job (\d+): 3 tasks", stdout)
    render = re.search(r"render job (\d+) after job (\d+) succeeds", stdout)
    assert analysis and render and render.group(2) == analysis.group(1), stdout
    return analysis.group(1), render.group(1)


def test_the_array_analyses_three_shards_and_the_dependent_job_films_them_as_one_process_would(slurm, tmp_path, binary):
    run = shutil.copytree(REAL_RUN, tmp_path / "cnn-fmnist")
    cache, film = tmp_path / "slurm-cache", tmp_path / "films" / "film.mp4"
    # The node drained: both jobs stay pending, so the render job's dependency can be read before it is spent.
    scontrol("update", f"nodename={slurm}", "state=drain", "reason=embedlapse-test")
    try:
        waiting = subprocess.Popen(["bash", str(ANALYSE), "--wait", "--cache", str(cache), str(run), "3", str(film),
                                    "--tween", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "EMBEDLAPSE_BIN": str(BINARY), "EMBEDLAPSE_SLURM_POLL": "0.5"})
        try:
            submitted = waiting.stdout.readline() + waiting.stdout.readline()  # the two job ids, then it waits
            analysis, render = job_ids(submitted)
            assert jobs(render)[0]["Dependency"] == f"afterok:{analysis}_*(unfulfilled)"
            assert [(job["JobName"], job["ArrayTaskId"], job["JobState"]) for job in jobs(analysis)] == \
                [("embedlapse-analyse", "0-2", "PENDING")]
        except BaseException:
            waiting.kill()
            raise
    finally:
        scontrol("update", f"nodename={slurm}", "state=resume")
    started = time.time()
    stdout, stderr = waiting.communicate(timeout=120)
    elapsed = time.time() - started
    assert waiting.returncode == 0, submitted + stdout + stderr
    assert stdout == f"slurm-analyse: wrote {film} (job array {analysis}, render job {render})\n"
    print(f"\n3-shard array and dependent render on cnn-fmnist: {elapsed:.1f} s once the node was resumed")

    tasks = sorted(jobs(analysis), key=lambda job: int(job["ArrayTaskId"]))
    assert [(job["ArrayTaskId"], job["JobState"], job["ExitCode"]) for job in tasks] == \
        [("0", "COMPLETED", "0:0"), ("1", "COMPLETED", "0:0"), ("2", "COMPLETED", "0:0")]
    (rendered,) = jobs(render)
    assert (rendered["JobState"], rendered["ExitCode"]) == ("COMPLETED", "0:0")
    assert rendered["StartTime"] >= max(job["EndTime"] for job in tasks)  # ISO times: text order is time order

    logs = film.parent / "film.slurm-logs"
    counts = []
    for task in range(3):
        log = (logs / f"analyse-{analysis}_{task}.log").read_text()
        assert f"shard {task + 1}/3 on " in log and "with 1 threads" in log, log
        counts.append(int(re.search(r"^analysed (\d+) checkpoints, 0 already cached", log, re.M).group(1)))
    assert counts == [10, 10, 11]  # 31 checkpoints in three near-equal consecutive shards
    assert "wrote 31 frames" in (logs / f"render-{render}.log").read_text()

    one = tmp_path / "one-process"
    run_cli("analyse", run, "--cache", one, "--threads", "1")
    assert files_of(cache) == files_of(one)
    assert len(files_of(one)) == 31 * 6 + 1  # with the marker
    reference = tmp_path / "one-process.mp4"
    run_cli("render", run, "--cache", one, "--tween", "1", "-o", reference)
    assert film.read_bytes() == reference.read_bytes()
    assert frames_in(film) == 31


def test_a_failed_shard_cancels_the_render_job_and_the_script_says_which_and_why(slurm, tmp_path, binary):
    run = shutil.copytree(REAL_RUN, tmp_path / "cnn-fmnist")
    embeddings = run / "checkpoint-300" / "embeddings.npy"  # position 15 of 31: the second shard's
    x = np.load(embeddings)
    x[3, 4] = np.nan
    np.save(embeddings, x)
    film = tmp_path / "film.mp4"
    proc = slurm_analyse("--wait", "--logs", tmp_path / "logs", run, 3, film, "--tween", "1", timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    analysis, render = job_ids(proc.stdout)
    assert re.search(rf"shard 2/3 \(job {analysis}_1\) FAILED, exit code 1:0: embedlapse: \S+checkpoint-300/"
                     r"embeddings.npy: row 3 holds NaN", proc.stderr), proc.stderr
    assert f"render job {render} CANCELLED without running: the analysis failed, {film} not written" in proc.stderr
    assert "shard 1/3" not in proc.stderr and "shard 3/3" not in proc.stderr

    states = {job["ArrayTaskId"]: job["JobState"] for job in jobs(analysis)}
    assert states == {"0": "COMPLETED", "1": "FAILED", "2": "COMPLETED"}
    (cancelled,) = jobs(render)
    assert (cancelled["JobState"], cancelled["RunTime"]) == ("CANCELLED", "00:00:00")
    assert cancelled["Reason"] in ("Dependency", "DependencyNeverSatisfied")  # held by afterok until cancelled
    assert cancelled["Dependency"].startswith(f"afterok:{analysis}_*"), cancelled["Dependency"]
    assert not film.exists()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == \
        [f"analyse-{analysis}_{task}.log" for task in range(3)]  # no render log: it never started


def test_a_failed_render_job_is_named_with_its_error(slurm, tmp_path, binary):
    run = shutil.copytree(REAL_RUN, tmp_path / "cnn-fmnist")
    film = tmp_path / "film.mp4"
    proc = slurm_analyse("--wait", run, 3, film, "--size", "7x7", timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    analysis, render = job_ids(proc.stdout)
    log = tmp_path / "film.slurm-logs" / f"render-{render}.log"
    assert proc.stderr.splitlines() == [f"slurm-analyse: render job {render} FAILED, exit code 64:0: Error: --size 7x7: "
                                        f"width and height must be even, from 960x540 to 7680x4320, see {log}"]
    assert {job["JobState"] for job in jobs(analysis)} == {"COMPLETED"}
    assert not film.exists()


def test_bad_arguments_get_the_usage_line(tmp_path):
    for args in ([], [REAL_RUN, "three", "x.mp4"], [REAL_RUN, 0, "x.mp4"], [REAL_RUN, 3, "x.avi"],
                 ["--cpus-per-task", "0", REAL_RUN, 3, "x.mp4"], ["--frobnicate", REAL_RUN, 3, "x.mp4"],
                 [tmp_path / "missing", 3, "x.mp4"]):
        proc = slurm_analyse(*args)
        assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith("usage: "), (args, proc.stderr)
        assert not proc.stdout


def test_slurm_local_refuses_a_slurm_conf_that_is_not_its_own(tmp_path):
    foreign = tmp_path / "slurm.conf"
    foreign.write_text("ClusterName=somebody-elses\n")
    proc = subprocess.run(["bash", str(LOCAL), "start"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SLURM_CONF": str(foreign)})
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "is not ours" in proc.stderr and str(foreign) in proc.stderr
    assert foreign.read_text() == "ClusterName=somebody-elses\n"
