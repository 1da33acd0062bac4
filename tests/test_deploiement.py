"""The deployment for a whole class, stood up for real on 127.0.0.1 by `deploiement/installer.sh` (root only).

JupyterHub + configurable-http-proxy + PostgreSQL + the course service (formgrader under the grader account) +
nbgrader's exchange. A TA releases a TP through the formgrader; students fetch, answer (reference, blank, a typical
mistake) and submit through their own servers; what a student must not reach is refused; the instructor collects and
grades with `autograder grade` into the PostgreSQL gradebook; feedback comes back to each student, in French. Then a
login storm (40 students at once) and a submit storm. Everything it starts, it stops; the accounts it made are deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from autograder.exercise import get_exercise
from tests.fixtures.tp1_gradients_wrong_answers import NBGRADER_CASES, WRONG_ANSWERS
from tests.notebook_tools import ROOT, student_copy

COURSE = "cours-autograd"
TP = "tp1_gradients"
GRADER = f"correcteur-{COURSE}"
TEACHER, TA = "ens-essai", "tuteur-essai"
STUDENTS = ["etu-essai1", "etu-essai2", "etu-essai3"]
STORM = [f"etu-charge{i:02d}" for i in range(1, 41)]
MISTAKE_ID = next(iter(NBGRADER_CASES))
MISTAKE = next(w for w in WRONG_ANSWERS if w.behaviour == NBGRADER_CASES[MISTAKE_ID])


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "le déploiement crée des comptes Unix et installe des paquets : il faut être root"
    if shutil.which("apt-get") is None:
        return "le déploiement vise Debian ou Ubuntu (apt-get)"
    return None


WHY_NOT = _why_not()
# In CI the deployment must be proved (a missing root or apt fails); elsewhere it runs only when asked for, since it
# creates and deletes Unix accounts and PostgreSQL databases.
SKIP = (
    None
    if os.environ.get("CI")
    else (
        WHY_NOT
        or (
            None
            if os.environ.get("COURS_AUTOGRAD_TEST_DEPLOIEMENT")
            else "lancez-le exprès : COURS_AUTOGRAD_TEST_DEPLOIEMENT=1 (il crée et supprime des comptes et des bases)"
        )
    )
)
pytestmark = [pytest.mark.deploiement, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """A small REST client of the hub and of the servers behind it."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, token: str | None = None, body=None, form=None, timeout: float = 120):
        data, headers = None, {"Authorization": f"token {token or self.token}"}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw)
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def token_for(self, user: str) -> str:
        status, body = self.call("POST", f"/hub/api/users/{user}/tokens", body={"note": "essai"})
        assert status in (200, 201), body
        return body["token"]

    def start(self, user: str) -> None:
        status, body = self.call("POST", f"/hub/api/users/{user}/server")
        assert status in (201, 202, 400), body  # 400: already running

    def ready(self, user: str) -> bool:
        status, body = self.call("GET", f"/hub/api/users/{user}")
        return status == 200 and bool(body.get("servers", {}).get("", {}).get("ready"))

    def wait_ready(self, users: list[str], limit: float) -> dict[str, float]:
        started, ready = time.monotonic(), {}
        while len(ready) < len(users) and time.monotonic() - started < limit:
            for user in users:
                if user not in ready and self.ready(user):
                    ready[user] = time.monotonic() - started
            time.sleep(1)
        return ready


def _roster(path: Path) -> None:
    lines = [
        "id,nom,prenom,email,role",
        f"{TEACHER},Curie,Marie,m@exemple.fr,enseignant",
        f"{TA},Noether,Emmy,e@exemple.fr,correcteur",
    ]
    lines += [f"{u},Nom,Prénom,{u}@exemple.fr,etudiant" for u in STUDENTS + STORM]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _as(user: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True, text=True)


@pytest.fixture(scope="module")
def deployment():
    # Not under pytest's tmp folder (mode 0700): the students' servers must read the course environment.
    base = Path(tempfile.mkdtemp(prefix="cours-autograd-deploiement-", dir="/tmp"))
    os.chmod(base, 0o755)
    prefix, exchange, roster = base / "opt", base / "echange", base / "comptes.csv"
    _roster(roster)
    port, token = _free_port(), secrets.token_hex(32)
    env = {
        **os.environ,
        "PREFIXE": str(prefix),
        "ECHANGE": str(exchange),
        "ADRESSE": f"http://127.0.0.1:{port}",
        "COMPTES": str(roster),
        "COURS_AUTOGRAD_JETON_ESSAIS": token,
        "JOURNAL_FICHIER": "0",
    }
    started = time.monotonic()
    install = subprocess.run(
        ["bash", str(ROOT / "deploiement" / "installer.sh")], env=env, capture_output=True, text=True, timeout=1800
    )
    print(f"\ninstallation et démarrage : {time.monotonic() - started:.0f} s")
    try:
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
        yield Hub(env["ADRESSE"], token), prefix, exchange, env
    finally:
        subprocess.run(["bash", str(ROOT / "deploiement" / "arreter.sh")], env=env, capture_output=True)
        subprocess.run(["pkill", "-KILL", "-f", str(prefix)], capture_output=True)
        for user in [TEACHER, TA, GRADER, *STUDENTS, *STORM]:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
            subprocess.run(["userdel", "-r", user], capture_output=True)
        # One statement per -c: DROP DATABASE cannot run inside psql's single-transaction multi-statement string.
        statements = ["DROP DATABASE IF EXISTS jupyterhub", "DROP DATABASE IF EXISTS notes_cours_autograd"]
        statements += ["DROP ROLE IF EXISTS hub", "DROP ROLE IF EXISTS correcteur"]
        psql = ["runuser", "-u", "postgres", "--", "psql", "-q"] + [arg for sql in statements for arg in ("-c", sql)]
        subprocess.run(psql, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _answers() -> dict[str, tuple[nbformat.NotebookNode, float]]:
    points = get_exercise(MISTAKE_ID).points
    return {
        STUDENTS[0]: (student_copy(TP), 20),
        STUDENTS[1]: (student_copy(TP, answered=False), 0),
        STUDENTS[2]: (student_copy(TP, {MISTAKE.cell_id: MISTAKE.source}), 20 - points),
    }


def _fetch_and_submit(hub: Hub, user: str, token: str, notebook: nbformat.NotebookNode | None) -> list[str]:
    course = {"course_id": COURSE, "assignment_id": TP}
    status, body = hub.call("POST", f"/user/{user}/assignments/fetch", token, form=course)
    assert status == 200, body
    if notebook is not None:
        content = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(notebook))}
        status, body = hub.call("PUT", f"/user/{user}/api/contents/{COURSE}/{TP}/{TP}.ipynb", token, body=content)
        assert status in (200, 201), body
    status, body = hub.call("POST", f"/user/{user}/assignments/submit", token, form=course)
    assert status == 200, body
    status, listing = hub.call("GET", f"/user/{user}/assignments?course_id={COURSE}", token)
    return [a.get("status") for a in listing.get("value", [])] if isinstance(listing, dict) else []


def test_a_class_fetches_submits_is_graded_in_postgresql_and_reads_its_feedback(deployment):
    assert WHY_NOT is None, WHY_NOT
    hub, prefix, exchange, env = deployment
    tokens = {u: hub.token_for(u) for u in [TEACHER, TA, *STUDENTS]}
    for user in STUDENTS:
        hub.start(user)
    assert len(hub.wait_ready(STUDENTS, 180)) == len(STUDENTS)

    # The TA generates and releases the TP through the course service's formgrader.
    formgrader = f"/services/{COURSE}/formgrader/api"
    status, body = hub.call("POST", f"{formgrader}/assignment/{TP}/assign", tokens[TA])
    assert status == 200 and body.get("success"), body
    status, body = hub.call("POST", f"{formgrader}/assignment/{TP}/release", tokens[TA])
    assert status == 200 and body.get("success"), body

    # Students fetch, answer and submit through their own servers; the status must say so (not just HTTP 200).
    answers = _answers()
    for user, (notebook, _) in answers.items():
        assert "submitted" in _fetch_and_submit(hub, user, tokens[user], notebook)

    # What a student must not reach.
    student = STUDENTS[1]
    status, _ = hub.call("GET", f"{formgrader}/assignments", tokens[student])
    assert status == 403
    other = _as(student, "ls", f"/home/{STUDENTS[0]}")
    assert other.returncode != 0 and "Permission" in other.stderr
    inbound = _as(student, "ls", str(exchange / COURSE / "inbound"))
    assert inbound.returncode != 0
    hijack = _as(student, "mv", str(exchange / COURSE), str(exchange / "detourne"))
    assert hijack.returncode != 0 and (exchange / COURSE).is_dir()

    # The instructor collects and grades with autograder grade (sandboxed) into the PostgreSQL gradebook.
    started = time.monotonic()
    graded = subprocess.run(
        ["bash", str(ROOT / "deploiement" / "corriger.sh"), TP, "--processus", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    print(f"ramassage, correction et retours de {len(answers)} copies : {time.monotonic() - started:.1f} s")
    url = _settings(prefix)["COURS_AUTOGRAD_GRADEBOOK_URL"]
    assert url.startswith("postgresql")
    scores = _gradebook_scores(prefix, url, list(answers))
    assert scores == {user: expected for user, (_, expected) in answers.items()}

    # Feedback, released by corriger.sh, fetched by each student, in French, without the hidden tests.
    for user in answers:
        status, body = hub.call(
            "POST",
            f"/user/{user}/assignments/fetch_feedback",
            tokens[user],
            form={"course_id": COURSE, "assignment_id": TP},
        )
        assert status == 200, body
        pages = list(Path(f"/home/{user}/{COURSE}/{TP}/feedback").rglob("*.html"))
        assert pages, f"pas de retour pour {user}"
        page = pages[0].read_text(encoding="utf-8")
        assert "BEGIN HIDDEN TESTS" not in page and "seed=" not in page
        assert "Note" in page or "note" in page

    # The formgrader's unsandboxed Autograde is refused, with the French reason, and the grade stays.
    status, body = hub.call("POST", f"{formgrader}/submission/{TP}/{STUDENTS[0]}/autograde", tokens[TA])
    assert not (isinstance(body, dict) and body.get("success")), body
    assert "autograder grade" in json.dumps(body, ensure_ascii=False)
    assert _gradebook_scores(prefix, url, [STUDENTS[0]]) == {STUDENTS[0]: 20}


def test_forty_students_log_in_at_once_and_a_submit_storm_loses_nothing(deployment):
    hub, prefix, exchange, env = deployment
    tokens = {u: hub.token_for(u) for u in STORM}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(STORM)) as pool:
        list(pool.map(hub.start, STORM))
    ready = hub.wait_ready(STORM, 120)
    assert len(ready) == len(STORM), f"{len(STORM) - len(ready)} serveurs pas prêts en 120 s"
    times = sorted(ready.values())
    print(
        f"\n40 connexions simultanées : prêt·e·s en {statistics.median(times):.0f} s (médiane), {times[-1]:.0f} s (max)"
    )
    rss = [_rss_of_user(u) for u in STORM]
    print(f"mémoire d'un serveur étudiant au repos : {statistics.median(rss) / 2**20:.0f} Mio (médiane)")

    blank = student_copy(TP, answered=False)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(STORM)) as pool:
        statuses = list(pool.map(lambda u: _fetch_and_submit(hub, u, tokens[u], blank), STORM))
    elapsed = time.monotonic() - started
    assert all("submitted" in s for s in statuses)
    print(f"tempête de rendus : {len(STORM)} copies en {elapsed:.1f} s ({len(STORM) / elapsed:.1f} copies/s)")
    inbound = [p.name.split("+")[0] for p in (exchange / COURSE / "inbound").iterdir()]
    assert set(STORM) <= set(inbound), f"copies perdues : {set(STORM) - set(inbound)}"

    # Grading throughput on PostgreSQL against SQLite, same copies.
    copies = prefix.parent / "copies"
    copies.mkdir()
    for user in STORM[:12]:
        nbformat.write(blank, copies / f"{user}.ipynb")
    shutil.chown(copies, GRADER)
    for path in copies.iterdir():
        shutil.chown(path, GRADER)
    for name, url in (("PostgreSQL", _settings(prefix)["COURS_AUTOGRAD_GRADEBOOK_URL"]), ("SQLite", "")):
        started = time.monotonic()
        run = subprocess.run(
            [
                "runuser",
                "-u",
                GRADER,
                "--",
                "env",
                "-C",
                f"/home/{GRADER}/{COURSE}",
                f"COURS_AUTOGRAD_GRADEBOOK_URL={url}",
                f"PATH={prefix}/env/bin:/usr/bin:/bin",
                f"HOME=/home/{GRADER}",
                "autograder",
                "grade",
                TP,
                str(copies),
                "--processus",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        elapsed = time.monotonic() - started
        print(f"correction sur {name} : {12 / elapsed:.2f} copies/s")


def _settings(prefix: Path) -> dict[str, str]:
    lines = (prefix / "etc" / "deploiement.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _gradebook_scores(prefix: Path, url: str, students: list[str]) -> dict[str, float]:
    code = (
        "import json,sys\nfrom nbgrader.api import Gradebook\n"
        f"with Gradebook({url!r}, {COURSE!r}) as gb:\n"
        f"    print(json.dumps({{s: gb.find_submission({TP!r}, s).score for s in {students!r}}}))\n"
    )
    # The deployment's environment has the PostgreSQL driver (psycopg).
    out = subprocess.run(
        [str(prefix / "env" / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _rss_of_user(user: str) -> int:
    total = 0
    for pid in subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout.split():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
