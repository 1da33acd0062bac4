"""nbgrader configuration shared by every server of the deployment (installed in the environment's etc/jupyter).

Students and staff exchange assignments through nbgrader's filesystem exchange; who may see which course comes
from the hub's groups ``nbgrader-<course>`` (students) and ``formgrade-<course>`` (instructors, TAs, grader account).
"""

import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.Exchange.root = os.environ.get("ECHANGE", "/srv/nbgrader/exchange")
# One folder per course inside the exchange, so several courses can share one hub.
c.Exchange.path_includes_course = True
c.Authenticator.plugin_class = JupyterHubAuthPlugin
