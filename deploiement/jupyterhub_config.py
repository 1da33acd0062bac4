"""JupyterHub configuration of the course for a whole class (installed by deploiement/installer.sh).

Settings and secrets come from ``deploiement.env`` next to this file (written by the installer, readable by root only).
One hub, one JupyterHub service per course running the formgrader as a dedicated grader account, groups
``formgrade-<course>`` / ``nbgrader-<course>``, least-privilege roles (no admin token anywhere), servers started as the
students' own Unix accounts with the course environment.
"""

import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file

HERE = Path(__file__).resolve().parent


def _settings(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


S = _settings(Path(os.environ.get("COURS_AUTOGRAD_ENV", HERE / "deploiement.env")))
COURSE = S["COURS"]
PREFIX = Path(S["PREFIXE"])
ENV_BIN = PREFIX / "env" / "bin"
GRADER = S["CORRECTEUR"]
SECRETS = PREFIX / "secrets"

sys.path.insert(0, str(Path(S["DEPOT"]) / "deploiement"))
import comptes  # noqa: E402 - the roster reader shipped next to this file

ROSTER = comptes.read(S["COMPTES"])
TEACHERS = [a.id for a in ROSTER if a.role == "enseignant"]
TAS = [a.id for a in ROSTER if a.role == "correcteur"]
STUDENTS = [a.id for a in ROSTER if a.role == "etudiant"]

# -- Hub, proxy, database ---------------------------------------------------------------------------------------
c.JupyterHub.bind_url = S.get("ADRESSE", "http://127.0.0.1:8000")
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = S["HUB_DB_URL"]
c.JupyterHub.cookie_secret_file = str(SECRETS / "cle-cookies")  # hex, mode 0600
c.ConfigurableHTTPProxy.command = [str(PREFIX / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.log_file = str(PREFIX / "journal" / "hub.log") if S.get("JOURNAL_FICHIER") == "1" else ""
c.JupyterHub.cleanup_servers = True

# -- Authentication --------------------------------------------------------------------------------------------
# Demo: JupyterHub's own login with one shared password (file secrets/mot-de-passe-demo). For the university's
# accounts, see the README (« Déployer pour une promotion ») and deploiement/requirements-sso.txt:
#   LTI 1.3 from Moodle: c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
#   OIDC or CAS (through an OIDC gateway): c.JupyterHub.authenticator_class = "generic-oauth"
# Keep allowed_users / groups below: they decide who is a student and who grades.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = (SECRETS / "mot-de-passe-demo").read_text().strip()
c.Authenticator.allowed_users = set(TEACHERS + TAS + STUDENTS + [GRADER])
c.Authenticator.admin_users = set(TEACHERS)
c.JupyterHub.load_groups = {
    f"formgrade-{COURSE}": {"users": TEACHERS + TAS + [GRADER]},
    f"nbgrader-{COURSE}": {"users": STUDENTS},
}

# -- Student servers: the student's own Unix account, the course environment ----------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(ENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "PATH": f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin",
    "ECHANGE": S["ECHANGE"],
    "LANG": "fr_FR.UTF-8",
}
# A login storm at the start of a lab session: 40 servers on 2 cores take about 90 s (the default 30 s fails them all).
c.Spawner.http_timeout = 180
c.Spawner.start_timeout = 180
c.JupyterHub.concurrent_spawn_limit = 0
c.Spawner.mem_limit = "2G"  # honoured by spawners that can; LocalProcessSpawner only advertises it


def copy_lessons(spawner):
    """First login: put the lessons in the student's home (never overwritten afterwards)."""
    target = Path(spawner.user_env({}).get("HOME", f"/home/{spawner.user.name}")) / COURSE
    if target.exists():
        return
    shutil.copytree(Path(S["DEPOT"]) / "notebooks", target / "notebooks")
    shutil.chown(target, spawner.user.name, spawner.user.name)
    for path in target.rglob("*"):
        shutil.chown(path, spawner.user.name, spawner.user.name)


c.Spawner.pre_spawn_hook = copy_lessons

# -- The course service: the formgrader, shared by instructors and TAs, run as the grader account -------------------
c.JupyterHub.services = [
    {
        "name": COURSE,
        "url": "http://127.0.0.1:9999",
        "command": [str(ENV_BIN / "jupyterhub-singleuser"), "--ServerApp.root_dir=" + S["DOSSIER_COURS"]],
        "user": GRADER,
        "cwd": S["DOSSIER_COURS"],
        "oauth_no_confirm": True,
        # A Jupyter server with torch in its environment: 30 s (the default) is short on a busy 2-core host.
        "timeout": 180,
        "environment": {
            "PATH": f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "ECHANGE": S["ECHANGE"],
            # The formgrader and create-assignment extensions, for this service only.
            "JUPYTER_CONFIG_PATH": str(Path(S["DOSSIER_COURS"]) / "jupyter" / "instructor"),
            "COURS_AUTOGRAD_GRADEBOOK_URL": S["COURS_AUTOGRAD_GRADEBOOK_URL"],
            # The formgrader's « Autograde » would run student code unsandboxed as the grader account: refused.
            "COURS_AUTOGRAD_FORMGRADER": "1",
        },
    }
]

# -- Roles: least privilege, no admin token ---------------------------------------------------------------------------
c.JupyterHub.load_roles = [
    {"name": f"formgrade-{COURSE}", "groups": [f"formgrade-{COURSE}"], "scopes": [f"access:services!service={COURSE}"]},
    {
        "name": f"nbgrader-{COURSE}",
        "groups": [f"nbgrader-{COURSE}"],
        "scopes": ["list:services", f"read:services!service={COURSE}"],
    },
    # nbgrader's JupyterHubAuthPlugin, in each server, reads its owner's groups with the server's token.
    {"name": "server", "scopes": ["inherit"]},
    # What the course service needs to manage its students' group: nothing more.
    {
        "name": f"service-{COURSE}",
        "services": [COURSE],
        "scopes": ["read:users:groups", "list:users", "list:services", "groups", "admin:groups"],
    },
]

# The end-to-end tests drive the hub through its REST API with a token of their own (never set in production).
_TEST_TOKEN = os.environ.get("COURS_AUTOGRAD_JETON_ESSAIS")
if _TEST_TOKEN:
    c.JupyterHub.services.append({"name": "essais", "api_token": _TEST_TOKEN})
    c.JupyterHub.load_roles.append(
        {
            "name": "essais",
            "services": ["essais"],
            "scopes": ["admin:users", "admin:servers", "tokens", "admin:groups", "read:users"],
        }
    )
