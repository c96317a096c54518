#!/usr/bin/env python3
"""Open a page in headless Chromium and report what it did, over the DevTools protocol.

    browser-check.py URL --eval JS [--screenshot PNG] [--width 1280]

Chromium is driven through --remote-debugging-pipe (no port, no websocket). Prints one JSON
object: every network request the page made (`requests`), console messages at warning level
or above and uncaught exceptions (`console`), browser log entries at error level, such as
Content-Security-Policy refusals (`log`), and the value of the JS expression (`value`),
evaluated after the load event and the page's own script.

Run it in a network namespace of its own (`unshare -n`): Chromium's background services
(component updates, time checks) then cannot reach any network, and the page's requests are
still recorded, since the protocol reports a request before it is sent.
"""
import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

DEADLINE = 60.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--eval", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=1280)
    a = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        sys.exit("browser-check: no chromium on PATH (scripts/install-test-deps.sh installs it)")
    profile = tempfile.mkdtemp(prefix="portolan-chromium-")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def child_fds():
        # above 10 first, so that moving one to 3 or 4 cannot overwrite the other
        r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.dup2(r, 3)
        os.dup2(w, 4)

    args = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
        "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--no-pings", "--disable-domain-reliability",
        "--hide-scrollbars", "--mute-audio", "about:blank",
    ]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=child_fds, close_fds=False)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    start = time.monotonic()
    buf = b""
    next_id = [0]
    events = []
    result = {"requests": [], "console": [], "log": [], "value": None}

    def send(method, params=None, session=None):
        next_id[0] += 1
        msg = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
        return next_id[0]

    def read_one(timeout):
        nonlocal buf
        while b"\0" not in buf:
            left = min(timeout, DEADLINE - (time.monotonic() - start))
            if left <= 0:
                return None
            r, _, _ = select.select([from_chrome_r], [], [], left)
            if not r:
                return None
            chunk = os.read(from_chrome_r, 1 << 20)
            if not chunk:
                raise SystemExit("browser-check: chromium closed the pipe")
            buf += chunk
        raw, buf = buf.split(b"\0", 1)
        return json.loads(raw)

    def handle(m):
        method = m.get("method")
        p = m.get("params", {})
        if method == "Network.requestWillBeSent":
            result["requests"].append(p["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            text = " ".join(str(x.get("value", x.get("description", ""))) for x in p.get("args", []))
            result["console"].append(p["type"] + ": " + text)
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            result["console"].append("exception: " + d.get("text", "") + " " +
                                     str(d.get("exception", {}).get("description", "")))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            result["log"].append(p["entry"].get("text", ""))
        events.append(method)

    def call(method, params=None, session=None, timeout=30):
        i = send(method, params, session)
        while True:
            m = read_one(timeout)
            if m is None:
                raise SystemExit(f"browser-check: no answer to {method}")
            if m.get("id") == i:
                if "error" in m:
                    raise SystemExit(f"browser-check: {method}: {m['error']}")
                return m.get("result", {})
            handle(m)

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for d in ("Network", "Runtime", "Log", "Page"):
            call(d + ".enable", session=session)
        call("Emulation.setDeviceMetricsOverride",
             {"width": a.width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        call("Page.navigate", {"url": a.url}, session=session)
        # the load event, then a moment for timers and late requests
        while "Page.loadEventFired" not in events:
            m = read_one(30)
            if m is None:
                raise SystemExit("browser-check: the page did not load")
            handle(m)
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            m = read_one(settle - time.monotonic())
            if m is not None:
                handle(m)
        v = call("Runtime.evaluate", {"expression": a.eval, "returnByValue": True}, session=session)
        if "exceptionDetails" in v:
            raise SystemExit("browser-check: --eval threw: " + json.dumps(v["exceptionDetails"])[:500])
        result["value"] = v.get("result", {}).get("value")
        if a.screenshot:
            shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        # the page's own load is not a request it made
        result["requests"] = [u for u in result["requests"] if u != a.url]
        print(json.dumps(result))
    finally:
        try:
            send("Browser.close")
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
