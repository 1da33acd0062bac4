"""The learning-rate explorer of lesson 2, driven headless: move the sliders, read what it shows."""

from __future__ import annotations

import math

import ipywidgets as widgets
import pytest
import torch

import autograder.learning_rate_explorer as explorer_module
from autograder.learning_rate_explorer import LearningRateExplorer, learning_rate_explorer


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


def regression_data(n: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The lesson's data: y = 2x − 1 plus noise, x uniform in [−1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, generator=generator) - 1
    y = 2 * x - 1 + 0.3 * torch.randn(n, generator=generator)
    return x, y


def hessian_eigenvalues(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the Hessian of the MSE of ŷ = w·x + b, obtained by autograd (not by the 2/n·AᵀA formula)."""
    x, y = x.double(), y.double()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return ((theta[0] * x + theta[1] - y) ** 2).mean()

    hessian = torch.autograd.functional.hessian(loss, torch.zeros(2, dtype=torch.float64))
    return torch.linalg.eigvalsh(hessian)


@pytest.fixture(scope="module")
def data():
    return regression_data()


@pytest.fixture
def explorer(data):
    return learning_rate_explorer(*data)


def test_explorer_is_a_vbox_with_log_rate_and_epoch_sliders(explorer):
    assert isinstance(explorer, widgets.VBox) and isinstance(explorer, LearningRateExplorer)
    assert isinstance(explorer.learning_rate, widgets.FloatLogSlider)
    assert isinstance(explorer.epochs, widgets.IntSlider)
    assert explorer.learning_rate.base == 10 and explorer.epochs.max <= 200
    assert not explorer.learning_rate.continuous_update and not explorer.epochs.continuous_update
    assert {explorer.learning_rate, explorer.epochs, explorer.info, explorer.image} <= set(explorer.children)


def test_threshold_is_two_over_the_largest_eigenvalue_of_the_hessian(explorer, data):
    lam_max = float(hessian_eigenvalues(*data).max())
    assert explorer.threshold == pytest.approx(2 / lam_max, rel=1e-9)
    assert explorer.lam_max == pytest.approx(lam_max, rel=1e-9)


def test_threshold_with_two_features_counts_the_bias():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(50, 2, generator=generator) * torch.tensor([1.0, 3.0])
    y = torch.randn(50, generator=generator)

    def loss(theta):
        return ((x.double() @ theta[:2] + theta[2] - y.double()) ** 2).mean()

    hessian = torch.autograd.functional.hessian(loss, torch.zeros(3, dtype=torch.float64))
    assert LearningRateExplorer(x, y).threshold == pytest.approx(2 / float(torch.linalg.eigvalsh(hessian).max()))


def test_threshold_is_shown_in_french_with_a_decimal_comma(explorer):
    shown = f"{explorer.threshold:.3g}".replace(".", ",")
    text = plain(explorer.text)
    assert f"Seuil de stabilité 2/λmax ≈ {shown} : au-delà, la descente diverge." in text
    assert "\u00a0:" in explorer.text  # no-break space before the colon
    assert "Seuil de stabilité" in explorer.info.value


def test_small_learning_rate_converges_to_least_squares(explorer, data):
    explorer.epochs.value = 200
    explorer.learning_rate.value = 0.3 * explorer.threshold
    assert explorer.verdict == "converge"
    assert len(explorer.losses) == 201
    assert all(
        later <= earlier * (1 + 1e-9) for earlier, later in zip(explorer.losses[:-1], explorer.losses[1:], strict=True)
    )
    x, y = data
    design = torch.stack([x, torch.ones_like(x)], dim=1).double()
    best = torch.linalg.lstsq(design, y.double().unsqueeze(1)).solution.flatten()
    assert torch.allclose(explorer.params[-1], best, atol=1e-6)
    assert explorer.losses[-1] == pytest.approx(float(((design @ best - y.double()) ** 2).mean()), rel=1e-6)
    assert "la descente converge" in plain(explorer.text)


@pytest.mark.parametrize("factor", [1.05, 1.5, 10.0])
def test_learning_rate_above_the_threshold_diverges(explorer, factor):
    explorer.epochs.value = 100
    explorer.learning_rate.value = factor * explorer.threshold
    assert explorer.verdict == "diverge"
    assert not explorer.losses[-1] < explorer.losses[0]
    assert "la descente diverge" in plain(explorer.text)


def test_learning_rate_just_below_the_threshold_oscillates(explorer, data):
    eigenvalues = hessian_eigenvalues(*data)
    lam_min, lam_max = float(eigenvalues.min()), float(eigenvalues.max())
    lr = 0.5 * (2 / (lam_min + lam_max) + 2 / lam_max)  # between the fastest rate and the threshold
    explorer.epochs.value = 50
    explorer.learning_rate.value = lr
    assert explorer.verdict == "oscille"
    assert explorer.losses[-1] < explorer.losses[0]  # it still converges
    trajectory = torch.stack(explorer.params)
    gaps = trajectory[1:10] - trajectory[-1]
    sign_changes = int((torch.sign(gaps[1:]) != torch.sign(gaps[:-1])).any(dim=1).sum())
    assert sign_changes >= 5  # the parameters overshoot the optimum, one side then the other
    assert "la descente oscille" in plain(explorer.text)


def test_moving_the_sliders_updates_losses_verdict_and_figure(explorer):
    first_losses, first_png, first_text = list(explorer.losses), explorer.png, explorer.text
    assert explorer.verdict == "converge"
    explorer.learning_rate.value = 3 * explorer.threshold
    assert explorer.losses != first_losses and explorer.verdict == "diverge"
    assert explorer.png != first_png and explorer.text != first_text
    assert explorer.png.startswith(b"\x89PNG") and bytes(explorer.image.value) == explorer.png
    explorer.learning_rate.value = 0.1
    explorer.epochs.value = 30
    assert len(explorer.losses) == 31 and explorer.verdict == "converge"


def test_divergence_stops_before_overflow(explorer):
    explorer.epochs.value = 200
    explorer.learning_rate.value = 10.0
    assert explorer.verdict == "diverge"
    assert all(math.isfinite(v) for v in explorer.losses)
    assert "infinie" in explorer.text or "10^" in explorer.text


def test_every_verdict_is_in_french_and_coloured(explorer):
    for lr, verdict in [(0.1, "converge"), (3.0, "diverge")]:
        explorer.learning_rate.value = lr
        assert explorer.verdict == verdict
        assert f"Verdict : la descente {verdict}" in plain(explorer.text)
        assert verdict in explorer.info.value


def test_mismatched_data_is_refused_in_french():
    with pytest.raises(ValueError, match="même nombre de points"):
        learning_rate_explorer(torch.zeros(10), torch.zeros(9))


def test_module_exports_no_solver_for_a_tp_question():
    public = {
        name
        for name, value in vars(explorer_module).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == explorer_module.__name__
    }
    assert public == {"LearningRateExplorer", "learning_rate_explorer"}
    assert set(explorer_module.__all__) == public


def test_fastest_rate_is_two_over_the_sum_of_the_extreme_eigenvalues(explorer, data):
    eigenvalues = hessian_eigenvalues(*data)
    fastest = 2 / float(eigenvalues.min() + eigenvalues.max())
    assert explorer.fastest == pytest.approx(fastest, rel=1e-9)
    shown = f"{fastest:.3g}".replace(".", ",")
    assert f"Taux le plus rapide 2/(λmin + λmax) ≈ {shown} : au-dessus, la descente oscille." in plain(explorer.text)


@pytest.mark.parametrize("epochs", [50, 200])
def test_fastest_rate_is_the_boundary_between_converge_and_oscillate(explorer, epochs):
    """Just under 2/(λmin + λmax) the widget says « converge », just above it « oscille »."""
    explorer.epochs.value = epochs
    explorer.learning_rate.value = 0.97 * explorer.fastest
    assert explorer.verdict == "converge"
    explorer.learning_rate.value = 1.03 * explorer.fastest
    assert explorer.verdict == "oscille"


def test_fastest_rate_contracts_faster_than_any_other_rate(explorer):
    """The gap to least squares after 30 epochs is smallest at 2/(λmin + λmax), e.g. smaller than at η = 0,5."""
    explorer.epochs.value = 30

    def final_gap(lr: float) -> float:
        explorer.learning_rate.value = lr
        return float((explorer.params[-1] - explorer.best).norm())

    best = final_gap(explorer.fastest)
    for factor in (0.6, 0.8, 0.9, 1.1, 1.2):
        assert best < final_gap(factor * explorer.fastest)
    assert best < final_gap(0.5) / 10
