"""The explorer's two-run page (`serve RUN_A RUN_B --names A,B`) in a real browser, as
test_explorer_browser.py drives the one-run page: the real run ../shared/runs/cnn-fmnist on the left
and a rotated, noisy copy of it on the right that lacks every third checkpoint and the last two (and
is done). Checked by what the page says (its text and its `window.explorer` hook) and by its pixels:
the panels' names and badges, the one scrubber over the union of the steps, linked hover and pins,
one view for both panels, each panel's points where the server puts them. The last test refreshes
docs/explorer-compare.png."""
import csv
import io
import time

import numpy as np
import pytest

from conftest import ROOT, wait_for
from test_compare import REAL_RUN, copy_run, steps_of
from test_explorer import Server, add_checkpoint, marked_run
from test_explorer_browser import (INK, PALETTE, CHROMIUM, drawn, isolated, move_to, near, pixels,  # noqa: F401
                                   viewport, console, driver, gather_console)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

NAMES = ("orig", "copy")
# The runs' colours on the page (app.js): the loss curves, the headings.
RUN_COLOURS = (np.array([0x00, 0x72, 0xb2]), np.array([0xd5, 0x5e, 0x00]))  # left blue, right vermilion, as the film

if not (REAL_RUN / "images.npy").exists():
    pytest.skip(f"{REAL_RUN} is missing", allow_module_level=True)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pair(tmp_path_factory, binary):
    """cnn-fmnist and its copy served side by side, both fully analysed; yields (server, left
    steps, right steps, dropped steps)."""
    root = tmp_path_factory.mktemp("explorer-compare")
    real_steps = steps_of(REAL_RUN)
    rng = np.random.default_rng(3)
    width = np.load(REAL_RUN / f"checkpoint-{real_steps[0]}" / "embeddings.npy").shape[1]
    rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
    dropped = set(real_steps[1::3]) | set(real_steps[-2:])
    copy = copy_run(REAL_RUN, root / "copy", lambda e, step: e @ rotation + 0.05 * e.std() * rng.standard_normal(e.shape),
                    drop=dropped)
    for folder in copy.glob("checkpoint-*"):
        (folder / "embeddings.npy.complete").write_text("")   # no settle wait
    (copy / "DONE").write_text("")
    copy_steps = steps_of(copy)
    server = Server(REAL_RUN, copy, "--names", ",".join(NAMES), owned_by_test=False)
    try:
        assert wait_for(lambda: server.json("/api/runs/0/run")["steps"] == real_steps
                        and server.json("/api/runs/1/run")["steps"] == copy_steps
                        and server.json("/api/runs/1/run")["done"], timeout=120), \
            (server.json("/api/runs/0/run")["steps"], server.json("/api/runs/1/run")["steps"])
        yield server, real_steps, copy_steps, dropped
    finally:
        if server.proc.poll() is None:
            code, err = server.stop()
            assert code == 0, err


@pytest.fixture(scope="module")
def page(driver, pair):
    server = pair[0]
    viewport(driver, 1400, 900)
    open_page(driver, server)
    yield driver, server
    driver.get("about:blank")   # no page left listening to a server about to stop


def open_page(driver, server):
    driver.get(server.base + "/")
    assert wait_for(lambda: driver.execute_script(
        "return Boolean(window.explorer && window.explorer.ready && window.explorer.scoresLoaded())"), 30), \
        driver.find_element(By.ID, "status").text


def settled(driver, timeout=15):
    """Waits until no tween runs and every panel's scores are its step's; returns the shared step."""
    assert wait_for(lambda: driver.execute_script("return window.explorer.ready && window.explorer.scoresLoaded()"), timeout)
    time.sleep(0.15)   # the frame after it
    return driver.execute_script("return window.explorer.shownStep()")


def fresh(driver):
    driver.execute_async_script("window.explorer.reset().then(arguments[0], (e) => arguments[0](String(e)))")
    rest_mouse(driver)
    return settled(driver)


def seek(driver, step):
    driver.execute_script("window.explorer.seek(window.explorer.indexOf(arguments[0]))", step)
    assert wait_for(lambda: driver.execute_script("return window.explorer.shownStep()") == step, 10)
    assert settled(driver) == step
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-step") == str(step)


def rest_mouse(driver):
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.hovered()") is None, 5)


def canvas(driver, r):
    return driver.find_element(By.CSS_SELECTOR, f".panel[data-run='{r}'] canvas.scatter")


def panel_pixels(driver, r):
    """Panel r's scatter content box (inside its 1px border), overlay included."""
    return pixels(driver, canvas(driver, r))[1:-1, 1:-1]


def run_points(server, r, step):
    status, _, body = server.get(f"/api/runs/{r}/checkpoints/{step}/points")
    assert status == 200, (r, step, status)
    return np.frombuffer(body, dtype="<f4").reshape(-1, 2)


def project(driver, r, xy, view=None):
    """Data coordinates to panel r's CSS pixels, from the page's one view (centre, zoom, half extent)
    and the panel's size, computed here."""
    view = view or driver.execute_script("return window.explorer.view(arguments[0])", r)
    h = view["half"]
    xy = np.clip(np.asarray(xy, dtype=float), -h, h)
    px = ((xy[..., 0] - view["cx"]) * view["zoom"] / h + 1) / 2 * view["width"]
    py = (1 - (xy[..., 1] - view["cy"]) * view["zoom"] / h) / 2 * view["height"]
    return np.stack([px, py], axis=-1)


def panel_text(driver, r, selector):
    return driver.find_element(By.CSS_SELECTOR, f".panel[data-run='{r}'] {selector}")


def badge(driver, r):
    element = panel_text(driver, r, ".badge")
    return element.text if element.is_displayed() else ""


def labels():
    return np.load(REAL_RUN / "labels.npy")


def coloured_at(image, positions, indices, tolerance=24):
    """The share of the samples whose centre pixel shows their class colour."""
    labels_ = labels()
    hits = []
    for i in indices:
        x, y = np.round(positions[i]).astype(int)
        if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
            hits.append(bool(near(image[y, x], drawn(PALETTE[labels_[i] % 10]), tolerance)))
    return np.mean(hits) if hits else 0.0


def plain(positions, image_shape, distance, ringed=()):
    """Samples well inside the panel whose nearest other sample is `distance` px away or more."""
    h, w = image_shape[:2]
    inside = [i for i in range(len(positions)) if 12 < positions[i][0] < w - 12 and 12 < positions[i][1] < h - 12
              and i not in ringed]
    return isolated(positions, inside, distance)


def ringed(driver):
    """Samples drawn ringed over the points in either panel: each leaderboard's first places, the pins."""
    return set(driver.execute_script(
        "return [...document.querySelectorAll('.board tbody')].flatMap((body) => "
        "[...body.querySelectorAll('tr[data-index]')].slice(0, 8).map((r) => Number(r.dataset.index)))")) \
        | set(driver.execute_script("return window.explorer.pins()"))


# ---------------------------------------------------------------- the page


def test_panels_are_headed_by_the_names_and_one_scrubber_runs_over_the_union(page, pair):
    driver, server = page
    _, real_steps, copy_steps, _ = pair
    assert server.json("/api/runs")["runs"][0]["name"] == "orig"
    assert driver.execute_script("return window.explorer.runs()") == list(NAMES)
    assert [panel_text(driver, r, ".panel-name").text for r in (0, 1)] == list(NAMES)
    # Each panel's canvas is in the left or right half, the left run on the left.
    assert canvas(driver, 0).location["x"] + canvas(driver, 0).size["width"] <= canvas(driver, 1).location["x"]
    union = sorted(set(server.json("/api/runs/0/run")["steps"]) | set(server.json("/api/runs/1/run")["steps"]))
    assert union == real_steps   # the copy's steps are a subset here
    assert driver.execute_script("return window.explorer.steps()") == union
    assert driver.execute_script("return [0, 1].map((r) => window.explorer.runSteps(r))") == [real_steps, copy_steps]
    scrubber = driver.find_element(By.ID, "scrubber")
    assert scrubber.get_attribute("max") == str(len(union) - 1)
    assert driver.find_element(By.ID, "newest-step").text == str(union[-1])
    # Both names in the header and the board columns' heads.
    header = driver.find_element(By.ID, "run-name").text
    assert "orig" in header and "copy" in header
    heads = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".board-head")]
    assert len(heads) == 2 and heads[0].startswith("orig") and heads[1].startswith("copy"), heads
    # One table download per run; the loss chart draws each run in its colour, named in its key.
    assert driver.find_element(By.ID, "download-table").get_attribute("href") == server.base + "/api/runs/0/export.csv"
    assert driver.find_element(By.ID, "download-table-1").get_attribute("href") == server.base + "/api/runs/1/export.csv"
    assert "orig" in driver.find_element(By.ID, "loss-head").text and "copy" in driver.find_element(By.ID, "loss-head").text
    # (The copy logged the same losses: its curve runs inside the left run's wider, lighter one.)
    loss = pixels(driver, driver.find_element(By.ID, "loss"))
    orange, blue = (loss[..., 0] - loss[..., 2] > 60).sum(), (loss[..., 2] - loss[..., 0] > 60).sum()
    assert orange > 300 and blue > 300, (orange, blue)


def test_each_panel_shows_its_latest_checkpoint_and_its_badge_says_so(page, pair):
    driver, server = page
    _, real_steps, copy_steps, dropped = pair
    fresh(driver)
    assert server.json("/api/runs/1/run")["done"] is True and server.json("/api/runs/0/run")["done"] is False
    for step in (60, 20, 320, copy_steps[-1], real_steps[-2], real_steps[-1]):
        seek(driver, step)
        shown = max(s for s in copy_steps if s <= step)
        assert driver.execute_script("return [0, 1].map((r) => window.explorer.panelStep(r))") == [step, shown]
        states = driver.execute_script("return [0, 1].map((r) => window.explorer.panelState(r))")
        assert badge(driver, 0) == "" and states[0] == "current"
        if step in copy_steps:
            assert states[1] == "current" and badge(driver, 1) == "", (step, states, badge(driver, 1))
            assert panel_text(driver, 1, ".panel-step").text == f"step {step}"
        elif step > copy_steps[-1]:
            assert states[1] == "finished" and badge(driver, 1) == f"finished at step {shown}", (step, states)
        else:
            assert step in dropped
            assert states[1] == "older" and badge(driver, 1) == f"showing step {shown}", (step, states)
        # Each leaderboard column is its panel's step's.
        assert driver.execute_script("return [...document.querySelectorAll('.board-head .hint')].map((e) => e.textContent)") \
            == [f"step {step}", f"step {shown}"]


def test_the_right_panel_draws_the_servers_rotated_points_at_its_shown_step(page, pair):
    driver, server = page
    _, _, copy_steps, _ = pair
    fresh(driver)
    for step, shown in ((300, 300), (320, 300)):
        seek(driver, step)
        image = panel_pixels(driver, 1)
        positions = project(driver, 1, run_points(server, 1, shown))
        others = project(driver, 1, run_points(server, 1, 280))   # an earlier checkpoint of the copy
        candidates = [i for i in plain(positions, image.shape, 7, ringed(driver))
                      if np.linalg.norm(positions[i] - others[i]) > 12]
        assert len(candidates) >= 20, len(candidates)
        assert coloured_at(image, positions, candidates) > 0.8
        assert coloured_at(image, others, candidates) < 0.4   # not just any checkpoint's points
        # The hook's positions are the same pixels, in the right panel.
        hooked = driver.execute_script("return arguments[0].map((i) => window.explorer.position(i, 1))", candidates[:10])
        np.testing.assert_allclose([[p["x"], p["y"]] for p in hooked], positions[candidates[:10]], atol=0.6)
        rect = canvas(driver, 1).rect
        assert hooked[0]["clientX"] == pytest.approx(rect["x"] + 1 + positions[candidates[0]][0], abs=1)
    # The left panel: the left run's own points.
    image = panel_pixels(driver, 0)
    positions = project(driver, 0, run_points(server, 0, 320))
    assert coloured_at(image, positions, plain(positions, image.shape, 7, ringed(driver))) > 0.9


def test_hovering_a_sample_in_either_panel_highlights_it_in_both(page, pair):
    driver, server = page
    step = fresh(driver)
    seek(driver, 320)   # the copy shows 300
    left, right = project(driver, 0, run_points(server, 0, 320)), project(driver, 1, run_points(server, 1, 300))
    image = panel_pixels(driver, 1)
    choices = [i for i in plain(left, image.shape, 14, ringed(driver)) if i in plain(right, image.shape, 14, ringed(driver))]
    assert len(choices) >= 2
    before = near(panel_pixels(driver, 1), [0, 0, 0], 40)
    for r, index, position in ((0, choices[0], left), (1, choices[1], right)):
        move_to(driver, canvas(driver, r), *position[index])
        tooltip = driver.find_element(By.ID, "tooltip")
        assert wait_for(lambda: driver.execute_script("return window.explorer.hovered()") == index
                        and tooltip.is_displayed() and "…" not in tooltip.text, 10), \
            (r, index, driver.execute_script("return window.explorer.hovered()"))
        text = tooltip.text
        assert f"#{index}" in text and "orig" in text and "copy" in text, text
        assert tooltip.find_element(By.CSS_SELECTOR, "img.tip-image").get_attribute("src").endswith(f"/samples/{index}/image.png")
        # Each run's numbers at its panel's step, in the column of its name.
        head = [e.text for e in tooltip.find_elements(By.CSS_SELECTOR, ".tip-table thead th")]
        assert head[1:] == list(NAMES), head
        rows = {row.find_element(By.TAG_NAME, "th").text: [td.text for td in row.find_elements(By.TAG_NAME, "td")]
                for row in tooltip.find_elements(By.CSS_SELECTOR, ".tip-table tbody tr")}
        for k, (run, shown) in enumerate(((0, 320), (1, 300))):
            document = server.json(f"/api/runs/{run}/samples/{index}")
            j = document["steps"].index(shown)
            assert float(rows["outlier score"][k]) == pytest.approx(document["outlier_score"][j], rel=6e-3, abs=1e-9)
            assert float(rows["label agreement"][k]) == pytest.approx(document["label_agreement"][j], abs=6e-3)
        # The sample is ringed (black) in the other panel too, where that run has it.
        other = 1 - r
        if other == 1:
            after = near(panel_pixels(driver, 1), [0, 0, 0], 40)
            x, y = np.round(right[index]).astype(int)
            ring = np.zeros_like(after)
            yy, xx = np.mgrid[:after.shape[0], :after.shape[1]]
            ring[(np.hypot(xx - x, yy - y) > 8) & (np.hypot(xx - x, yy - y) < 14)] = True
            assert (after & ring & ~before).sum() >= 20, (after & ring).sum()
        hook = driver.execute_script("return window.explorer.position(arguments[0], arguments[1])", index, other)
        np.testing.assert_allclose([hook["x"], hook["y"]], (right if other == 1 else left)[index], atol=0.6)
    rest_mouse(driver)
    assert not driver.find_element(By.ID, "tooltip").is_displayed()


def test_a_leaderboard_row_pins_the_sample_in_both_panels_with_each_runs_trajectory(page, pair, tmp_path):
    driver, server = page
    fresh(driver)
    seek(driver, 320)
    before = [near(panel_pixels(driver, r), INK, 40) for r in (0, 1)]
    # A row of the copy's column: the sample that travelled farthest up to step 320 in both runs.
    rows = driver.find_elements(By.CSS_SELECTOR, "#board-1 tbody tr[data-index]")

    views = driver.execute_script("return [0, 1].map((r) => window.explorer.view(r))")

    def travelled(index):
        lengths = []
        for r, shown in ((0, 320), (1, 300)):
            document = server.json(f"/api/runs/{r}/samples/{index}")
            k = document["steps"].index(shown) + 1
            path = project(driver, r, np.stack([document["x"][:k], document["y"][:k]], axis=-1), views[r])
            lengths.append(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
        return min(lengths)

    row = max(rows[:8], key=lambda row: travelled(int(row.get_attribute("data-index"))))
    index = int(row.get_attribute("data-index"))
    row.click()
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [index]
                    and driver.execute_script("return window.explorer.pinsLoaded()"), 10)
    time.sleep(0.25)
    marked = sorted(ringed(driver))
    for r in (0, 1):
        after = near(panel_pixels(driver, r), INK, 40)
        # What is drawn over the trajectory: the rings of the pin and of the leaderboard's first places.
        rings = [(p["x"], p["y"]) for p in driver.execute_script(
            "return arguments[0].map((i) => window.explorer.position(i, arguments[1]))", marked, r) if p]
        assert after.sum() > before[r].sum() + 40, (r, before[r].sum(), after.sum())
        # The way travelled up to the panel's step is solid ink: look along each of its segments.
        document = server.json(f"/api/runs/{r}/samples/{index}")
        shown = driver.execute_script("return window.explorer.panelStep(arguments[0])", r)
        travelled = [k for k, step in enumerate(document["steps"]) if step <= shown]
        path = project(driver, r, np.stack([document["x"], document["y"]], axis=-1)[travelled])
        looked, inked = 0, 0
        for a, b in zip(path[:-1], path[1:]):
            length = np.linalg.norm(b - a)
            for t in (0.25, 0.5, 0.75) if length > 12 else (0.5,) if length > 5 else ():
                x, y = np.round(a + t * (b - a)).astype(int)
                if any(np.hypot(x - qx, y - qy) < 12 for qx, qy in rings) or \
                        not (3 <= x < after.shape[1] - 3 and 3 <= y < after.shape[0] - 3):
                    continue
                looked += 1
                inked += bool(after[y - 1:y + 2, x - 1:x + 2].any())
        assert looked >= 5 and inked >= 0.9 * looked, (r, looked, inked)
    assert f"#{index}" in driver.find_element(By.ID, "pins").text
    # The pins' CSV: each run's rows of the export table, a column `run` first.
    rows = list(csv.reader(io.StringIO(driver.execute_script("return window.explorer.pinsCSV()"))))
    assert rows[0][0] == "run"
    for r, name in enumerate(NAMES):
        _, _, table = server.get(f"/api/runs/{r}/export.csv")
        lines = list(csv.reader(io.StringIO(table.decode())))
        assert rows[0][1:] == lines[0]
        assert [line[1:] for line in rows[1:] if line[0] == name] == [line for line in lines[1:] if line[1] == str(index)]
    # A click on another sample in the left panel pins it too, in both; the × unpins in both.
    positions = project(driver, 0, run_points(server, 0, 320))
    other = [i for i in plain(positions, before[0].shape, 12, ringed(driver))][0]
    ActionChains(driver).move_to_element_with_offset(canvas(driver, 0), int(round(positions[other][0] - canvas(driver, 0).size["width"] / 2 + 1)),
                                                     int(round(positions[other][1] - canvas(driver, 0).size["height"] / 2 + 1))).click().perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [index, other], 10)
    driver.find_element(By.CSS_SELECTOR, f"#pins li[data-index='{index}'] button").click()
    driver.find_element(By.CSS_SELECTOR, f"#pins li[data-index='{other}'] button").click()
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [], 5)
    rest_mouse(driver)
    time.sleep(0.25)
    for r in (0, 1):
        assert abs(int(near(panel_pixels(driver, r), INK, 40).sum()) - int(before[r].sum())) < 30


def test_zoom_and_pan_in_one_panel_move_both(page, pair):
    driver, server = page
    fresh(driver)
    seek(driver, 300)
    right = project(driver, 1, run_points(server, 1, 300))
    index = plain(right, panel_pixels(driver, 1).shape, 10, ringed(driver))[0]
    c = canvas(driver, 1)
    origin = ScrollOrigin.from_element(c, int(round(right[index][0] - c.size["width"] / 2 + 1)),
                                       int(round(right[index][1] - c.size["height"] / 2 + 1)))
    ActionChains(driver).scroll_from_origin(origin, 0, -500).perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.view(0).zoom") > 1.8, 5)
    move_to(driver, c, *right[index])   # a wheel moves no mouse here: where it hovers, and then away
    rest_mouse(driver)
    time.sleep(0.3)
    views = driver.execute_script("return [0, 1].map((r) => window.explorer.view(r))")
    assert views[0] == views[1], views
    after = project(driver, 1, run_points(server, 1, 300))
    assert np.abs(after[index] - right[index]).max() < 2.5   # the point under the cursor stays put
    # Both panels redrew with the new view: each run's points are where that view puts them.
    for r in (0, 1):
        image = panel_pixels(driver, r)
        positions = project(driver, r, run_points(server, r, 300))
        assert coloured_at(image, positions, plain(positions, image.shape, 7, ringed(driver))) > 0.85, r
    # A drag in the left panel pans the right one; a double-click there resets both.
    before = project(driver, 1, run_points(server, 1, 300))[index]
    ActionChains(driver).move_to_element_with_offset(canvas(driver, 0), 10, 10).click_and_hold().move_by_offset(30, 0) \
        .move_by_offset(30, 0).release().perform()
    panned = project(driver, 1, run_points(server, 1, 300))[index]
    assert panned[0] - before[0] == pytest.approx(60, abs=3) and abs(panned[1] - before[1]) < 3
    ActionChains(driver).double_click(canvas(driver, 1)).perform()
    assert wait_for(lambda: driver.execute_script("return [window.explorer.view(0).zoom, window.explorer.view(0).cx]") == [1, 0], 5)
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [], 5)


def test_hiding_a_class_greys_it_in_both_panels(page, pair):
    driver, server = page
    fresh(driver)
    seek(driver, 300)
    ring = ringed(driver)
    label = 1
    driver.find_element(By.CSS_SELECTOR, f"#legend button[data-label='{label}']").click()
    time.sleep(0.25)
    faint = 0.3 * 0.6 * 255 + 0.7 * np.array([250, 250, 250])
    for r in (0, 1):
        image = panel_pixels(driver, r)
        positions = project(driver, r, run_points(server, r, 300))
        chosen = [i for i in plain(positions, image.shape, 8, ring) if labels()[i] == label]
        assert len(chosen) >= 3, (r, chosen)
        grey = np.mean([near(image[int(round(positions[i][1])), int(round(positions[i][0]))], faint, 14) for i in chosen])
        assert grey > 0.9, (r, grey)
    driver.find_element(By.ID, "show-all").click()
    assert driver.execute_script("return window.explorer.hidden()") == []


# ---------------------------------------------------------------- live


def test_a_right_run_that_starts_later_and_checkpoints_arriving_on_both_streams(driver, tmp_path, binary):
    """Two tiny runs (60 samples, the same labels): the right one starts at step 10; checkpoints
    written while the page is open come in over each run's own event stream."""
    left = marked_run(tmp_path / "left")
    right = marked_run(tmp_path / "right", steps=(10, 20), seed=1)
    server = Server(left, right, "--names", "early,late", owned_by_test=False)
    try:
        assert wait_for(lambda: server.json("/api/runs/1/run")["steps"] == [10, 20], 60)
        open_page(driver, server)
        body = driver.find_element(By.TAG_NAME, "body")
        assert driver.execute_script("return window.explorer.steps()") == [0, 10, 20]
        assert [panel_text(driver, r, ".panel-name").text for r in (0, 1)] == ["early", "late"]
        seek(driver, 0)
        assert driver.execute_script("return [window.explorer.panelStep(1), window.explorer.panelState(1)]") == [10, "not started"]
        assert badge(driver, 1) == "starts at step 10" and badge(driver, 0) == ""
        seek(driver, 20)   # the newest: the page follows new steps
        # A step of the left run only: the union grows, the right panel keeps its step and says so.
        add_checkpoint(left, 30, seed=7)
        assert wait_for(lambda: body.get_attribute("data-step") == "30", 60)
        settled(driver)
        assert driver.execute_script("return [window.explorer.panelStep(1), window.explorer.panelState(1)]") == [20, "older"]
        assert badge(driver, 1) == "showing step 20"
        assert driver.find_element(By.ID, "scrubber").get_attribute("max") == "3"
        # Then the right run's: its panel catches up at the same shared step.
        add_checkpoint(right, 30, seed=8)
        assert wait_for(lambda: driver.execute_script("return window.explorer.panelStep(1)") == 30, 60)
        settled(driver)
        assert badge(driver, 1) == "" and driver.execute_script("return window.explorer.panelState(1)") == "current"
        assert driver.execute_script("return window.explorer.steps()") == [0, 10, 20, 30]
        positions = project(driver, 1, run_points(server, 1, 30))
        image = panel_pixels(driver, 1)
        labels_ = np.arange(60) % 3
        hits = [near(image[int(round(positions[i][1])), int(round(positions[i][0]))], drawn(PALETTE[labels_[i]]), 24)
                for i in plain(positions, image.shape, 8, ringed(driver))]
        assert len(hits) >= 5 and np.mean(hits) > 0.9
    finally:
        driver.get("about:blank")
        if server.proc.poll() is None:
            code, err = server.stop()
            assert code == 0, err


# ---------------------------------------------------------------- the docs' screenshot


def test_screenshot_of_two_runs(page, pair):
    driver, server = page
    viewport(driver, 1600, 900)
    try:
        open_page(driver, server)
        seek(driver, 320)   # the copy lacks 320: its panel says it shows 300
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-board='label_issues']").click()
        rows = driver.find_elements(By.CSS_SELECTOR, "#board tbody tr[data-index]")
        pinned = [int(rows[0].get_attribute("data-index"))]
        rows[0].click()
        right_rows = driver.find_elements(By.CSS_SELECTOR, "#board-1 tbody tr[data-index]")
        second = next(int(r.get_attribute("data-index")) for r in right_rows if int(r.get_attribute("data-index")) not in pinned)
        driver.execute_script("window.explorer.pin(arguments[0])", second)
        pinned.append(second)
        assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == pinned
                        and driver.execute_script("return window.explorer.pinsLoaded()"), 10)
        # Hover a sample in the left panel away from the pins' trajectories.
        positions = project(driver, 0, run_points(server, 0, 320))
        trajectory = []
        for index in pinned:
            document = server.json(f"/api/runs/0/samples/{index}")
            trajectory.extend(project(driver, 0, np.stack([document["x"], document["y"]], axis=-1)))
        issues = [int(r.get_attribute("data-index")) for r in rows]
        clear = [i for i in issues[2:] if i not in pinned and all(np.linalg.norm(positions[i] - t) > 60 for t in trajectory)]
        index = (isolated(positions, clear, 4) + clear + issues[2:])[0]
        move_to(driver, canvas(driver, 0), *positions[index])
        tooltip = driver.find_element(By.ID, "tooltip")
        assert wait_for(lambda: tooltip.is_displayed() and "…" not in tooltip.text and driver.execute_script(
            "return [...document.querySelectorAll('#tooltip img, .board img, #pins img')].every((i) => i.complete)"), 10)
        time.sleep(0.3)
        (ROOT / "docs").mkdir(exist_ok=True)
        driver.save_screenshot(str(ROOT / "docs" / "explorer-compare.png"))
        # Nothing spills off the window at this size.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 1600
    finally:
        viewport(driver, 1400, 900)


def test_the_browser_console_has_no_errors(driver, console):
    console.extend(driver.get_log("browser"))
    errors = [entry for entry in console if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
