"""The README as a fresh clone shows it: every image and local link it names is in the repository
(a `.gitignore` pattern once kept assets/demo.gif out of every clone, leaving a broken film at the top)."""
import re
import subprocess

from conftest import ROOT


def tracked():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


def test_every_image_and_local_link_of_the_readme_is_committed():
    text = (ROOT / "README.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)}
    local = sorted(t for t in targets if t and not re.match(r"[a-z]+://", t))
    assert "assets/demo.gif" in local and "assets/demo-umap.png" in local
    files = tracked()
    folders = {f.rsplit("/", 1)[0] for f in files if "/" in f}
    missing = [t for t in local if t.rstrip("/") not in files and t.rstrip("/") not in folders]
    assert not missing, f"the README names files a clone does not have: {missing}"
