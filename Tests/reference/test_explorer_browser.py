"""The explorer's page in a real browser: headless Chromium (Debian's, with its chromedriver) driven by
selenium, WebGL2 through SwiftShader. The scatter is checked by its pixels (element screenshots), the
hover by moving the mouse to where a sample's coordinates project, pins, class toggles, the scrubber
and live updates by what the page then shows. One browser for the module; the last test refreshes
docs/explorer.png and docs/explorer-zoom.png from the real run in ../shared/runs/cnn-fmnist."""
import base64
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SHARED, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("the browser tests need chromium and chromedriver (make deps installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once the browser is known to be there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from test_explorer import Server, add_checkpoint, marked_run  # noqa: E402

# The page's class colours (app.js), drawn at alpha 0.8 over the panel (#fafafa, 0.98 grey).
PALETTE = [0x332288, 0x88ccee, 0x44aa99, 0x117733, 0x999933, 0xddcc77, 0xcc6677, 0x882255, 0xaa4499, 0x888888]
PANEL = np.array([250, 250, 250])
FAINT = 0.3 * 0.6 * 255 + 0.7 * PANEL   # a hidden class's points: grey at alpha 0.3
INK = np.array([34, 34, 34])            # trajectories, rings, labels
REAL_RUN = SHARED / "runs" / "cnn-fmnist"


def rgb(colour):
    return np.array([colour >> 16, (colour >> 8) & 255, colour & 255])


def drawn(colour):
    return 0.8 * rgb(colour) + 0.2 * PANEL


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def console():
    """Every browser console entry of the module, gathered before each test ends."""
    return []


@pytest.fixture(scope="module")
def driver(console):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                     "--use-angle=swiftshader", "--window-size=1400,900", "--force-device-scale-factor=1",
                     "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        viewport(browser, 1400, 900)
        yield browser
    finally:
        browser.quit()


@pytest.fixture(autouse=True)
def gather_console(request, console):
    yield
    if "driver" in request.fixturenames:
        console.extend(request.getfixturevalue("driver").get_log("browser"))


@pytest.fixture(scope="module")
def live(tmp_path_factory, binary):
    """A tiny run (60 samples, three classes, 12 x 12 images) being served."""
    run = marked_run(tmp_path_factory.mktemp("explorer-browser") / "run")
    server = Server(run, owned_by_test=False)
    try:
        assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60), server.steps()
        yield run, server
    finally:
        if server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def page(driver, live):
    _, server = live
    open_page(driver, server)
    return driver, server


def viewport(driver, width, height):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def open_page(driver, server):
    driver.get(server.base + "/")
    assert wait_for(lambda: driver.execute_script("return Boolean(window.explorer && window.explorer.ready)"), 30), \
        driver.find_element(By.ID, "status").text


def fresh(driver):
    """The page as loaded (no pins, all classes, whole view, newest step), whatever an earlier test
    left; returns the shown step."""
    driver.execute_async_script("window.explorer.reset().then(arguments[0], (e) => arguments[0](String(e)))")
    return settled(driver)


def settled(driver, timeout=15):
    """Waits until no tween runs and the shown step's scores are in; returns the shown step."""
    assert wait_for(lambda: driver.execute_script(
        "return window.explorer.ready && document.getElementById('board-step').textContent === "
        "'at step ' + window.explorer.shownStep()"), timeout)
    time.sleep(0.15)  # the frame after it
    return driver.execute_script("return window.explorer.shownStep()")


# ---------------------------------------------------------------- pixels


def pixels(driver, element):
    """The element as the screen shows it: an (h, w, 3) uint8 array from its screenshot (PNG, decoded
    by the browser itself: no image library needed here)."""
    png = base64.b64encode(element.screenshot_as_png).decode()
    width, height, data = driver.execute_async_script("""
        const [png, done] = arguments;
        const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
        createImageBitmap(new Blob([bytes], {type: "image/png"}), {colorSpaceConversion: "none", premultiplyAlpha: "none"})
          .then((bitmap) => {
            const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
            const context = canvas.getContext("2d");
            context.drawImage(bitmap, 0, 0);
            const data = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
            let text = "";
            for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
            done([bitmap.width, bitmap.height, btoa(text)]);
          }, (error) => done([0, 0, String(error)]));
    """, png)
    assert width > 0, data
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, 4)[:, :, :3].astype(int)


def near(image, colour, tolerance=22):
    return np.all(np.abs(image - np.asarray(colour)) <= tolerance, axis=-1)


def scatter_pixels(driver):
    """The scatter's content box (inside its 1px border), overlay included."""
    return pixels(driver, driver.find_element(By.ID, "scatter"))[1:-1, 1:-1]


def sample_points(server, step):
    status, _, body = server.get(f"/api/checkpoints/{step}/points")
    assert status == 200
    return np.frombuffer(body, dtype="<f4").reshape(-1, 2)


def project(driver, xy):
    """Data coordinates to the scatter's CSS pixels, from the page's view transform (centre, zoom, half
    extent, size), computed here: x right, y up, clamped to the film's bounds."""
    view = driver.execute_script("return window.explorer.view()")
    h = view["half"]
    xy = np.clip(np.asarray(xy, dtype=float), -h, h)
    px = ((xy[..., 0] - view["cx"]) * view["zoom"] / h + 1) / 2 * view["width"]
    py = (1 - (xy[..., 1] - view["cy"]) * view["zoom"] / h) / 2 * view["height"]
    return np.stack([px, py], axis=-1), view


def isolated(positions, candidates, distance):
    """Candidates whose nearest other point lies more than `distance` pixels away."""
    gaps = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return [i for i in candidates if gaps[i].min() > distance]


def move_to(driver, element, px, py):
    """Moves the mouse to (px, py) CSS pixels from the top left of the element's content box."""
    ActionChains(driver).move_to_element_with_offset(
        element, int(round(px - element.size["width"] / 2 + 1)), int(round(py - element.size["height"] / 2 + 1))).perform()


def rest_mouse(driver):
    """Moves the mouse off the scatter (onto the page title): no hover ring, no tooltip."""
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.hovered()") is None, 5)


def ringed(driver):
    """Samples drawn ringed over the points: the shown leaderboard's first places and the pins."""
    return set(driver.execute_script(
        "return [...document.querySelectorAll('#board tbody tr[data-index]')].slice(0, 8).map((r) => Number(r.dataset.index))"
    )) | set(driver.execute_script("return window.explorer.pins()"))


# ---------------------------------------------------------------- the tiny run


def test_the_page_gets_webgl2_and_draws_the_points_in_the_class_colours(page):
    driver, server = page
    assert driver.execute_script("return Boolean(document.createElement('canvas').getContext('webgl2'))")
    assert driver.execute_script("return window.explorer.webgl2")
    assert driver.find_element(By.ID, "no-webgl").get_attribute("hidden") is not None
    settled(driver)
    rest_mouse(driver)
    image = scatter_pixels(driver)
    counts = [int(near(image, drawn(PALETTE[k])).sum()) for k in range(3)]
    # 20 points a class, 5 px across: every class shows in its own colour, no other class colour shows.
    assert all(count >= 80 for count in counts), counts
    others = [int(near(image, drawn(PALETTE[k]), 12).sum()) for k in range(3, 9)]
    assert max(others) < 20, others
    background = near(image, PANEL, 2).mean()
    assert 0.8 < background < 0.995, background


def test_class_names_and_the_newest_step_are_page_text(page):
    driver, _ = page
    legend = driver.find_element(By.ID, "legend").text
    for name in ("alpha", "beta", "gamma"):
        assert name in legend
    assert driver.find_element(By.ID, "newest-step").text == "20"
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-step") == "20"
    assert "step 20" in driver.find_element(By.ID, "step").text


def test_hovering_a_sample_shows_its_index_class_and_scores(page):
    driver, server = page
    step = fresh(driver)
    positions, _ = project(driver, sample_points(server, step))
    canvas = driver.find_element(By.ID, "scatter")
    choices = isolated(positions, range(60), 14)
    assert choices, "no sample stands 14 px clear of the others"
    for index in choices[:2]:
        move_to(driver, canvas, *positions[index])
        tooltip = driver.find_element(By.ID, "tooltip")
        assert wait_for(lambda: tooltip.is_displayed() and tooltip.get_attribute("data-index") == str(index)
                        and "…" not in tooltip.text, 10), (index, driver.execute_script("return window.explorer.hovered()"))
        document = server.json(f"/api/samples/{index}")
        k = document["steps"].index(step)
        text = tooltip.text
        assert f"#{index}" in text and ["alpha", "beta", "gamma"][index % 3] in text, text
        facts = dict(zip([e.text for e in tooltip.find_elements(By.CSS_SELECTOR, "dt")],
                         [e.text for e in tooltip.find_elements(By.CSS_SELECTOR, "dd")]))
        assert float(facts["outlier score"]) == pytest.approx(document["outlier_score"][k], rel=6e-3, abs=1e-9)
        assert float(facts["label agreement"]) == pytest.approx(document["label_agreement"][k], abs=6e-3)
        assert float(facts["kNN-AUM"]) == pytest.approx(document["knn_aum"][k], rel=6e-3, abs=1e-9)
        image = tooltip.find_element(By.CSS_SELECTOR, "img.tip-image")
        assert image.get_attribute("src").endswith(f"/api/samples/{index}/image.png")
        neighbours = [e.get_attribute("alt") for e in tooltip.find_elements(By.CSS_SELECTOR, ".tip-neighbours img")]
        assert neighbours and neighbours == [f"sample {j}" for j in document["neighbours"][k][:len(neighbours)]]
    # Away from every point: no tooltip.
    move_to(driver, canvas, 3, 3)
    assert wait_for(lambda: not driver.find_element(By.ID, "tooltip").is_displayed(), 5)


def test_the_wheel_zooms_about_the_cursor_drag_pans_and_double_click_resets(page):
    driver, server = page
    step = fresh(driver)
    canvas = driver.find_element(By.ID, "scatter")
    positions, _ = project(driver, sample_points(server, step))
    index = isolated(positions, range(60), 10)[0]
    before = positions[index]
    origin = ScrollOrigin.from_element(canvas, int(round(before[0] - canvas.size["width"] / 2 + 1)),
                                       int(round(before[1] - canvas.size["height"] / 2 + 1)))
    ActionChains(driver).scroll_from_origin(origin, 0, -400).perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.view().zoom") > 1.5, 5)
    after, view = project(driver, sample_points(server, step)[index])
    assert np.abs(after - before).max() < 2.5, (before, after, view)   # the point under the cursor stays put
    ActionChains(driver).move_to_element_with_offset(canvas, 10, 10).click_and_hold().move_by_offset(30, 0) \
        .move_by_offset(30, 0).release().perform()
    panned, _ = project(driver, sample_points(server, step)[index])
    assert panned[0] - after[0] == pytest.approx(60, abs=3) and abs(panned[1] - after[1]) < 3
    assert driver.execute_script("return window.explorer.pins()") == []   # a drag is no click
    ActionChains(driver).double_click(canvas).perform()
    assert wait_for(lambda: driver.execute_script("return window.explorer.view()")["zoom"] == 1, 5)
    assert driver.execute_script("const v = window.explorer.view(); return [v.cx, v.cy]") == [0, 0]
    # The double-click pinned and unpinned whatever it hit: nothing stays pinned.
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [], 5)


def test_clicking_a_leaderboard_row_pins_the_sample_and_draws_its_trajectory(page, tmp_path):
    driver, server = page
    step = fresh(driver)
    rest_mouse(driver)
    row = driver.find_element(By.CSS_SELECTOR, "#board tbody tr[data-index]")
    index = int(row.get_attribute("data-index"))
    before = scatter_pixels(driver)
    row.click()
    pins = driver.find_element(By.ID, "pins")
    assert wait_for(lambda: f"#{index}" in pins.text and driver.execute_script("return window.explorer.pinsLoaded()"), 10)
    assert driver.execute_script("return window.explorer.pins()") == [index]
    time.sleep(0.2)
    after = scatter_pixels(driver)
    # The trajectory: a dark line through the sample's position at each step, visible at every
    # segment's midpoint.
    document = server.json(f"/api/samples/{index}")
    path, _ = project(driver, np.stack([document["x"], document["y"]], axis=-1))
    dark_before, dark_after = near(before, INK, 40), near(after, INK, 40)
    assert dark_after.sum() > dark_before.sum() + 40, (dark_before.sum(), dark_after.sum())
    for a, b in zip(path[:-1], path[1:]):
        if np.linalg.norm(b - a) < 12:
            continue
        x, y = np.round((a + b) / 2).astype(int)
        assert dark_after[y - 2:y + 3, x - 2:x + 3].any(), (a, b)
    # The pins' CSV is the export table's rows of that sample.
    status, _, table = server.get("/api/export.csv")
    assert status == 200
    lines = table.decode().splitlines()
    expected = [lines[0]] + [line for line in lines[1:] if line.split(",")[1] == str(index)]
    assert driver.execute_script("return window.explorer.pinsCSV()").splitlines() == expected
    assert len(expected) == 1 + len(document["steps"])
    # ... and what "Download pins (CSV)" saves; "Download table (CSV)" is the server's table.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    driver.find_element(By.ID, "download-pins").click()
    saved = tmp_path / "embedlapse-pins.csv"
    assert wait_for(saved.exists, 10)
    assert saved.read_text().splitlines() == expected
    assert driver.find_element(By.ID, "download-table").get_attribute("href") == server.base + "/api/export.csv"
    # Removing the pin takes the trajectory away.
    pins.find_element(By.CSS_SELECTOR, f"li[data-index='{index}'] button").click()
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [], 5)
    time.sleep(0.2)
    assert abs(int(near(scatter_pixels(driver), INK, 40).sum()) - int(dark_before.sum())) < 15


def test_toggling_a_class_greys_it(page):
    driver, server = page
    step = fresh(driver)
    rest_mouse(driver)
    positions, _ = project(driver, sample_points(server, step))
    beta = [i for i in isolated(positions, range(60), 8) if i % 3 == 1 and i not in ringed(driver)]
    assert len(beta) >= 3, beta

    def colours_of_beta():
        image = scatter_pixels(driver)
        centres = [image[int(round(positions[i][1])), int(round(positions[i][0]))] for i in beta]
        return (np.mean([near(c, drawn(PALETTE[1]), 20) for c in centres]),
                np.mean([near(c, FAINT, 12) for c in centres]))

    assert colours_of_beta()[0] == 1
    button = driver.find_element(By.CSS_SELECTOR, "#legend button[data-label='1']")
    assert button.text == "beta" and button.get_attribute("aria-pressed") == "true"
    button.click()
    assert button.get_attribute("aria-pressed") == "false"
    time.sleep(0.2)
    coloured, grey = colours_of_beta()
    assert coloured == 0 and grey == 1, (coloured, grey)
    button.click()
    time.sleep(0.2)
    assert colours_of_beta()[0] == 1


def test_the_scrubber_and_the_keys_change_the_shown_step(page):
    driver, _ = page
    fresh(driver)
    body = driver.find_element(By.TAG_NAME, "body")
    scrubber = driver.find_element(By.ID, "scrubber")
    scrubber.send_keys(Keys.HOME)
    assert wait_for(lambda: body.get_attribute("data-step") == "0", 5)
    assert driver.find_element(By.ID, "step").text == "step 0"
    assert driver.find_element(By.ID, "newest-step").text == "20"
    scrubber.send_keys(Keys.ARROW_RIGHT)
    assert wait_for(lambda: body.get_attribute("data-step") == "10", 5)
    # Off the scrubber, the arrow keys step (tweened) and space plays to the end.
    driver.find_element(By.TAG_NAME, "h1").click()
    ActionChains(driver).send_keys(Keys.ARROW_LEFT).perform()
    assert wait_for(lambda: body.get_attribute("data-step") == "0", 5)
    ActionChains(driver).send_keys(Keys.SPACE).perform()
    assert wait_for(lambda: driver.find_element(By.ID, "play").text == "Pause", 5)
    assert wait_for(lambda: body.get_attribute("data-step") == "20" and driver.find_element(By.ID, "play").text == "Play", 10)
    assert scrubber.get_attribute("value") == "2"
    # The loss chart seeks to the nearest checkpoint.
    loss = driver.find_element(By.ID, "loss")
    ActionChains(driver).move_to_element_with_offset(loss, int(40 + (loss.size["width"] - 50) * 0.45) - loss.size["width"] // 2, 0) \
        .click().perform()
    assert wait_for(lambda: body.get_attribute("data-step") == "10", 5)
    scrubber.send_keys(Keys.END)
    assert wait_for(lambda: body.get_attribute("data-step") == "20", 5)


def test_a_checkpoint_written_while_the_page_is_open_appears_without_reload(page, live):
    driver, server = page
    run, _ = live
    fresh(driver)
    driver.find_element(By.ID, "pin-input").send_keys("7", Keys.ENTER)
    assert wait_for(lambda: driver.execute_script("return window.explorer.pins()") == [7]
                    and driver.execute_script("return window.explorer.pinsLoaded()"), 10)
    assert len(driver.execute_script("return window.explorer.pinsCSV()").splitlines()) == 1 + 3
    add_checkpoint(run, 30, seed=5)
    body = driver.find_element(By.TAG_NAME, "body")
    assert wait_for(lambda: driver.find_element(By.ID, "newest-step").text == "30", 60)
    assert wait_for(lambda: body.get_attribute("data-step") == "30", 10)   # the newest was shown: it follows
    assert driver.find_element(By.ID, "scrubber").get_attribute("max") == "3"
    # The pin stayed, its trajectory now one step longer.
    assert wait_for(lambda: len(driver.execute_script("return window.explorer.pinsCSV()").splitlines()) == 1 + 4, 10)
    assert "#7" in driver.find_element(By.ID, "pins").text


# ---------------------------------------------------------------- the real run, for the docs


def test_screenshots_of_a_real_run(driver, binary):
    if not (REAL_RUN / "images.npy").exists():
        pytest.skip(f"{REAL_RUN} is missing")
    server = Server(REAL_RUN, owned_by_test=False)
    try:
        steps = sorted(int(p.name.split("-")[1]) for p in REAL_RUN.glob("checkpoint-*"))
        assert wait_for(lambda: server.steps() == steps, timeout=120), server.steps()
        viewport(driver, 1600, 900)
        open_page(driver, server)
        driver.execute_script("window.explorer.seek(arguments[0])", steps.index(400))
        assert settled(driver) == 400
        driver.find_element(By.CSS_SELECTOR, "#tabs button[data-board='label_issues']").click()
        row = driver.find_element(By.CSS_SELECTOR, "#board tbody tr[data-index]")
        pinned = int(row.get_attribute("data-index"))
        row.click()
        assert wait_for(lambda: driver.execute_script("return window.explorer.pinsLoaded()"), 10)
        # Hover another likely label issue (its neighbours' images show why), one whose tooltip
        # leaves the pin's trajectory in sight.
        positions, view = project(driver, sample_points(server, 400))
        canvas = driver.find_element(By.ID, "scatter")
        document = server.json(f"/api/samples/{pinned}")
        trajectory, _ = project(driver, np.stack([document["x"], document["y"]], axis=-1))
        issues = driver.execute_script(
            "return [...document.querySelectorAll('#board tbody tr[data-index]')].map((r) => Number(r.dataset.index))")

        def clear(i):
            x, y = positions[i]
            box = (x - 340, y - 240, x + 340, y + 240)   # wherever the tooltip goes
            return not any(box[0] < tx < box[2] and box[1] < ty < box[3] for tx, ty in trajectory)

        index = ([i for i in isolated(positions, issues[1:], 3) if clear(i)] + issues[1:])[0]
        move_to(driver, canvas, *positions[index])
        tooltip = driver.find_element(By.ID, "tooltip")
        assert wait_for(lambda: tooltip.is_displayed() and "…" not in tooltip.text and driver.execute_script(
            "return [...document.querySelectorAll('#tooltip img')].every((i) => i.complete && i.naturalWidth === 28)"), 10)
        time.sleep(0.3)
        (ROOT / "docs").mkdir(exist_ok=True)
        driver.save_screenshot(str(ROOT / "docs" / "explorer.png"))
        # Zoomed in on the pinned sample: the few points in view drawn as their images.
        k = document["steps"].index(400)
        driver.execute_script("window.explorer.setView({cx: arguments[0], cy: arguments[1], zoom: 9})",
                              document["x"][k], document["y"][k])
        move_to(driver, driver.find_element(By.ID, "scatter"), 2, 2)
        assert wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#board img')].every((i) => i.complete)"), 10)
        assert wait_for(lambda: driver.execute_script("return window.explorer.thumbnailsDrawn()") >= 10, 10)
        time.sleep(0.3)
        driver.save_screenshot(str(ROOT / "docs" / "explorer-zoom.png"))
    finally:
        driver.get("about:blank")   # no page left listening to a server about to stop
        viewport(driver, 1400, 900)
        if server.proc.poll() is None:
            code, err = server.stop()
            assert code == 0, err


def test_the_browser_console_has_no_errors(driver, console):
    console.extend(driver.get_log("browser"))
    errors = [entry for entry in console if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
