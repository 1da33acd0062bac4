"""Drive the course as students meet it: JupyterLab started by `make lab`, Debian's Chromium through Playwright.

The server serves a temporary copy of the course (``LAB_ROOT``), so running, editing and saving notebooks never
touches the repository. Its user profile (configuration, settings, workspaces) is empty and temporary too: what
the tests see is what the course's environment configures, not the developer's own JupyterLab settings.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tests.notebook_tools import ROOT, kernel_env, read

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # another Chromium-based browser: CHROMIUM=…
# No network, no sandbox (containers run as root), nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
VIEWPORT = {"width": 1400, "height": 900}

# The notebook panel that is shown (JupyterLab hides the others).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{PANEL} .jp-Notebook .jp-Cell"
# Each top-level output holding a widget: JupyterLab renders it in a panel, the view inside has `jupyter-widgets`.
WIDGET_OUTPUTS = f"{PANEL} .jp-OutputArea-output:has(> .jupyter-widgets)"


def browser_status() -> tuple[bool, str]:
    """(usable, French reason when not): Chromium from Debian and the `playwright` Python package."""
    if not CHROMIUM.exists():
        return False, f"Chromium est absent ({CHROMIUM}) : installez le paquet Debian « chromium » (make test le fait)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "le paquet Python « playwright » manque : lancez make install"
    return True, ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """User settings of the test profile: every cell attached to the page, so that all outputs can be read."""
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))


@dataclass
class Lab:
    """A JupyterLab server started through `make lab`, serving ``root`` (a copy of the course)."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    def url(self, path: str = "lab") -> str:
        separator = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{separator}token={self.token}"

    def status(self, path: str) -> int:
        """HTTP status of a server URL (e.g. an extension's page)."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop `make` and JupyterLab (and the kernels it started): the whole process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_lab(workdir: Path, timeout: float = 120) -> Lab:
    """Copy the students' part of the course into ``workdir`` and serve it with `make lab`, on loopback."""
    course = workdir / "cours"
    course.mkdir(parents=True)
    shutil.copytree(ROOT / "notebooks", course / "notebooks")
    shutil.copytree(ROOT / "release", course / "release")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    profile = workdir / "profil"
    _write_settings(profile / "settings")
    env = kernel_env()
    env.update(
        JUPYTER_CONFIG_DIR=str(profile / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(profile / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(profile / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(profile / "runtime"),
        JUPYTER_DATA_DIR=str(profile / "data"),  # no personal kernel or extension: the environment's only
        LANG="C.UTF-8",  # no French from the system: it must come from the course's configuration
    )
    env.pop("LC_ALL", None)
    env.pop("LANGUAGE", None)
    port, token = _free_port(), secrets.token_hex(16)
    lab_args = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 "
        f"--IdentityProvider.token={token}"
    )
    command = ["make", "-C", str(ROOT), "--no-print-directory", "lab", f"VENV={sys.prefix}", f"LAB_ROOT={course}"]
    log = workdir / "lab.log"
    process = subprocess.Popen(
        [*command, f"LAB_ARGS={lab_args}"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    lab = Lab(course, port, token, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`make lab` s'est arrêté (code {process.returncode}) :\n{lab.log_tail()}")
        try:
            if lab.status("api/status") == 200:
                return lab
        except OSError:
            pass
        time.sleep(0.5)
    lab.stop()
    raise RuntimeError(f"JupyterLab n'a pas répondu en {timeout:.0f} s :\n{lab.log_tail()}")


# --- in the page ---------------------------------------------------------------------------------------------


def open_notebook(page, lab: Lab, relative: str, timeout: float = 90_000) -> None:
    """Open a notebook of the course in a fresh workspace and wait until its kernel is idle."""
    page.goto(lab.url(f"lab/tree/{relative}?reset"))
    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=timeout)
    page.wait_for_selector(f'{PANEL} .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=timeout)


def menu(page, title: str, item: str) -> None:
    """Click a menu of the menu bar, then one of its items, by their (French) labels."""
    page.locator("#jp-menu-panel .lm-MenuBar-item", has_text=title).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=item).first.click()


def menu_bar(page) -> list[str]:
    return [label.strip() for label in page.locator("#jp-menu-panel .lm-MenuBar-itemLabel").all_inner_texts()]


def wait_idle(page, timeout: float = 300) -> None:
    """Wait until the kernel is idle and no cell is running or queued (« [*] »), twice in a row."""
    script = """(panel) => {
      const indicator = document.querySelector(panel + ' .jp-Notebook-ExecutionIndicator');
      const running = [...document.querySelectorAll(panel + ' .jp-InputPrompt')]
        .filter(prompt => prompt.textContent.includes('*')).length;
      return indicator !== null && indicator.dataset.status === 'idle' && running === 0;
    }"""
    deadline = time.monotonic() + timeout
    page.wait_for_timeout(500)
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"le noyau travaille encore après {timeout:.0f} s")
        calm = calm + 1 if page.evaluate(script, PANEL) else 0
        page.wait_for_timeout(400)


def save(page, timeout: float = 30_000) -> None:
    """Save the notebook (Ctrl+S) and wait until its tab is no longer marked as modified."""
    page.locator(f"{PANEL} .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty", state="detached", timeout=timeout)


def cell(page, index: int):
    return page.locator(CELLS).nth(index)


def output_text(page, index: int) -> str:
    """What a cell's outputs show, as text, with no-break spaces made plain."""
    return cell(page, index).locator(".jp-OutputArea").inner_text().replace("\u00a0", " ")


def set_source(page, index: int, source: str) -> None:
    """Replace a code cell's text as a student would, without the editor's auto-indentation or brackets."""
    editor = cell(page, index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(source)


CODE_PROMPTS = f"{PANEL} .jp-CodeCell .jp-InputPrompt"


def run_all(page, attempts: int = 3, timeout: float = 300) -> None:
    """« Exécution » → « Exécuter toutes les cellules », then wait until the run is over.

    As in ``run_cell``, a click made while the page was still busy (a kernel starting for the first time in a
    fresh environment) is made again when no prompt has changed. The run is over when the kernel is idle and no
    prompt is queued (« [*]: »); cells after an unexpected error stay unnumbered, which the caller reports.
    """
    before = page.locator(CODE_PROMPTS).all_inner_texts()
    for _ in range(attempts):
        menu(page, "Exécution", "Exécuter toutes les cellules")
        deadline = time.monotonic() + 20
        while page.locator(CODE_PROMPTS).all_inner_texts() == before and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        if page.locator(CODE_PROMPTS).all_inner_texts() != before:
            break
    wait_idle(page, timeout)


# The menu item as JupyterLab's French language pack shows it, in « Noyau » and in « Exécution » (the capital « E »
# comes from JupyterLab joining « Redémarrer le noyau » and « Exécuter toutes les cellules »).
RESTART_RUN_ALL = "Redémarrer le noyau et Exécuter toutes les cellules…"


def restart_and_run_all(page, timeout: float = 300) -> None:
    """« Noyau » → « Redémarrer le noyau et Exécuter toutes les cellules… », confirmed with « Redémarrer »; then wait
    until the kernel is idle again. The caller checks how far the run went (execution counts)."""
    menu(page, "Noyau", RESTART_RUN_ALL)
    page.locator(".jp-Dialog-button.jp-mod-accept", has_text="Redémarrer").click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    deadline = time.monotonic() + 30
    while not page.locator(CODE_PROMPTS).first.inner_text().strip().startswith("[*") and time.monotonic() < deadline:
        if re.search(r"\[\d+\]", page.locator(CODE_PROMPTS).last.inner_text()):
            break  # already over
        page.wait_for_timeout(100)
    wait_idle(page, timeout)


def run_cell(page, index: int, attempts: int = 3) -> None:
    """Select a cell and run it (Ctrl+Entrée), then wait for the kernel.

    The prompt (« [ ]: », « [*]: », « [7]: ») tells whether the run started: a key pressed while the page was
    still busy (a kernel starting on a loaded machine) is pressed again.
    """
    prompt = cell(page, index).locator(".jp-InputPrompt")
    before = prompt.inner_text()
    for _ in range(attempts):
        prompt.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        deadline = time.monotonic() + 20
        while prompt.inner_text() == before and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        if prompt.inner_text() != before:
            break
    wait_idle(page)
    ran = prompt.inner_text()
    if not re.search(r"\[\d+\]", ran):
        raise AssertionError(f"la cellule {index} n'a pas été exécutée (invite « {ran.strip()} »)")


def editor_text(page, index: int) -> str:
    return "\n".join(cell(page, index).locator(".cm-line").all_inner_texts())


def widget_states(page) -> list[str]:
    """For each rendered top-level widget: its text and images, to tell whether its display changed."""
    return page.locator(WIDGET_OUTPUTS).evaluate_all(
        """outputs => outputs.map(o => o.innerText + [...o.querySelectorAll('img')].map(i => i.src).join(''))"""
    )


def nudge_widget(page, index: int) -> str:
    """Act on the index-th rendered widget as a student would; return what was done (French), or ''.

    A slider: keyboard arrows on its handle; a text field: add « * 2 » and press Entrée; radio buttons: pick one.
    """
    widget = page.locator(WIDGET_OUTPUTS).nth(index)
    handles = widget.locator(".noUi-handle")
    if handles.count():
        handle = handles.first
        handle.focus()
        before = handle.get_attribute("aria-valuenow")
        handle.press("ArrowRight")
        if handle.get_attribute("aria-valuenow") == before:  # already at its maximum
            handle.press("ArrowLeft")
        return "curseur déplacé"
    fields = widget.locator("input[type=text]")
    if fields.count():
        field = fields.first
        field.fill(f"({field.input_value()}) * 2")
        field.press("Enter")
        return "texte modifié"
    radios = widget.locator("input[type=radio]")
    if radios.count():
        radios.first.check()
        return "réponse choisie"
    return ""


def screenshot(page, name: str) -> Path:
    """The whole notebook as one picture: the window is made as tall as the notebook, then captured."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        """(panel) => {
          const scrollers = document.querySelectorAll(
            panel + ' .jp-Notebook, ' + panel + ' .jp-WindowedPanel-outer, ' + panel + ' .jp-WindowedPanel-viewport');
          return Math.max(0, ...[...scrollers].map(element => element.scrollHeight));
        }""",
        PANEL,
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(VIEWPORT["height"], height + 160), 30_000)})
    page.evaluate(
        """(panel) => document.querySelectorAll(panel + ' .jp-Notebook, ' + panel + ' .jp-WindowedPanel-outer')
             .forEach(element => { element.scrollTop = 0; })""",
        PANEL,
    )
    page.wait_for_timeout(800)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def window_screenshot(page, name: str) -> Path:
    """What the window shows (a dialog, a menu), at the usual window size."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def saved_notebook(lab: Lab, relative: str) -> nbformat.NotebookNode:
    return read(lab.root / relative)
