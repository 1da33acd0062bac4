"""« Trouvez le bug » (TP2): a training loop with one hidden bug, the variant drawn per student.

Everyone receives the same released notebook, so the variant cannot live in it: ``mon_bug()`` derives it from a
stable key of the student's session, the JupyterHub user name (``JUPYTERHUB_USER``) or else the operating-system
user name, hashed with the assignment id. The student copies the loop shown and fixes it. The grade does not
depend on the variant: the checker runs the student's fixed ``train`` on fresh data and compares it with a
reference descent (``tp2_bug_fix``); naming the bug (``tp2_bug_name``) is checked by running the variant through
the same diagnosis, so no table « variant → bug » ships in the package.

Every variant implements the same specification: ``train(X, y, lr, n_epochs)`` trains ŷ = X @ w + b from w = 0 and
b = 0 by full-batch gradient descent on the mean squared error and returns ``(w, b, losses)``.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from collections.abc import Callable
from typing import Any

import torch

from autograder.typography import french_spacing

ASSIGNMENT = "tp2_regression"

# Each variant is a fenced block: the spelling check of the package's strings leaves code blocks out.
VARIANTS: tuple[str, ...] = (
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    model = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for epoch in range(n_epochs):
        loss = ((model(X).squeeze(1) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return model.weight.detach().reshape(-1), model.bias.detach().reshape(()), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    model = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for epoch in range(n_epochs):
        optimizer.zero_grad()
        y_pred = X @ model.weight.data.reshape(-1) + model.bias  # prédictions, forme (n,)
        loss = ((y_pred - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return model.weight.detach().reshape(-1), model.bias.detach().reshape(()), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    w = torch.zeros(X.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    losses = []
    for epoch in range(n_epochs):
        loss = ((X @ w + b - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w = w - lr * w.grad
            b = b - lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w.detach(), b.detach(), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    model = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for epoch in range(n_epochs):
        optimizer.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return model.weight.detach().reshape(-1), model.bias.detach().reshape(()), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    import copy

    model = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    start = copy.deepcopy(model)  # le modèle de départ, gardé pour comparer
    optimizer = torch.optim.SGD(start.parameters(), lr=lr)
    losses = []
    for epoch in range(n_epochs):
        optimizer.zero_grad()
        loss = ((model(X).squeeze(1) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return model.weight.detach().reshape(-1), model.bias.detach().reshape(()), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    model = torch.nn.Linear(X.shape[1], 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    losses = []
    model.eval()  # la mise à jour ne doit pas entrer dans le graphe
    for epoch in range(n_epochs):
        model.zero_grad()
        loss = ((model(X).squeeze(1) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        for p in model.parameters():
            p -= lr * p.grad
    return model.weight.detach().reshape(-1), model.bias.detach().reshape(()), losses
```""",
    """```python
def train(X, y, lr, n_epochs):
    \"\"\"Descente de gradient sur l'EQM, partant de w = 0 et b = 0 ; renvoie (w, b, pertes).\"\"\"
    w = torch.zeros(X.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    losses = []
    for epoch in range(n_epochs):
        loss = ((X @ w + b - y) ** 2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w.detach(), b.detach(), losses
```""",
)


def session_key() -> str:
    """The stable key of the student's session: the JupyterHub user name, else the operating-system user name."""
    key = os.environ.get("JUPYTERHUB_USER", "").strip()
    if key:
        return key
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name at all (some containers)
        return "anonyme"


def variant_of(key: str) -> int:
    """The variant number (1-based) of a key; the same key always gives the same variant."""
    digest = hashlib.sha256(f"{ASSIGNMENT}:{key}".encode()).hexdigest()
    return 1 + int(digest, 16) % len(VARIANTS)


def variant_source(variant: int) -> str:
    """The code of a variant (1-based), without its fence."""
    return VARIANTS[variant - 1].removeprefix("```python\n").removesuffix("```")


def buggy_train(variant: int) -> Callable[..., Any]:
    """The ``train`` function of a variant (1-based), as shown to the student."""
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(variant_source(variant), f"<variante {variant}>", "exec"), namespace)  # noqa: S102 - package code
    return namespace["train"]


def mon_bug(variante: int | None = None) -> None:
    """Print the student's variant of the buggy loop (or the one asked for)."""
    key = session_key()
    number = variant_of(key) if variante is None else variante
    if not 1 <= number <= len(VARIANTS):
        print(french_spacing(f"Les variantes sont numérotées de 1 à {len(VARIANTS)}."))
        return
    origin = f"tirée de votre identifiant « {key} »" if variante is None else "choisie à la main"
    print(french_spacing(f"Variante n° {number} ({origin}). Cette boucle contient une seule erreur :"))
    print()
    print(variant_source(number))
