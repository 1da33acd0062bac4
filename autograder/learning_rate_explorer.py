"""Lesson 2 widget: gradient descent on a linear regression, driven by a learning-rate slider.

``learning_rate_explorer(x, y)`` shows, for the chosen learning rate (log-scale slider) and number of
epochs, the loss curve (log scale), the regression line and the parameters along the epochs, with the
stability threshold 2/λmax of the problem, the fastest constant rate 2/(λmin + λmax) (the boundary between
« converge » and « oscille ») and a French verdict (« converge », « oscille », « diverge »).

The verdict is read from the trajectory, not from the threshold: the descent « diverge » when the loss
ends higher than it started or still grows at the last epoch; it « oscille » when successive steps of
the parameters mostly point in opposite directions (the line swings from one side to the other).

Like ``autograder.widgets``, the widget keeps what it last rendered in attributes (``losses``,
``verdict``, ``threshold``, ``text``, ``png``…), so tests drive it headless.
"""

from __future__ import annotations

import html
import io
import math
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from autograder.typography import french_number as _decimal
from autograder.typography import french_spacing

__all__ = ["LearningRateExplorer", "learning_rate_explorer"]

VERDICTS = ("converge", "oscille", "diverge")
_BLOW_UP = 1e30  # a loss above this has diverged: stop before overflowing
_FIRST_LINES = 7  # the regression lines of the first epochs are drawn, fading in
_COLOURS = {"converge": "#1b5e20", "oscille": "#e65100", "diverge": "#b00020"}


def _design(x: torch.Tensor) -> torch.Tensor:
    """Inputs of the affine model: the features, then a column of ones for the bias."""
    x = x.detach().double()
    if x.dim() == 1:
        x = x.unsqueeze(1)
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


def _curvatures(design: torch.Tensor) -> tuple[float, float]:
    """(λmin, λmax) of the Hessian of the mean squared error of the affine model, (2/n)·AᵀA."""
    eigenvalues = torch.linalg.eigvalsh(2.0 / len(design) * design.T @ design)
    return float(eigenvalues.min()), float(eigenvalues.max())


class LearningRateExplorer(widgets.VBox):
    """Learning rate and number of epochs → loss curve, regression line, parameters and verdict.

    After each update: ``losses`` (list of floats, one per epoch plus the initial loss), ``params``
    (list of parameter vectors, weights then bias), ``verdict`` (one of ``VERDICTS``), ``threshold``
    (2/λmax), ``lam_max``, ``fastest`` (2/(λmin + λmax)), ``best_loss`` (least-squares loss), ``text`` (French
    text shown), ``png``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        learning_rate: float = 0.1,
        epochs: int = 100,
        max_epochs: int = 200,
    ) -> None:
        self.design = _design(x)
        self.target = y.detach().double().reshape(-1)
        if len(self.target) != len(self.design):
            raise ValueError(
                f"x et y doivent avoir le même nombre de points ({len(self.design)} et {len(self.target)})."
            )
        lam_min, self.lam_max = _curvatures(self.design)
        self.threshold = 2.0 / self.lam_max
        self.fastest = 2.0 / (lam_min + self.lam_max)
        solution = torch.linalg.lstsq(self.design, self.target.unsqueeze(1)).solution.squeeze(1)
        self.best = solution
        self.best_loss = float(((self.design @ solution - self.target) ** 2).mean())
        self.learning_rate = widgets.FloatLogSlider(
            value=learning_rate,
            base=10,
            min=-3,
            max=1,
            step=0.01,
            description="Taux η\u00a0:",
            readout_format=".3g",
            continuous_update=False,
            layout=widgets.Layout(width="480px"),
        )
        self.epochs = widgets.IntSlider(
            value=min(epochs, max_epochs),
            min=10,
            max=max_epochs,
            step=10,
            description="Époques\u00a0:",
            continuous_update=False,
            layout=widgets.Layout(width="480px"),
        )
        self.info = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.losses: list[float] = []
        self.params: list[torch.Tensor] = []
        self.verdict = ""
        self.text = ""
        self.png = b""
        help_text = widgets.HTML(
            html.escape(
                french_spacing(
                    "Déplacez le curseur du taux d'apprentissage η (échelle logarithmique) et celui du nombre "
                    "d'époques : la descente de gradient repart de w = 0, b = 0 à chaque changement."
                )
            )
        )
        self.learning_rate.observe(self.update, names="value")
        self.epochs.observe(self.update, names="value")
        super().__init__([help_text, self.learning_rate, self.epochs, self.info, self.image])
        self.update()

    # -- computation --------------------------------------------------------------------------
    def _descend(self, lr: float, epochs: int) -> None:
        """Gradient descent with autograd, from zero, in float64; stops early once the loss has blown up."""
        params = torch.zeros(self.design.shape[1], dtype=torch.float64, requires_grad=True)
        self.losses, self.params = [], [params.detach().clone()]
        for _ in range(epochs):
            loss = ((self.design @ params - self.target) ** 2).mean()
            self.losses.append(float(loss.detach()))
            if not math.isfinite(self.losses[-1]) or self.losses[-1] > _BLOW_UP:
                break
            loss.backward()
            with torch.no_grad():
                params -= lr * params.grad
            params.grad = None
            self.params.append(params.detach().clone())
        else:
            self.losses.append(float(((self.design @ params.detach() - self.target) ** 2).mean()))

    def _classify(self) -> str:
        losses = self.losses
        last = losses[-1]
        if not math.isfinite(last) or last > _BLOW_UP or last > losses[0]:
            return "diverge"
        if len(losses) > 1 and last > losses[-2] * (1 + 1e-9) and last > self.best_loss * (1 + 1e-6):
            return "diverge"
        steps = [b - a for a, b in zip(self.params[:-1], self.params[1:], strict=True)]
        scale = max(float(p.norm()) for p in self.params) + 1e-12
        pairs = [
            float(s @ t)
            for s, t in zip(steps[:-1], steps[1:], strict=True)
            if float(s.norm()) > 1e-9 * scale and float(t.norm()) > 0
        ]
        if pairs and sum(p < 0 for p in pairs) > len(pairs) / 2:
            return "oscille"
        return "converge"

    def compute(self) -> None:
        """Run the descent for the current controls and set ``losses``, ``params``, ``verdict`` and ``text``."""
        lr, epochs = float(self.learning_rate.value), int(self.epochs.value)
        self._descend(lr, epochs)
        self.verdict = self._classify()
        line = "la droite" if self.design.shape[1] == 2 else "le modèle"
        explanation = {
            "converge": f"la perte diminue à chaque époque et {line} s'approche de la solution des moindres carrés.",
            "oscille": "la perte diminue, mais les paramètres dépassent l'optimum à chaque pas et repartent "
            f"de l'autre côté : {line} « balance » autour de la bonne position.",
            "diverge": "chaque pas dépasse l'optimum un peu plus que le précédent : la perte explose.",
        }[self.verdict]
        last = self.losses[-1]
        final = f"{_decimal(last, 3)}" if math.isfinite(last) and last <= _BLOW_UP else "infinie (dépassement)"
        lines = [
            f"Seuil de stabilité 2/λmax ≈ {_decimal(self.threshold, 3)} : au-delà, la descente diverge.",
            f"Taux le plus rapide 2/(λmin + λmax) ≈ {_decimal(self.fastest, 3)} : au-dessus, la descente oscille.",
            f"Taux d'apprentissage η = {_decimal(lr, 3)}, soit {_decimal(lr / self.threshold, 2)} fois le seuil.",
            f"Verdict : la descente {self.verdict} — {explanation}",
            f"Perte après {len(self.losses) - 1} époques : {final} "
            f"(minimum des moindres carrés : {_decimal(self.best_loss, 3)}).",
        ]
        self.text = "\n".join(french_spacing(line) for line in lines)

    # -- display ------------------------------------------------------------------------------
    def _figure(self) -> Figure:
        fig = Figure(figsize=(12, 3.6))
        ax_loss, ax_line, ax_params = fig.subplots(1, 3)
        colour = _COLOURS[self.verdict]
        finite = [v for v in self.losses if math.isfinite(v) and v > 0]
        ax_loss.semilogy(range(len(finite)), finite, color=colour)
        ax_loss.axhline(self.best_loss, color="grey", linestyle="--", label="minimum (moindres carrés)")
        ax_loss.set_xlabel("époque")
        ax_loss.set_ylabel("perte (EQM, échelle log)")
        ax_loss.set_title("Courbe de perte")
        ax_loss.legend(loc="upper right", fontsize=8)

        if self.design.shape[1] == 2:
            self._draw_lines(ax_line, colour)
        else:
            self._draw_predictions(ax_line, colour)

        trajectory = torch.stack(self.params)
        names = self._names()
        styles = ["-", "--", ":", (0, (5, 1, 1, 1))]
        for j, name in enumerate(names):
            style = "-." if j == len(names) - 1 else styles[j % len(styles)]
            ax_params.plot(trajectory[:, j], linestyle=style, color=colour, label=f"{name} (descente)")
            ax_params.axhline(float(self.best[j]), color="grey", linestyle=style, linewidth=1)
        low, high = float(self.best.min()), float(self.best.max())
        margin = max(1.0, high - low)
        ax_params.set_ylim(min(low, 0.0) - margin, max(high, 0.0) + margin)
        ax_params.set_xlabel("époque")
        ax_params.set_ylabel("valeur du paramètre")
        ax_params.set_title(f"Paramètres {', '.join(names[:-1])} et b (gris : optimum)")
        ax_params.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig

    def _names(self) -> list[str]:
        features = self.design.shape[1] - 1
        return (["w"] if features == 1 else [f"w{j + 1}" for j in range(features)]) + ["b"]

    def _draw_lines(self, ax: Any, colour: str) -> None:
        """One feature: the data, the regression lines of the first epochs, the final line and least squares."""
        x = self.design[:, 0]
        ax.scatter(x, self.target, s=10, color="#1f77b4", alpha=0.6, label="données")
        grid = torch.linspace(float(x.min()), float(x.max()), 2, dtype=torch.float64)
        shown = self.params[1:_FIRST_LINES]  # the first epochs, where the line moves the most
        for k, p in enumerate(shown):
            label = f"époques 1 à {len(shown)}" if k == 0 else None
            alpha = 0.15 + 0.5 * k / len(shown)
            ax.plot(grid, p[0] * grid + p[1], color=colour, alpha=alpha, linewidth=1, label=label)
        w, b = self.params[-1]
        ax.plot(grid, w * grid + b, color=colour, linewidth=2.5, label="droite finale")
        ax.plot(grid, self.best[0] * grid + self.best[1], "k--", linewidth=1, label="moindres carrés")
        self._target_limits(ax)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("Droite de régression")
        ax.legend(loc="upper left", fontsize=8)

    def _draw_predictions(self, ax: Any, colour: str) -> None:
        """Several features: predictions against targets (on the diagonal when perfect)."""
        predictions = self.design @ self.params[-1]
        ax.scatter(self.target, predictions, s=10, color=colour, alpha=0.6, label="prédictions finales")
        low, high = float(self.target.min()), float(self.target.max())
        ax.plot([low, high], [low, high], "k--", linewidth=1, label="prédiction parfaite")
        self._target_limits(ax)
        ax.set_xlabel("cible y")
        ax.set_ylabel("prédiction ŷ")
        ax.set_title("Prédictions et cibles")
        ax.legend(loc="upper left", fontsize=8)

    def _target_limits(self, ax: Any) -> None:
        span = float(self.target.max() - self.target.min())
        ax.set_ylim(float(self.target.min()) - 0.3 * span, float(self.target.max()) + 0.3 * span)

    def update(self, change: dict[str, Any] | None = None) -> None:
        """Recompute and refresh the display (called when a slider changes)."""
        self.compute()
        buffer = io.BytesIO()
        self._figure().savefig(buffer, format="png", dpi=72)
        self.png = buffer.getvalue()
        head, *rest = self.text.splitlines()
        verdict_line = next(line for line in rest if line.startswith("Verdict"))
        others = [line for line in rest if line is not verdict_line]
        colour = _COLOURS[self.verdict]
        self.info.value = (
            f"<div><b>{html.escape(head)}</b></div>"
            f"<div style='color:{colour}'><b>{html.escape(verdict_line)}</b></div>"
            + "".join(f"<div>{html.escape(line)}</div>" for line in others)
        )
        self.image.value = self.png


def learning_rate_explorer(
    x: torch.Tensor, y: torch.Tensor, learning_rate: float = 0.1, epochs: int = 100
) -> LearningRateExplorer:
    """The widget: move the learning rate (log scale) and the number of epochs, watch the descent."""
    return LearningRateExplorer(x, y, learning_rate, epochs)
