"""The manifest: every file the helper wrote into a run, so that it removes its own files and nothing else.

A run often shares its folder with files Embedlapse did not write: a HuggingFace Trainer's
checkpoint-<step> folders hold the model's weights, optimizer, scheduler and RNG state next to the
embeddings. Embedlapse never changes or deletes such a file, whatever flags it is given. So the writer
lists each path it writes (relative to the run folder) in MANIFEST before writing it, and removes only
listed files that are still what it wrote:
- a regular file (never a symlink), in the run folder or in a real checkpoint-<step> folder in it
  (never through a symlink, never outside the run folder);
- trainer_state.json, the one name a Trainer writes too, only while its content is the helper's own
  (the manifest keeps its SHA-256: a Trainer that saved over it made it the Trainer's);
- a checkpoint-<step> folder only when the helper created it and it is empty.

A run written before the manifest existed (an older helper) has none: there, only the layout's own names
count as the helper's (RUN_FILES at the root, checkpoint-<step>/embeddings.npy and its .complete
marker); its trainer_state.json files are left alone, as a Trainer may have written them.
"""
import hashlib
import json
import os
import re
import stat

MANIFEST = "embedlapse-manifest.json"
MANIFEST_FORMAT = 1
RUN_JSON = "run.json"
DONE = "DONE"
EMBEDDINGS = "embeddings.npy"
# Tells a watcher that checkpoint-<step>/embeddings.npy is complete, without waiting for the file to settle.
COMPLETE_SUFFIX = ".complete"
TRAINER_STATE = "trainer_state.json"
# The files an Embedlapse run puts at its root.
RUN_FILES = (RUN_JSON, DONE, "labels.npy", "class_names.json", "images.npy", "losses.csv")
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
# The only paths the helper ever writes: a manifest that lists anything else is not believed.
_CHECKPOINT_FILE = re.compile(r"checkpoint-\d+/(embeddings\.npy|embeddings\.npy\.complete|trainer_state\.json)")
_LEGACY_CHECKPOINT_FILE = re.compile(r"checkpoint-\d+/embeddings\.npy(\.complete)?")


def writable_name(rel):
    """True for the paths the helper writes: a RUN_FILES name, or one of its files in checkpoint-<step>."""
    return rel in RUN_FILES or _CHECKPOINT_FILE.fullmatch(rel) is not None


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def checkpoint_dirs(run_dir):
    """The names of the real checkpoint-<step> folders in run_dir (a symlink is not followed)."""
    with os.scandir(run_dir) as entries:
        return sorted(e.name for e in entries
                      if CHECKPOINT_NAME.fullmatch(e.name) and e.is_dir(follow_symlinks=False))


def layout_files(run_dir):
    """The run layout's files in run_dir, as paths relative to it: its root files and, in each real
    checkpoint-<step> folder, embeddings.npy and its marker. Whoever wrote them."""
    found = [name for name in RUN_FILES if os.path.lexists(os.path.join(run_dir, name))]
    for folder in checkpoint_dirs(run_dir):
        for name in (EMBEDDINGS, EMBEDDINGS + COMPLETE_SUFFIX):
            if os.path.lexists(os.path.join(run_dir, folder, name)):
                found.append(f"{folder}/{name}")
    return found


def helper_wrote_run_json(run_dir):
    """Whether run_dir's run.json says this helper wrote the run (its "writer")."""
    try:
        with open(os.path.join(run_dir, RUN_JSON), "rb") as f:
            meta = json.loads(f.read().decode())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("writer", "")).startswith("embedlapse-python")


class Manifest:
    """The files the helper wrote in one run folder: `files` maps each path (relative to run_dir, with
    "/") to what is known of it ({"sha256": ...} for trainer_state.json); `folders` are the
    checkpoint-<step> folders it created. `legacy`: the folder has no manifest (nothing written yet, or
    an older helper's run), so the layout's own names stand for what the helper wrote, but only where
    run.json says this helper wrote the run (`proven`): a run someone wrote by hand in the same layout
    is not the helper's to change."""

    def __init__(self, run_dir, files=None, folders=(), legacy=True, proven=False):
        self.run_dir = run_dir
        self.files = dict(files or {})
        self.folders = set(folders)
        self.legacy = legacy
        self.proven = proven

    @classmethod
    def load(cls, run_dir):
        path = os.path.join(run_dir, MANIFEST)
        if not os.path.lexists(path):
            return cls(run_dir, proven=helper_wrote_run_json(run_dir))
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise ValueError("not a regular file")
            with open(path, "rb") as f:
                data = json.loads(f.read().decode())
            files, folders = data["files"], data["folders"]
            if not (isinstance(files, dict) and isinstance(folders, list)):
                raise ValueError("files or folders of the wrong type")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a manifest this helper can read ({error}); Embedlapse removes "
                             "nothing it has no record of: move the folder's Embedlapse files away "
                             "yourself, or choose another folder") from None
        # Only the paths the helper writes are believed: a listed "../x" or "runs/events" is ignored.
        files = {rel: info if isinstance(info, dict) else {} for rel, info in files.items()
                 if isinstance(rel, str) and writable_name(rel)}
        folders = {f for f in folders if isinstance(f, str) and CHECKPOINT_NAME.fullmatch(f)}
        return cls(run_dir, files, folders, legacy=False)

    def to_json(self):
        return json.dumps({"format": MANIFEST_FORMAT,
                           "about": "The files the Embedlapse Python helper wrote in this folder: it removes "
                                    "these (overwrite, resume) and never any other.",
                           "files": dict(sorted(self.files.items())), "folders": sorted(self.folders)},
                          indent=1).encode()

    def _regular_file_in_run(self, rel):
        """rel names a regular file in run_dir, or in a real folder of run_dir: never a symlink, never a
        path that leaves run_dir. What may be removed has to pass this first."""
        parts = rel.split("/")
        if not writable_name(rel) or any(p in ("", ".", "..") for p in parts):
            return False
        try:
            if len(parts) == 2:
                folder = os.path.join(self.run_dir, parts[0])
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    return False  # a symlink in a checkpoint folder's place is not followed
                if os.path.realpath(folder) != os.path.join(os.path.realpath(self.run_dir), parts[0]):
                    return False
            return stat.S_ISREG(os.lstat(os.path.join(self.run_dir, *parts)).st_mode)
        except OSError:
            return False

    def owns(self, rel):
        """True when rel is a file the helper wrote and may change or remove (see the module's doc)."""
        if not self._regular_file_in_run(rel):
            return False
        if self.legacy:
            return self.proven and (rel in RUN_FILES or _LEGACY_CHECKPOINT_FILE.fullmatch(rel) is not None)
        if rel not in self.files:
            return False
        expected = self.files[rel].get("sha256")
        if expected is None:
            # A Trainer writes trainer_state.json too: the helper's own is known by its hash, always.
            return not rel.endswith("/" + TRAINER_STATE)
        try:
            with open(os.path.join(self.run_dir, *rel.split("/")), "rb") as f:
                return sha256(f.read()) == expected
        except OSError:
            return False

    def remove(self, rel):
        """Removes rel if the helper owns it (checked again right before); True if it was removed."""
        removed = False
        if self.owns(rel):
            try:
                os.unlink(os.path.join(self.run_dir, *rel.split("/")))
                removed = True
            except FileNotFoundError:
                pass
        self.files.pop(rel, None)
        return removed

    def remove_folder(self, folder):
        """Removes a checkpoint-<step> folder the helper created, if it is empty (rmdir fails otherwise:
        whatever else was put there stays, with the folder)."""
        if self.legacy or folder not in self.folders:
            return False
        path = os.path.join(self.run_dir, folder)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
            os.rmdir(path)
        except OSError:
            return False
        self.folders.discard(folder)
        return True
