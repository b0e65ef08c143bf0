"""The studio in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Upload a sprite, press the button, download the sheet and check it; the same for pixelate; a bad upload
shows its message. A screenshot of each page is saved in the test's folder and copied to
$SPRITEFORGE_SCREENSHOTS (default /work/studio-screenshots when /work exists). Skips when Chromium,
ChromeDriver, Selenium or the studio extra is missing.
"""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio
from spriteforge.data.synthetic import generate_characters

from studio_server import running_studio
from tiny_runs import tiny_run

CHROMIUM = next((path for path in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium") if path and Path(path).is_file()), None)
CHROMEDRIVER = next((path for path in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if path and Path(path).is_file()), None)

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="no Chromium/ChromeDriver found (apt-get install chromium chromium-driver); the browser tests need them")


def screenshot_folder() -> Path | None:
    folder = os.environ.get("SPRITEFORGE_SCREENSHOTS") or ("/work/studio-screenshots" if Path("/work").is_dir() else "")
    return Path(folder) if folder else None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[browser-tests]')")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1300,1100"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from spriteforge.inference import BUNDLED, BUNDLED_FOLDER

    root = tmp_path_factory.mktemp("browser-runs")
    # the bundled model where it is installed (real drawings in the screenshots), else a 2-step run of the same size
    model = "default" if (BUNDLED_FOLDER / BUNDLED["default"]).is_file() else str(tiny_run(root / "t", size=64))
    import spriteforge

    size = spriteforge.load_model(model).image_size
    with running_studio(model, str(tiny_run(root / "d", "dcgan", size=64))) as url:
        yield url, size


def wait_for(condition, seconds: float = 30, what: str = "the page"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def snap(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    folder = screenshot_folder()
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return path


def download(driver, link_id: str, name: str) -> Image.Image:
    target = driver.downloads / name
    target.unlink(missing_ok=True)
    driver.find_element("id", link_id).click()
    wait_for(lambda: target.is_file() and not list(driver.downloads.glob("*.crdownload")), what=f"the download of {name}")
    image = Image.open(target)
    image.load()
    return image


def open_page(driver, studio):
    driver.get(studio + "/")
    wait_for(lambda: driver.find_element("id", "views-model").get_attribute("value"), what="the page's settings")


def message(driver) -> tuple[str, str]:
    element = driver.find_element("id", "message")
    return element.get_attribute("class"), element.text


def test_views_upload_draw_and_download_the_sheet(browser, studio, tmp_path):
    studio, size = studio
    hero = generate_characters(1, seed=11, size=size)[0]
    imageio.save_png(hero[2], tmp_path / "hero-front.png")
    open_page(browser, studio)
    browser.find_element("id", "views-front").send_keys(str(tmp_path / "hero-front.png"))
    browser.find_element("id", "views-snap").click()
    browser.find_element("id", "views-run").click()
    wait_for(lambda: browser.find_elements("id", "views-downloads-sheet-png"), what="the sheet")
    wait_for(lambda: browser.execute_script("return document.getElementById('views-preview').naturalWidth > 0"), what="the GIF")
    assert message(browser)[0] == "info" and "drew 3 views" in message(browser)[1]
    snap(browser, tmp_path, "studio-views")
    sheet = download(browser, "views-downloads-sheet-png", "sheet.png")
    assert sheet.format == "PNG" and sheet.mode == "RGBA" and sheet.size == (4 * size, size)
    assert np.array_equal(np.array(sheet)[:, 2 * size : 3 * size], hero[2])  # the given front, kept exactly
    gif = download(browser, "views-downloads-turnaround-gif", "turnaround.gif")
    assert gif.n_frames == 4
    browser.find_element("id", "tab-downloads").click()
    assert "sheet.json" in browser.find_element("id", "all-downloads").text
    snap(browser, tmp_path, "studio-downloads")


def test_pixelate_in_the_browser(browser, studio, tmp_path):
    studio, _ = studio
    art = generate_characters(1, seed=12, size=32)[0, 1]
    imageio.save_png(imageio.upscale(art, 6), tmp_path / "big.png")
    open_page(browser, studio)
    browser.find_element("id", "tab-pixelate").click()
    browser.find_element("id", "pixelate-picture").send_keys(str(tmp_path / "big.png"))
    colours = browser.find_element("id", "pixelate-colours")
    colours.clear()
    colours.send_keys("255")
    browser.find_element("id", "pixelate-run").click()
    wait_for(lambda: browser.find_elements("id", "pixelate-downloads-pixel-art-png"), what="the pixel art")
    snap(browser, tmp_path, "studio-pixelate")
    result = download(browser, "pixelate-downloads-pixel-art-png", "pixel-art.png")
    assert result.mode == "RGBA" and result.size == (32, 32) and np.array_equal(np.array(result), art)


def test_new_characters_in_the_browser(browser, studio, tmp_path):
    studio, _ = studio
    open_page(browser, studio)
    browser.find_element("id", "tab-new").click()
    browser.find_element("id", "new-run").click()
    wait_for(lambda: browser.find_elements("id", "new-downloads-samples-png"), what="the samples")
    snap(browser, tmp_path, "studio-new-characters")


def test_a_bad_upload_shows_a_message(browser, studio, tmp_path):
    studio, _ = studio
    (tmp_path / "notes.png").write_text("these are notes, not a picture")
    open_page(browser, studio)
    browser.find_element("id", "views-front").send_keys(str(tmp_path / "notes.png"))
    browser.find_element("id", "views-run").click()
    wait_for(lambda: message(browser)[0] == "error", what="the error message")
    assert "notes.png: not a readable image" in message(browser)[1]
    snap(browser, tmp_path, "studio-bad-upload")
    browser.refresh()  # the server is still up
    wait_for(lambda: browser.find_element("id", "views-model").get_attribute("value"), what="the page after the error")
