#!/usr/bin/env python3
"""End-to-end test of the web studio (GET /) in headless Chromium.

Usage: python studio_e2e.py http://127.0.0.1:PORT [--api-key KEY]
       (the key may also come from TESSERA_API_KEY)

Against a running `tessera serve`, it opens the studio, generates a 1-second 128x128 video
with 2 steps through the form, waits for its card to complete, and checks in the page that
the card's <video> really plays (frames decoded, 128 px wide, time advancing). It fails on
any SEVERE browser console message too.

Needs Debian's chromium and chromium-driver and `selenium` (tests/install_browser.sh). The
driver and browser paths are explicit and SE_OFFLINE is set, so Selenium Manager never
reaches for the network.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TESSERA_CHROMEDRIVER", "/usr/bin/chromedriver")
PROMPT = "a red ball bounces on a wooden floor"
SIZE, SECONDS, STEPS, WIDTH = "128x128", "1", "2", 128
GENERATE_TIMEOUT_S = 180


class Failure(Exception):
    pass


def make_driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"FAIL: {path} not found; run tests/install_browser.sh")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


class Console:
    """Browser console messages; get_log drains the buffer, so keep everything seen."""

    def __init__(self, driver):
        self.driver, self.entries = driver, []

    def collect(self):
        try:
            self.entries += self.driver.get_log("browser")
        except WebDriverException:
            pass
        return self.entries

    def ignore_before_now(self, pred):
        """Drop the messages seen so far that match pred."""
        self.entries = [e for e in self.collect() if not pred(e)]

    def severe(self):
        return [e for e in self.collect() if e.get("level") == "SEVERE"]

    def dump(self):
        lines = [f"  [{e.get('level')}] {e.get('message')}" for e in self.collect()]
        return "\n".join(lines) or "  (empty)"


def page_banner(driver):
    return driver.execute_script(
        "const m = document.querySelector('#message'); return m && !m.hidden ? m.textContent : '';"
    )


def run(driver, console, base, api_key):
    wait = WebDriverWait(driver, 15)
    driver.get(base.rstrip("/") + "/")
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    if api_key:
        # Let the first requests settle: a keyed server answers them 401 and the key panel opens.
        try:
            WebDriverWait(driver, 5).until(
                lambda d: d.find_element(By.ID, "api-key").is_displayed()
                or d.find_element(By.ID, "model-row").is_displayed()
            )
        except TimeoutException:
            pass
        # The key panel opens on a 401; open it ourselves either way, then save the key.
        if not driver.find_element(By.ID, "api-key").is_displayed():
            driver.find_element(By.ID, "key-toggle").click()
        key = driver.find_element(By.ID, "api-key")
        key.clear()
        key.send_keys(api_key)
        driver.find_element(By.ID, "api-key-save").click()
        # Requests made before the key was saved were refused; that is the page working.
        console.ignore_before_now(lambda e: "status of 401" in e.get("message", ""))

    prompt = wait.until(lambda d: d.find_element(By.ID, "prompt"))
    before = set(
        driver.execute_script("return [...document.querySelectorAll('#gallery .card')].map(c => c.dataset.id)")
    )
    prompt.clear()
    prompt.send_keys(PROMPT)
    Select(driver.find_element(By.ID, "size")).select_by_value(SIZE)
    Select(driver.find_element(By.ID, "seconds")).select_by_value(SECONDS)
    advanced = driver.find_element(By.ID, "advanced")
    if not advanced.get_attribute("open"):
        advanced.find_element(By.TAG_NAME, "summary").click()
    steps = driver.find_element(By.ID, "steps")
    steps.clear()
    steps.send_keys(STEPS)
    driver.find_element(By.ID, "generate").click()

    # The new card: one not on the page before, carrying our prompt.
    find_new = (
        "const before = new Set(arguments[0]);"
        "const c = [...document.querySelectorAll('#gallery .card')].find(c =>"
        "  !before.has(c.dataset.id) && c.querySelector('.prompt').textContent === arguments[1]);"
        "return c ? c.dataset.id : null;"
    )
    try:
        vid = WebDriverWait(driver, 20).until(lambda d: d.execute_script(find_new, list(before), PROMPT))
    except TimeoutException:
        raise Failure(f"no new card appeared after Generate; page says: {page_banner(driver)!r}")
    print(f"created {vid}", flush=True)
    card_sel = f'.card[data-id="{vid}"]'

    t0, last = time.time(), None
    while True:
        status = driver.execute_script(
            "const c = document.querySelector(arguments[0]);"
            "return c ? [c.dataset.status, c.querySelector('progress').value] : null;",
            card_sel,
        )
        if status is None:
            raise Failure(f"card {vid} disappeared from the gallery")
        if status != last:
            print(f"  {time.time() - t0:6.1f}s  {status[0]} {status[1]:.0f}%", flush=True)
            last = status
        if status[0] == "completed":
            break
        if status[0] == "failed":
            err = driver.find_element(By.CSS_SELECTOR, card_sel + " .error").text
            raise Failure(f"generation failed: {err}")
        if time.time() - t0 > GENERATE_TIMEOUT_S:
            raise Failure(f"card {vid} not completed after {GENERATE_TIMEOUT_S} s (last: {status})")
        time.sleep(0.5)
    gen_s = time.time() - t0

    # The card's <video> must exist, decode frames at the requested width, and play.
    video_sel = card_sel + " video"
    try:
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script(
                "const v = document.querySelector(arguments[0]); return !!v && (v.readyState >= 2 || !!v.error);",
                video_sel,
            )
        )
    except TimeoutException:
        state = driver.execute_script(
            "const v = document.querySelector(arguments[0]); return v ? [v.readyState, v.networkState] : null;",
            video_sel,
        )
        err = driver.execute_script(
            "const e = document.querySelector(arguments[0] + ' .error'); return e && !e.hidden ? e.textContent : '';",
            card_sel,
        )
        raise Failure(f"video never reached readyState >= 2 (readyState, networkState = {state}; card error {err!r})")

    # Sample currentTime for ~1.2 s. The clip is 1 s long and loops, so add up forward steps
    # (a wrap counts as the distance to the end plus the new position) instead of comparing
    # two samples one period apart.
    probe = driver.execute_async_script(
        """
        const [sel, done] = arguments;
        const v = document.querySelector(sel);
        const out = { readyState: v.readyState, width: v.videoWidth, height: v.videoHeight,
                      duration: v.duration, error: v.error && (v.error.code + ' ' + v.error.message) };
        const frames = () => (v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0);
        const go = v.paused ? v.play() : Promise.resolve();
        go.catch(e => { out.playError = String(e); }).finally(() => {
          const f0 = frames();
          let prev = v.currentTime, advanced = 0, samples = 0;
          const timer = setInterval(() => {
            const t = v.currentTime;
            advanced += t >= prev ? t - prev : (v.duration - prev) + t;
            prev = t;
            if (++samples === 12) {
              clearInterval(timer);
              out.advanced = advanced;
              out.framesDecoded = frames() - f0;
              out.paused = v.paused;
              out.readyState = v.readyState;
              done(out);
            }
          }, 100);
        });
        """,
        video_sel,
    )
    print(f"  video: {probe}", flush=True)
    if probe.get("error") or probe.get("playError"):
        raise Failure(f"video error: {probe.get('error') or probe.get('playError')}")
    if probe["readyState"] < 2:
        raise Failure(f"video readyState {probe['readyState']} < 2 (no current frame)")
    if probe["width"] != WIDTH:
        raise Failure(f"videoWidth {probe['width']} != {WIDTH}")
    if probe["advanced"] < 0.5:
        raise Failure(f"currentTime advanced only {probe['advanced']:.3f} s over 1.2 s (paused={probe['paused']})")

    severe = console.severe()
    if severe:
        raise Failure("browser console has errors:\n" + "\n".join(f"  {e.get('message')}" for e in severe))
    return vid, gen_s, probe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="server URL, e.g. http://127.0.0.1:8765")
    ap.add_argument("--api-key", default=os.environ.get("TESSERA_API_KEY", ""))
    args = ap.parse_args()

    driver = make_driver()
    console = Console(driver)
    try:
        vid, gen_s, probe = run(driver, console, args.base, args.api_key)
    except (Failure, WebDriverException) as e:
        shot = os.path.join(tempfile.gettempdir(), f"studio_e2e-{int(time.time())}.png")
        try:
            driver.save_screenshot(shot)
        except WebDriverException:
            shot = "(screenshot failed)"
        msg = e.msg if isinstance(e, WebDriverException) else str(e)  # no driver stack trace
        print(f"FAIL: {msg}", file=sys.stderr)
        print(f"screenshot: {shot}", file=sys.stderr)
        print("browser console:\n" + console.dump(), file=sys.stderr)
        return 1
    finally:
        try:
            driver.quit()
        except WebDriverException:
            pass
    print(
        f"PASS: studio generated {vid} in {gen_s:.1f} s and its <video> plays "
        f"({probe['width']}x{probe['height']}, readyState {probe['readyState']}, "
        f"+{probe['advanced']:.2f} s in 1.2 s, {probe['framesDecoded']} frames)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
