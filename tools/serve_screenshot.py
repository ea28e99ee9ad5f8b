"""The page of ``jaxhash serve`` in headless Chromium: upload an image, click a result, screenshot.

    python tools/serve_screenshot.py --index INDEX.npz --image FILE [--out docs/images/serve.png]

Serves the index on a free loopback port (in this process), drives the system's Chromium
through its ``chromedriver`` (selenium; nothing is downloaded) and saves the screenshot that
README.md shows. tests/test_serve.py walks through the page with the same functions.
Chromium and its driver: ``apt-get install chromium chromium-driver`` (Debian).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CHROMEDRIVERS = ("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")


def browser_missing() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if not any(shutil.which(name) for name in CHROMEDRIVERS):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    if not any(shutil.which(name) for name in CHROMIUMS):
        return "no Chromium on PATH (apt-get install chromium)"
    return None


def chromium(width: int = 1200, height: int = 900):
    """A headless Chromium driven through the system's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    binary = next(shutil.which(n) for n in CHROMIUMS if shutil.which(n))
    options.binary_location = binary
    driver = next(shutil.which(n) for n in CHROMEDRIVERS if shutil.which(n))
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free ``host`` port in a thread; yields its URL
    and stops it on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def walk_through(driver, url: str, image: str | Path, screenshot: str | Path | None) -> dict:
    """Open the page, upload ``image``, wait for the grid, click the second result, wait for
    its neighbours; save ``screenshot`` (PNG) of the final page. Returns what was seen:
    ``about`` (the header line), ``uploaded`` and ``clicked`` (the grids' ``[(id, distance
    text, path)]``), ``status`` lines after each step and ``clicked_id``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)

    def grid():
        return [
            (
                int(card.get_attribute("data-id")),
                card.find_element(By.CLASS_NAME, "distance").text,
                card.find_element(By.CLASS_NAME, "path").text,
            )
            for card in driver.find_elements(By.CSS_SELECTOR, "#results .result")
        ]

    def images_loaded(d):
        return d.execute_script(
            "return [...document.images].filter(i => !i.hidden).every(i => i.complete)"
        )

    driver.get(url)
    wait.until(lambda d: "images" in d.find_element(By.ID, "about").text)
    about = driver.find_element(By.ID, "about").text
    driver.find_element(By.ID, "file").send_keys(str(Path(image).absolute()))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results .result")))
    wait.until(lambda d: "nearest of" in d.find_element(By.ID, "status").text)
    wait.until(images_loaded)
    uploaded, upload_status = grid(), driver.find_element(By.ID, "status").text
    choice = min(1, len(uploaded) - 1)
    clicked_id, clicked_path = uploaded[choice][0], uploaded[choice][2]
    driver.find_elements(By.CSS_SELECTOR, "#results .result")[choice].click()
    wait.until(
        lambda d: (
            d.find_element(By.ID, "status").text.startswith(f"{clicked_path}: ")
            and "nearest of" in d.find_element(By.ID, "status").text
        )
    )
    wait.until(images_loaded)
    seen = {
        "about": about,
        "uploaded": uploaded,
        "upload_status": upload_status,
        "clicked_id": clicked_id,
        "clicked": grid(),
        "status": driver.find_element(By.ID, "status").text,
    }
    if screenshot is not None:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return seen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--image", required=True, help="the image to upload")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default="docs/images/serve.png")
    args = parser.parse_args(argv)
    from jaxhash import serve

    reason = browser_missing()
    if reason:
        raise SystemExit(reason)
    app = serve.load_service(args.index, args.workdir)
    with running(app) as url:
        driver = chromium()
        try:
            seen = walk_through(driver, url, args.image, args.out)
        finally:
            driver.quit()
    print(f"{seen['status']}; wrote {args.out}")


if __name__ == "__main__":
    main()
