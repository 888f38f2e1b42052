"""Printing a local HTML file to PDF with headless Chromium over its DevTools pipe, offline.

Why Chromium: it is already the project's browser (Debian package ``chromium``, installed by
``make system-deps`` for the page tests), so no new Python dependency is needed, and the charts in the
PDF are drawn by the same plotly.js that draws them on screen (Plotly.toImage in the page, embedded as
PNG). Kaleido would start its own Chrome through another package to do the same; WeasyPrint cannot run
plotly.js at all, so the charts would need a second renderer.

Why the pipe (``--remote-debugging-pipe``, fds 3 and 4) and not a port: nothing listens on the machine
while a briefing is printed, and the DevTools ``Fetch`` domain sees every request the page makes, so
the renderer *enforces* "offline": file:, data: and blob: URLs load, anything else is failed before it
is sent and reported in ``Printed.blocked``. Host names do not resolve either (``--host-resolver-rules``),
and Chromium's background services (updates, sync, metrics) are switched off.

The child gets the pipe ends as fds 3 and 4 from a two-line exec trampoline (see TRAMPOLINE) rather than
a ``preexec_fn``, which is unsafe in a threaded server.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Chromium's names on Debian and elsewhere, tried in order on PATH when briefing.chromium is not set.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# A4 in inches (ISO 216: 210 x 297 mm), as Page.printToPDF takes it.
A4_INCHES = (8.27, 11.69)
FLAGS = ("--headless=new", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-extensions", "--disable-quic", "--disable-domain-reliability", "--disable-breakpad",
         "--disable-client-side-phishing-detection", "--disable-features=MediaRouter,OptimizationHints,Translate",
         "--hide-scrollbars", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND")


class RenderError(RuntimeError):
    """Chromium could not print the page (it failed to start, the page failed, or it took too long)."""


@dataclass(frozen=True)
class Printed:
    pdf: bytes
    blocked: tuple[str, ...]  # URLs the page asked for that would have left the machine (refused)
    seconds: float


def find_chromium(configured: Path | None = None) -> Path | None:
    """The Chromium to print with: ``configured`` if it is an executable file, else the first on PATH."""
    if configured is not None:
        return configured if configured.is_file() and os.access(configured, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def missing_renderer_text(configured: Path | None = None) -> str:
    where = f"briefing.chromium = {configured} is not an executable file" if configured else "no Chromium on PATH"
    return (f"PDF unavailable: {where}. Install the Debian package chromium (`make system-deps` does), "
            "or set briefing.chromium to its path.")


class _DevTools:
    """JSON messages separated by NUL over two pipes; events answered as they arrive."""

    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int):
        self._proc, self._write_fd, self._read_fd = proc, write_fd, read_fd
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self.blocked: list[str] = []
        self._reader = threading.Thread(target=self._read, name="chromium-devtools", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._messages.put(None)
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._messages.put(json.loads(raw))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write_fd, data):]
        return self._next_id

    def _handle_event(self, message: dict) -> None:
        if message.get("method") == "Fetch.requestPaused":
            params, session = message["params"], message.get("sessionId")
            url = params["request"]["url"]
            if url.startswith(LOCAL_SCHEMES):
                self.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session)
            else:
                self.blocked.append(url)
                self.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                          session)

    def wait(self, deadline: float, *, reply_to: int | None = None, event: str | None = None) -> dict:
        """Handle messages until the reply to ``reply_to`` (its result) or the event ``event`` (its params)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RenderError("Chromium did not finish in time")
            try:
                message = self._messages.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise RenderError(f"Chromium closed the DevTools pipe (exit code {self._proc.poll()})")
            if "id" in message:
                if message["id"] == reply_to:
                    if "error" in message:
                        raise RenderError(f"DevTools error: {message['error'].get('message')}")
                    return message.get("result", {})
                continue
            self._handle_event(message)
            if event and message.get("method") == event:
                return message.get("params", {})

    def call(self, method: str, params: dict | None = None, session: str | None = None, *, deadline: float) -> dict:
        return self.wait(deadline, reply_to=self.send(method, params, session))


# Waits for the page's load event, then for window.briefingReady (a promise the page may set while it
# draws its charts); returns what the page reports as its own error, if any.
READY = """(async () => {
  if (document.readyState !== 'complete') await new Promise(r => window.addEventListener('load', r, {once: true}));
  if (window.briefingReady) await window.briefingReady;
  return window.briefingError || '';
})()"""


# Puts the pipe ends on fds 3 and 4 and becomes Chromium (a tiny exec trampoline: no preexec_fn in a
# threaded server, and dash's redirections only take one-digit fds).
TRAMPOLINE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
              "os.close(int(sys.argv[1])); os.close(int(sys.argv[2])); os.execv(sys.argv[3], sys.argv[3:])")


def _above_four(fd: int) -> int:
    import fcntl
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def print_to_pdf(chromium: Path, html_path: Path, *, timeout_s: float = 60.0) -> Printed:
    """Print ``html_path`` (a local file) to an A4 PDF; every request outside file:/data:/blob: is refused."""
    started = time.monotonic()
    deadline = started + timeout_s
    profile = Path(tempfile.mkdtemp(prefix="pheoc-chromium-"))
    command_read, command_write = os.pipe()
    reply_read, reply_write = os.pipe()
    # The child's ends, moved above 3 and 4 so that the shell's "3<&N 4>&M" never closes what it just made.
    command_read, reply_write = _above_four(command_read), _above_four(reply_write)
    log = tempfile.TemporaryFile()
    args = [str(chromium), *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
    try:
        proc = subprocess.Popen([sys.executable, "-c", TRAMPOLINE, str(command_read), str(reply_write), *args],
                                pass_fds=(command_read, reply_write),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    except OSError as exc:
        for fd in (command_read, command_write, reply_read, reply_write):
            os.close(fd)
        shutil.rmtree(profile, ignore_errors=True)
        raise RenderError(f"cannot start {chromium}: {exc}") from None
    os.close(command_read)
    os.close(reply_write)
    tools = _DevTools(proc, command_write, reply_read)
    try:
        target = tools.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
        session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                             deadline=deadline)["sessionId"]
        tools.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session, deadline=deadline)
        tools.call("Page.enable", {}, session, deadline=deadline)
        navigated = tools.call("Page.navigate", {"url": html_path.resolve().as_uri()}, session, deadline=deadline)
        if navigated.get("errorText"):
            raise RenderError(f"Chromium could not open {html_path.name}: {navigated['errorText']}")
        tools.wait(deadline, event="Page.loadEventFired")
        ready = tools.call("Runtime.evaluate", {"expression": READY, "awaitPromise": True, "returnByValue": True},
                           session, deadline=deadline)
        if ready.get("exceptionDetails"):
            raise RenderError(f"the page failed: {ready['exceptionDetails'].get('text', 'script error')}")
        if ready.get("result", {}).get("value"):
            raise RenderError(f"the page failed: {ready['result']['value']}")
        printed = tools.call("Page.printToPDF", {
            "paperWidth": A4_INCHES[0], "paperHeight": A4_INCHES[1], "printBackground": True,
            "preferCSSPageSize": True, "marginTop": 0, "marginBottom": 0, "marginLeft": 0, "marginRight": 0},
            session, deadline=deadline)
        pdf = base64.b64decode(printed["data"])
        try:
            tools.send("Browser.close")
        except OSError:
            pass
        return Printed(pdf, tuple(tools.blocked), round(time.monotonic() - started, 3))
    except RenderError as exc:
        log.seek(0)
        tail = log.read()[-1500:].decode(errors="replace").strip()
        raise RenderError(f"{exc}" + (f"\nChromium said: {tail}" if tail
                                      else "")) from None
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        os.close(command_write)
        os.close(reply_read)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
