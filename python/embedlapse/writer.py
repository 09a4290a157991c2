"""RunWriter: the run layout of docs/run-layout.md, every file written atomically.

Embedlapse never changes or deletes a file it did not write: every path the writer writes is listed
first in the run's manifest (see manifest.py), and overwrite and resume remove listed files only."""
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from datetime import datetime, timezone

import numpy as np

from .manifest import (COMPLETE_SUFFIX, DONE, EMBEDDINGS, MANIFEST, RUN_FILES, RUN_JSON, TRAINER_STATE,
                       CHECKPOINT_NAME, Manifest, checkpoint_dirs, helper_wrote_run_json, layout_files, sha256)

THUMBNAIL_SIZE = 64
RUN_FORMAT = 1
LOSSES = "losses.csv"
# Where to get the binary, for the one-line error that says it is missing.
INSTALL_HINT = ("build it with `make build` (or `swift build -c release --product embedlapse`) and put "
                ".build/release/embedlapse on PATH, or set EMBEDLAPSE_BIN to its path")


def is_main_process():
    """False on every process of a distributed training but rank 0, which alone writes the run.

    torch.distributed when it is initialised, else the RANK variable torchrun and accelerate set.
    torch is only looked at if the training has imported it: a training without torch never loads it."""
    torch = sys.modules.get("torch")
    distributed = getattr(torch, "distributed", None)
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank() == 0
    rank = os.environ.get("RANK", "").strip()
    return rank in ("", "0")


def _step(folder):
    return int(CHECKPOINT_NAME.fullmatch(folder).group(1))


def _has_checkpoint(files):
    return any(rel.endswith("/" + EMBEDDINGS) for rel in files)


def previous_run(run_dir):
    """The files of an earlier run in run_dir (its root files and checkpoint embeddings), or [] when it
    has no checkpoint: whoever wrote them, a watcher would film them with the next run.

    Anything else (a Trainer's logs and model checkpoints) is not a run, and neither are root files
    alone (run.json and labels left by a start that failed before its first checkpoint)."""
    if not os.path.isdir(run_dir):
        return []
    files = layout_files(run_dir)
    return [os.path.join(run_dir, *rel.split("/")) for rel in files] if _has_checkpoint(files) else []


def _run_json(run_dir):
    try:
        with open(os.path.join(run_dir, RUN_JSON), "rb") as f:
            meta = json.loads(f.read().decode())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _run_id(run_dir):
    """run.json's run_id, or None."""
    run_id = _run_json(run_dir).get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _example(run_dir, paths):
    return os.path.join(run_dir, *paths[0].split("/")) + (" and more" if len(paths) > 1 else "")


def _refuse_foreign(run_dir, manifest, files):
    """A run-layout file the helper did not write would be filmed with the new run, and Embedlapse never
    removes it: refused, whatever the flags."""
    foreign = [rel for rel in files if not manifest.owns(rel)]
    if foreign:
        raise FileExistsError(f"{run_dir} holds {_example(run_dir, foreign)}, which Embedlapse did not write "
                              f"(not a regular file listed in {MANIFEST}), and which would mix with the run: "
                              "Embedlapse never removes such a file; move it away, or choose another folder")


def _others(run_dir, manifest):
    """The entries of run_dir that are not the helper's: what makes a folder 'not empty'."""
    others = []
    for name in sorted(os.listdir(run_dir)):
        if name == MANIFEST or name in RUN_FILES and manifest.owns(name):
            continue
        path = os.path.join(run_dir, name)
        if CHECKPOINT_NAME.fullmatch(name) and os.path.isdir(path) and not os.path.islink(path):
            inside = [f"{name}/{entry}" for entry in sorted(os.listdir(path))]
            others += [rel for rel in inside if not manifest.owns(rel)]
        else:
            others.append(name)
    return others


def _prepare_new_run(run_dir, overwrite, shared):
    """Makes run_dir ready for a new run and returns its new manifest.

    A watcher would film a new run written over an old one as one run, so a folder holding a previous
    run (a checkpoint's embeddings) is refused, or with overwrite has the old run's files removed: only
    the files Embedlapse wrote (see manifest.py). What a start left that failed before its first
    checkpoint (run.json, labels) is no run: it is removed without overwrite. Not shared, a folder that
    holds anything else is refused as well; with overwrite, the new run is written beside those files."""
    if not os.path.isdir(run_dir):
        os.makedirs(run_dir)  # FileExistsError when run_dir is a file: the right error
        return Manifest(run_dir, legacy=False)
    manifest = Manifest.load(run_dir)
    present = layout_files(run_dir)
    _refuse_foreign(run_dir, manifest, present)
    # Without a manifest, root files alone are this helper's only when its run.json says so.
    unproven = manifest.legacy and present and not helper_wrote_run_json(run_dir)
    if (_has_checkpoint(present) or unproven) and not overwrite:
        what = "a previous Embedlapse run" if _has_checkpoint(present) else "files of an Embedlapse run"
        prefix = f"{run_dir} holds" if shared else f"{run_dir} is not empty: it holds"
        raise FileExistsError(f"{prefix} {what} ({_example(run_dir, present)}): pass overwrite=True to remove "
                              "it (only the files Embedlapse wrote go), or choose another folder")
    if not shared and not overwrite:
        others = _others(run_dir, manifest)
        if others:
            raise FileExistsError(f"{run_dir} is not empty ({_example(run_dir, others)}): choose another folder, "
                                  "or pass overwrite=True to write the run beside what it holds (Embedlapse never "
                                  "removes a file it did not write)")
    owned = list(manifest.files) if not manifest.legacy else present
    for rel in sorted(owned, key=lambda rel: rel.endswith(EMBEDDINGS)):  # markers before embeddings
        manifest.remove(rel)
    for folder in checkpoint_dirs(run_dir):
        manifest.remove_folder(folder)
    # The folders it created and that stay (a Trainer saved into them) are still the helper's.
    kept = {f for f in manifest.folders if os.path.isdir(os.path.join(run_dir, f))}
    return Manifest(run_dir, folders=kept, legacy=False)


def _read_losses(path):
    """losses.csv as written by RunWriter: {step: loss} and {step: epoch}; rows it cannot read are skipped."""
    losses, epochs = {}, {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                step, loss = int(row["step"]), float(row["loss"])
            except (KeyError, TypeError, ValueError):
                continue
            losses[step] = loss
            try:
                epochs[step] = float(row.get("epoch") or "")
            except ValueError:
                pass
    return losses, epochs


def _rows(path):
    """The number of rows in an .npy file, from its header alone."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        shape = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)[0]
    return shape[0] if shape else 0


def _umask():
    """The process umask. Linux shows it in /proc; elsewhere it can only be read by setting it, which
    changes it for a moment for the training's other threads too, so /proc comes first."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _to_numpy(array):
    """numpy arrays, torch tensors (any device, with or without grad) and nested lists."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _atomic_write(path, data: bytes):
    """Write under a temporary name in the same directory, then rename: readers never see half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes the file private (0600); a run is for others to read too, as any file open() creates.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def _thumbnails(images, size=THUMBNAIL_SIZE):
    """uint8 (N, H, W), (N, H, W, 3|4) arrays, or PIL images; larger than `size` pixels is shrunk."""
    if not isinstance(images, np.ndarray) and len(images) and hasattr(images[0], "resize"):  # PIL images
        thumbs = []
        for image in images:
            image = image.convert("RGB") if image.mode not in ("L", "RGB", "RGBA") else image
            image = image.copy()
            image.thumbnail((size, size))
            thumbs.append(image)
        # All thumbnails share one size: pad onto a black square.
        mode = thumbs[0].mode
        side = max(max(t.size) for t in thumbs)
        channels = {"L": None, "RGB": 3, "RGBA": 4}[mode]
        out = np.zeros((len(thumbs), side, side) + ((channels,) if channels else ()), np.uint8)
        for i, t in enumerate(thumbs):
            a = np.asarray(t.convert(mode))
            out[i, : a.shape[0], : a.shape[1]] = a
        return out
    images = _to_numpy(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype} (scale to 0-255 first)")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (3, 4)):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 3) or (N, H, W, 4), got {images.shape}")
    h, w = images.shape[1:3]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(images[:, ::step, ::step])  # nearest-neighbour shrink, no extra dependency


class RunWriter:
    """Writes a training run in the layout `embedlapse watch` and `embedlapse render` read.

    run_dir      the run directory: created, or an empty one (see overwrite)
    labels       optional (N,) integer class of each evaluation sample
    class_names  optional list of names, indexed by label
    images       optional thumbnails: uint8 (N, H, W[, C]) or PIL images
    dtype        "float32" (default) or "float16" for the stored embeddings
    overwrite    a run_dir holding a previous run (or, not shared, anything) is refused (FileExistsError);
                 overwrite=True removes the previous run's files that Embedlapse wrote, and only those
    shared       run_dir also holds other files (a Trainer's output_dir): only a previous run is refused
    resume_at    continue the run in run_dir from this step (a training resumed from its checkpoint):
                 same run_id, its checkpoints and losses up to the step kept, the writer's own later
                 checkpoints and its DONE marker removed (overwrite plays no part); a run_dir without a
                 run starts a new one, as without resume_at

    Embedlapse never changes or deletes a file it did not write: it lists each file it writes in
    embedlapse-manifest.json at the run's root before writing it, and removes listed files only (a
    Trainer's weights, optimizer, scheduler and RNG state stay, whatever the flags). A checkpoint's
    trainer_state.json is written only where none is (a Trainer's own is kept).

    In a distributed training only rank 0 writes (see is_main_process): on the other processes the
    writer does nothing at all, so every process can run the same code.
    """

    def __init__(self, run_dir, labels=None, class_names=None, images=None, dtype="float32", overwrite=False,
                 *, shared=False, resume_at=None):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
        self.run_dir = os.fspath(run_dir)
        self.dtype = np.dtype(dtype)
        self.count = None
        self.run_id = None
        self.resumed_at = None  # the step the run was continued from, when it was
        self._steps = set()
        self._losses = {}
        self._epochs = {}
        self._closed = False
        self._manifest = None
        self.writes = is_main_process()
        if not self.writes:
            return
        # Check everything before touching the folder: a mistake must not cost the previous run.
        files = {}
        if labels is not None:
            labels = _to_numpy(labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
            self.count = len(labels)
            files["labels.npy"] = _npy_bytes(labels.astype(np.int64))
        if class_names is not None:
            files["class_names.json"] = json.dumps([str(n) for n in class_names]).encode()
        if images is not None:
            thumbs = _thumbnails(images)
            if self.count is not None and len(thumbs) != self.count:
                raise ValueError(f"{len(thumbs)} images for {self.count} labels")
            self.count = len(thumbs)
            files["images.npy"] = _npy_bytes(thumbs)
        if resume_at is not None and previous_run(self.run_dir):
            self._resume(int(resume_at), files)
            return
        self._manifest = _prepare_new_run(self.run_dir, overwrite, shared)
        # run.json first of the run's files: a watcher that sees a new run_id knows the folder holds a new run.
        self.run_id = uuid.uuid4().hex
        self._write([(RUN_JSON, json.dumps(run_metadata(self.run_id), indent=1).encode())] + list(files.items()))

    @property
    def steps(self):
        """The steps whose embeddings the run holds: those written, and on resume those kept."""
        return sorted(self._steps)

    def _path(self, rel):
        return os.path.join(self.run_dir, *rel.split("/"))

    def _write(self, entries, folders=()):
        """Writes each (path relative to run_dir, bytes) atomically, in order, after listing them (and the
        checkpoint folders just created) in the manifest. A file there that Embedlapse did not write is
        never replaced: FileExistsError, before anything is written."""
        for rel, _ in entries:
            if os.path.lexists(self._path(rel)) and not self._manifest.owns(rel):
                raise FileExistsError(f"{self._path(rel)} was not written by Embedlapse, which leaves it as it "
                                      "is: move it away, or choose another folder")
        listed = dict(self._manifest.files)
        for rel, data in entries:
            # trainer_state.json is a Trainer's name too: the manifest keeps what the helper's said.
            self._manifest.files[rel] = {"sha256": sha256(data)} if rel.endswith("/" + TRAINER_STATE) else {}
        self._manifest.folders.update(folders)
        if self._manifest.files != listed or folders or not os.path.lexists(self._path(MANIFEST)):
            _atomic_write(self._path(MANIFEST), self._manifest.to_json())
        for rel, data in entries:
            _atomic_write(self._path(rel), data)

    def _resume(self, step, files):
        """Reopens the run in run_dir at `step` (see resume_at). Everything is checked before anything
        changes; then the helper's own files of later steps and its DONE go, nothing else."""
        run_dir = self.run_dir
        manifest = Manifest.load(run_dir)
        present = layout_files(run_dir)
        _refuse_foreign(run_dir, manifest, [rel for rel in present if rel in RUN_FILES])
        later, kept = [], {}
        for folder in checkpoint_dirs(run_dir):
            if _step(folder) > step:
                later.append(folder)
            elif os.path.lexists(os.path.join(run_dir, folder, EMBEDDINGS)):
                kept[folder] = _step(folder)
        if kept:
            last = max(kept, key=kept.get)
            rows = _rows(os.path.join(run_dir, last, EMBEDDINGS))
            if self.count is not None and rows != self.count:
                raise ValueError(f"{self.count} labels or images, but the run's {last} embeds {rows} samples: "
                                 "resume with the evaluation set the run began with")
            self.count = rows
        if manifest.owns(LOSSES):
            losses, epochs = _read_losses(os.path.join(run_dir, LOSSES))
            self._losses = {s: l for s, l in losses.items() if s <= step}
            self._epochs = {s: e for s, e in epochs.items() if s <= step}
        # The changes: a watcher follows the run again, and the steps after `step` are trained anew.
        manifest.remove(DONE)
        foreign = []
        for folder in later:
            for name in (EMBEDDINGS + COMPLETE_SUFFIX, TRAINER_STATE, EMBEDDINGS):
                rel = f"{folder}/{name}"
                if not manifest.remove(rel) and name == EMBEDDINGS and os.path.lexists(self._path(rel)):
                    foreign.append(rel)
            manifest.remove_folder(folder)
        if foreign:
            warnings.warn(f"{run_dir}: {_example(run_dir, foreign)} lies after step {step}, where the training "
                          "resumes, but Embedlapse did not write it and leaves it there: a watcher will skip "
                          "the new checkpoints up to its step", RuntimeWarning, stacklevel=3)
        if manifest.legacy:  # an older helper's run: from now on, its manifest says what is the helper's
            manifest = Manifest(run_dir, {rel: {} for rel in layout_files(run_dir) if manifest.owns(rel)},
                                legacy=False)
        self._manifest = manifest
        self._steps = set(kept.values())
        self.resumed_at = step
        if not self._losses:
            manifest.remove(LOSSES)
        _atomic_write(self._path(MANIFEST), manifest.to_json())  # what was removed is no longer listed
        self.run_id = _run_id(run_dir) if manifest.owns(RUN_JSON) else None
        entries = self._losses_entry() + list(files.items())
        if self.run_id is None:  # the run had no run.json of this helper's: it gets one now
            self.run_id = uuid.uuid4().hex
            entries.insert(0, (RUN_JSON, json.dumps(run_metadata(self.run_id), indent=1).encode()))
        self._write(entries)

    def log_loss(self, step, loss, epoch=None):
        """Records the training loss at `step`; written out with the next checkpoint (and at close)."""
        if not self.writes:
            return
        self._losses[int(step)] = float(loss)
        if epoch is not None:
            self._epochs[int(step)] = float(epoch)

    def checkpoint(self, step, embeddings, epoch=None, trainer_state=True):
        """Writes checkpoint-<step>/embeddings.npy (N x D), after the losses so far.

        With it a trainer_state.json (the losses and epoch), unless one is there that Embedlapse did not
        write (a HuggingFace Trainer's, which it needs to resume: kept as it is) or trainer_state=False.
        Then checkpoint-<step>/embeddings.npy.complete: the watcher can take the checkpoint at once."""
        if not self.writes:
            return
        if self._closed:
            raise RuntimeError("RunWriter is closed")
        step = int(step)
        e = _to_numpy(embeddings)
        if e.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, D), got shape {e.shape}")
        if self.count is not None and e.shape[0] != self.count:
            raise ValueError(f"embeddings have {e.shape[0]} rows, the evaluation set has {self.count}")
        if not np.all(np.isfinite(e)):
            raise ValueError(f"step {step}: embeddings hold NaN or Inf")
        self.count = e.shape[0]
        folder = f"checkpoint-{step}"
        created = []
        try:
            os.mkdir(self._path(folder))
            created.append(folder)
        except FileExistsError:
            if os.path.islink(self._path(folder)) or not os.path.isdir(self._path(folder)):
                raise FileExistsError(f"{self._path(folder)} is not a folder of the run (a symlink or a file): "
                                      "Embedlapse writes only into real folders of the run") from None
        entries = self._losses_entry()
        log = [{"step": s, "loss": l, **({"epoch": self._epochs[s]} if s in self._epochs else {})}
               for s, l in sorted(self._losses.items())]
        state = {"global_step": step, "log_history": log}
        if epoch is not None:
            state["epoch"] = float(epoch)
        state_rel = f"{folder}/{TRAINER_STATE}"
        if trainer_state and (not os.path.lexists(self._path(state_rel)) or self._manifest.owns(state_rel)):
            entries.append((state_rel, json.dumps(state, indent=1).encode()))
        embeddings_rel = f"{folder}/{EMBEDDINGS}"
        entries += [(embeddings_rel, _npy_bytes(e.astype(self.dtype))), (embeddings_rel + COMPLETE_SUFFIX, b"")]
        self._write(entries, created)
        self._steps.add(step)

    def _losses_entry(self):
        if not self._losses:
            return []
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["step", "loss", "epoch"] if self._epochs else ["step", "loss"])
        for s, l in sorted(self._losses.items()):
            w.writerow([s, repr(l)] + ([self._epochs.get(s, "")] if self._epochs else []))
        return [(LOSSES, text.getvalue().encode())]

    def _write_losses(self):
        self._write(self._losses_entry())

    def close(self):
        """Writes the last losses and the DONE marker: a watcher finishes its video and exits."""
        if self._closed or not self.writes:
            return
        self._write(self._losses_entry() + [(DONE, b"")])
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_metadata(run_id):
    """run.json: the layout's version, the run's identity, when and by what it was written."""
    from . import __version__  # here, not at the top: the package imports this module
    return {"format": RUN_FORMAT, "run_id": run_id,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "writer": f"embedlapse-python {__version__}"}


def find_embedlapse():
    """The embedlapse binary: $EMBEDLAPSE_BIN (a path, or a name on PATH), else `embedlapse` on PATH.

    FileNotFoundError, one line saying how to get it, when there is none: the callback asks before it
    writes anything, so a training that wanted a film does not leave a run behind without one."""
    configured = os.environ.get("EMBEDLAPSE_BIN", "").strip()
    if configured:
        binary = configured if os.sep in configured else shutil.which(configured)
        if binary and os.path.isfile(binary) and os.access(binary, os.X_OK):
            return binary
        raise FileNotFoundError(f"embedlapse not found: EMBEDLAPSE_BIN={configured} is not an executable file; "
                                f"{INSTALL_HINT}")
    binary = shutil.which("embedlapse")
    if not binary:
        raise FileNotFoundError(f"embedlapse not found on PATH: {INSTALL_HINT}")
    return binary
