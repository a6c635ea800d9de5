"""Four widgets for readers who would rather move a slider than read: one per chapter that has a
parameter worth playing with.

Each widget is a pure ``*_draw(...)`` function, which takes the values of the controls and returns
a matplotlib figure and the numbers it shows, and a ``*_widget()`` function that wraps it in
ipywidgets controls. :func:`show` displays a widget: first its figure as a plain PNG image (what the
static HTML of the book keeps, since there is no kernel behind it), then the controls; moving a
control redraws that same image in place. The figures are made with ``matplotlib.figure.Figure``,
not ``pyplot``, so that no figure is left open behind a cell.

- :func:`lambda_widget`: the shipped mean-scale hyperprior family on a Kodak crop, chapter
  *Transform coding with learned priors* (``book/codecs/transform_coding.md``);
- :func:`lattice_widget`: hexagonal cells under a moving Gaussian, chapter *Uniform scalar and
  lattice vector quantization* (``book/latent/lattice.md``);
- :func:`modulator_widget`: the delta-sigma modulator and its error spectrum, chapter
  *Delta-sigma modulation of binary latents: gradients and noise shaping*
  (``book/deltasigma/derivations.md``);
- :func:`conditional_widget`: conditional against residual coding on the bottleneck example,
  chapter *Conditional coding versus residual coding* (``book/conditional/derivations.md``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import ipywidgets as widgets
import matplotlib as mpl
import numpy as np
import sympy as sp
import torch
from IPython.display import DisplayHandle, Image, display
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from nctutor import checkpoints, codecs, container, data, rd, zoo
from nctutor.quant import deltasigma as qds
from nctutor.quant import lattice as Q
from nctutor.symbolic import conditional as cc
from nctutor.symbolic import deltasigma as sds

__all__ = [
    "BOTTLENECKS",
    "SIGNALS",
    "conditional_draw",
    "conditional_widget",
    "lambda_draw",
    "lambda_widget",
    "lattice_draw",
    "lattice_widget",
    "modulator_draw",
    "modulator_widget",
    "shipped_qualities",
    "show",
]

Numbers = dict[str, float]

# --------------------------------------------------------------------------- the one mechanism


def _png(fig: Figure) -> Image:
    """The figure as a PNG image: what both the live widget and the static page display."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return Image(data=buf.getvalue(), format="png")


def _live(draw: Callable[..., tuple[Figure, Numbers]],
          controls: dict[str, widgets.ValueWidget]) -> widgets.VBox:
    """Controls that redraw ``draw(**values)`` on every change, into one display slot.

    The box gets three attributes: ``numbers`` (those of the last drawing), ``redraw()`` and
    ``handle`` (the :class:`IPython.display.DisplayHandle` that :func:`show` fills).
    """
    box = widgets.VBox(list(controls.values()))
    box.handle = DisplayHandle()
    box.image = None

    def redraw(change: Any = None) -> None:
        fig, box.numbers = draw(**{name: c.value for name, c in controls.items()})
        box.image = _png(fig)
        if change is not None:  # a control moved: replace the figure shown by `show`
            box.handle.update(box.image)

    for control in controls.values():
        control.observe(redraw, names="value")
    box.redraw = redraw
    redraw()
    return box


def show(box: widgets.VBox) -> None:
    """Display a widget of this module: its current figure as a plain image, then its controls.

    The image is a normal cell output, so the static HTML of the book shows it; with a kernel,
    moving a control replaces it. Used by the widget cells of book sections *Transform coding with
    learned priors → Real bitstreams*, *Uniform scalar and lattice vector quantization → The
    probability of a hexagonal cell (Appendix E)*, *Delta-sigma modulation of binary latents:
    gradients and noise shaping → The white-noise model and the real modulator* and *Conditional
    coding versus residual coding → A bottleneck in the conditional branch*.
    """
    if not isinstance(getattr(box, "handle", None), DisplayHandle):
        raise TypeError("show() takes a box made by one of the *_widget() functions of "
                        "nctutor.widgets")
    box.handle.display(box.image)
    display(box)


# --------------------------------------------------------------------------- 1. the λ slider

LAMBDA_MODEL = "mbt2018-mean"
"""The family of the λ slider: the mean-scale hyperprior, shipped at several qualities."""


def shipped_qualities() -> list[int]:
    """The qualities of :data:`LAMBDA_MODEL` shipped with the package (``zoo.shipped()``).

    Used by :func:`lambda_widget` (book section *Transform coding with learned priors → Real
    bitstreams*); no page calls it.
    """
    return [q for (name, q) in zoo.shipped() if name == LAMBDA_MODEL]


@cache
def _shipped_model(quality: int) -> torch.nn.Module:
    """The shipped model of ``quality``, loaded on first use and kept."""
    if quality not in shipped_qualities():
        raise ValueError(f"{LAMBDA_MODEL} is shipped at qualities {shipped_qualities()}, "
                         f"not {quality!r}; pick one of those")
    return zoo.load_exported(checkpoints.WEIGHTS_DIR / f"{LAMBDA_MODEL}-q{quality}.pt")


@cache
def _crop(image: int, size: int) -> torch.Tensor:
    return data.center_crop(data.kodak()[image], size)


@cache
def _code(quality: int, image: int, size: int) -> tuple[torch.Tensor, Numbers]:
    """Encode the crop to a real ``.nct`` file, decode it, measure it."""
    net = _shipped_model(quality)
    x = _crop(image, size)
    blob = container.encode_image(net, x, LAMBDA_MODEL, quality, net.nctutor["profile"])
    x_hat = container.decode_image(blob, net)
    h, w = x.shape[-2:]
    return x_hat, {"quality": quality, "lambda": codecs.lmbda(quality), "bytes": len(blob),
                   "bpp": rd.bpp(len(blob), h, w), "psnr": rd.psnr(x, x_hat)}


def lambda_draw(quality: int, image: int = 0, size: int = 256) -> tuple[Figure, Numbers]:
    """The central ``size``×``size`` crop of Kodak image ``image`` (0-based) coded by the shipped
    mean-scale hyperprior of ``quality`` into a real file and decoded; the figure shows the
    original, the decoded crop and every shipped quality's (bpp, PSNR) with ``quality`` marked.

    Returns the figure and ``{"quality", "lambda", "bytes", "bpp", "psnr"}`` (the bpp counts the
    whole file, header included). Models and results are cached: each quality is loaded and coded
    once. Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    if not isinstance(image, int) or not 0 <= image < len(data.kodak()):
        raise ValueError(f"image must be an index 0..{len(data.kodak()) - 1}, got {image!r}")
    x_hat, nums = _code(quality, image, size)
    fig = Figure(figsize=(10, 3.4))
    ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax[0].imshow(_crop(image, size).permute(1, 2, 0).numpy())
    ax[0].set_title(f"kodim{image + 1:02d}, {size}×{size} crop", fontsize=9)
    ax[1].imshow(data.to_uint8(x_hat).permute(1, 2, 0).numpy())
    ax[1].set_title(f"decoded from {nums['bytes']} bytes", fontsize=9)
    for a in ax[:2]:
        a.axis("off")
    points = [_code(q, image, size)[1] for q in shipped_qualities()]
    ax[2].plot([p["bpp"] for p in points], [p["psnr"] for p in points], "o-", color="0.6")
    ax[2].plot(nums["bpp"], nums["psnr"], "o", color="C3", ms=10)
    for p in points:
        ax[2].annotate(f"q{p['quality']}", (p["bpp"], p["psnr"]), textcoords="offset points",
                       xytext=(5, -10), fontsize=8)
    ax[2].set_xlabel("bpp (whole .nct file)")
    ax[2].set_ylabel("PSNR (dB)")
    ax[2].grid(alpha=0.3)
    fig.suptitle(f"{LAMBDA_MODEL} q{quality}: λ = {nums['lambda']:g}, {nums['bpp']:.3f} bpp, "
                 f"PSNR {nums['psnr']:.2f} dB", fontsize=10)
    fig.tight_layout()
    return fig, nums


def lambda_widget(image: int = 0, size: int = 256) -> widgets.VBox:
    """A slider over the shipped qualities of the mean-scale hyperprior (:func:`lambda_draw`).

    Defined in book section *Transform coding with learned priors → Real bitstreams*.
    """
    qualities = shipped_qualities()
    if not qualities:
        raise ValueError(f"no {LAMBDA_MODEL} weights are shipped in {checkpoints.WEIGHTS_DIR}")
    slider = widgets.SelectionSlider(
        options=[(f"q{q}, λ = {codecs.lmbda(q):g}", q) for q in qualities],
        value=qualities[0], description="quality", continuous_update=False,
        layout=widgets.Layout(width="420px"), style={"description_width": "initial"})
    return _live(lambda quality: lambda_draw(quality, image, size), {"quality": slider})


# --------------------------------------------------------------------------- 2. lattice cells


def _a2_centers(radius: float) -> torch.Tensor:
    """The points of the unit-area hexagonal lattice within ``radius`` of the origin."""
    gen = Q.generator_matrix("A2")
    k = math.ceil(2 * radius / float(gen.norm(dim=1).min())) + 1
    r = torch.arange(-k, k + 1, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2) @ gen
    return pts[pts.norm(dim=1) <= radius + 1e-9]


def lattice_draw(mu_x: float = 0.0, mu_y: float = 0.0, sigma: float = 0.6,
                 radius: float = 2.5) -> tuple[Figure, Numbers]:
    """The unit-area hexagonal (A2) cells within ``radius`` of the origin, each coloured by its
    probability under ``N((mu_x, mu_y), sigma² I)``
    (:func:`nctutor.quant.lattice.hexagon_cell_probability`).

    The cell that contains the mean is outlined. Returns the figure and ``{"P_mean_cell",
    "bits_mean_cell"`` (``-log2`` of it), ``"P_drawn"`` (the sum over the drawn cells, at most 1),
    ``"P_max"``, ``"cells"``}. Defined in book section *Uniform scalar and lattice vector
    quantization → The probability of a hexagonal cell (Appendix E)*.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    mu = torch.tensor([mu_x, mu_y], dtype=torch.float64)
    centers = _a2_centers(radius)
    p = Q.hexagon_cell_probability(centers, mu, (sigma, sigma))
    home = Q.quantize_a2(mu)
    p_home = float(Q.hexagon_cell_probability(home[None], mu, (sigma, sigma))[0])
    nums = {"P_mean_cell": p_home, "bits_mean_cell": -math.log2(p_home),
            "P_drawn": float(p.sum()), "P_max": float(p.max()), "cells": len(centers)}

    fig = Figure(figsize=(5.6, 4.6))
    ax = fig.subplots()
    a = Q.A2_SIDE
    angles = np.arange(6) * np.pi / 3  # vertices at (+-a, 0) and (+-a/2, +-sqrt(3) a/2)
    unit = a * np.stack([np.cos(angles), np.sin(angles)], 1)
    cmap = mpl.colormaps["viridis"]
    norm = mpl.colors.Normalize(0.0, max(nums["P_max"], 1e-12))
    for c, pc in zip(centers.numpy(), p.tolist(), strict=True):
        ax.add_patch(Polygon(c + unit, closed=True, facecolor=cmap(norm(pc)), edgecolor="w",
                             lw=0.8))
    ax.add_patch(Polygon(home.numpy() + unit, closed=True, fill=False, edgecolor="C3", lw=2.5))
    ax.plot(mu_x, mu_y, "+", color="C3", ms=12, mew=2)
    t = np.linspace(0, 2 * np.pi, 200)
    for k in (1, 2):
        ax.plot(mu_x + k * sigma * np.cos(t), mu_y + k * sigma * np.sin(t), color="C3", lw=0.7,
                ls=":")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="P(cell)")
    ax.set_xlim(-radius - a, radius + a)
    ax.set_ylim(-radius - a, radius + a)
    ax.set_aspect("equal")
    ax.set_title(f"μ = ({mu_x:+.2f}, {mu_y:+.2f}), σ = {sigma:.2f}\nthe cell of μ has "
                 f"P = {p_home:.4f}, −log₂P = {nums['bits_mean_cell']:.2f} bits", fontsize=9)
    fig.tight_layout()
    return fig, nums


def lattice_widget() -> widgets.VBox:
    """Sliders for the mean and the scale of the Gaussian of :func:`lattice_draw`.

    Defined in book section *Uniform scalar and lattice vector quantization → The probability of a
    hexagonal cell (Appendix E)*.
    """
    def slider(description: str, value: float, lo: float, hi: float) -> widgets.FloatSlider:
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=0.05,
                                   description=description, continuous_update=False)

    return _live(lattice_draw, {"mu_x": slider("μx", 0.0, -1.5, 1.5),
                                "mu_y": slider("μy", 0.0, -1.5, 1.5),
                                "sigma": slider("σ", 0.6, 0.15, 2.0)})


# --------------------------------------------------------------------------- 3. the modulator

SIGNALS: tuple[str, ...] = ("constant", "sine", "noise")
"""Inputs of :func:`modulator_draw`: ``level`` is the constant, the amplitude of a sine of period
256 frames, or the half-width of the uniform white noise (seed 0)."""


def _signal(kind: str, level: float, T: int) -> torch.Tensor:
    t = torch.arange(T, dtype=torch.float64)
    if kind == "constant":
        return torch.full((T,), float(level), dtype=torch.float64)
    if kind == "sine":  # a period of 256 frames: slow against the frame rate
        return level * torch.sin(2 * math.pi * t / 256)
    if kind == "noise":
        gen = torch.Generator().manual_seed(0)
        return level * (2 * torch.rand(T, generator=gen, dtype=torch.float64) - 1)
    raise ValueError(f"signal must be one of {SIGNALS}, got {kind!r}")


def _ntf_squared(order: int, w: np.ndarray) -> np.ndarray:
    """``|NTF(e^{jw})|^2`` from :func:`nctutor.symbolic.deltasigma.ntf_magnitude_squared`; 1 for
    order 0 (no loop: the error reaches the bits unfiltered)."""
    if order == 0:
        return np.ones_like(w)
    return np.broadcast_to(sp.lambdify(sds.OMEGA, sds.ntf_magnitude_squared(order), "numpy")(w),
                           w.shape)


def modulator_draw(order: int = 1, signal: str = "sine", level: float = 0.5, T: int = 2048,
                   segments: int = 16) -> tuple[Figure, Numbers]:
    """Run the order-``order`` modulator (:func:`nctutor.quant.deltasigma.modulate`; order 0 is
    plain sign quantization, ``b = B(tanh c)``) on ``T`` frames of an input from :data:`SIGNALS`,
    and plot the first bits and the error spectrum ``|FFT(b - c)|^2`` against the white-noise
    model ``var(e) |NTF(e^{jw})|^2``.

    The spectrum is a periodogram averaged over ``segments`` pieces of ``T / segments`` frames
    (Bartlett's method), normalised so that a white error of variance ``v`` gives ``v`` at every
    frequency. Returns the figure and ``{"mean_b", "mean_c", "var_error"`` (``var(b - c)``),
    ``"var_e"`` (``var(b - y)``), ``"low"``, ``"high"``} where ``low`` and ``high`` are the mean
    spectrum in the lowest and highest eighth of ``[0, pi]``. Defined in book section
    *Delta-sigma modulation of binary latents: gradients and noise shaping → The white-noise model
    and the real modulator*.
    """
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
    if not (isinstance(T, int) and isinstance(segments, int) and segments >= 1
            and T % segments == 0 and T // segments >= 16):
        raise ValueError(f"T must be a multiple of segments with at least 16 frames each, got "
                         f"T={T!r}, segments={segments!r}")
    c = _signal(signal, level, T)
    if order == 0:
        y = c
        b = qds.binarize_ste(torch.tanh(c))
    else:
        b, y = qds.modulate(c, order=order, return_states=True)
    e = qds.quantization_error(b, y).numpy()
    r = (b - c).numpy()
    L = T // segments
    spec = (np.abs(np.fft.rfft(r.reshape(segments, L), axis=1)) ** 2).mean(0) / L
    w = np.linspace(0, np.pi, L // 2 + 1)
    model = e.var() * _ntf_squared(order, w)
    eighth = max(len(w) // 8, 1)
    nums = {"mean_b": float(b.mean()), "mean_c": float(c.mean()), "var_error": float(r.var()),
            "var_e": float(e.var()), "low": float(spec[1:eighth + 1].mean()),
            "high": float(spec[-eighth:].mean())}

    fig = Figure(figsize=(10, 3.4))
    ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    n_show = min(T, 256)  # one period of the sine
    t = np.arange(n_show)
    ax[0].step(t, b[:n_show].numpy(), where="mid", lw=0.8, color="0.6", label="bits $b$")
    ax[0].plot(t, c[:n_show].numpy(), "k", label="input $c$")
    win = 8
    ax[0].plot(t, np.convolve(b[:n_show].numpy(), np.ones(win) / win, mode="same"), "C0",
               label=f"mean of $b$ over {win} frames")
    ax[0].set_ylim(-1.3, 1.3)
    ax[0].set_xlabel("frame $i$")
    ax[0].legend(loc="upper right", fontsize=8)
    floor = 1e-6
    ax[1].semilogy(w[1:], np.maximum(spec[1:], floor), color="C0", lw=0.9,
                   label=r"$|\mathrm{FFT}(b - c)|^2$ (averaged)")
    ax[1].semilogy(w[1:], np.maximum(model[1:], floor), color="C3",
                   label=r"$\operatorname{var}(e)\,|\mathrm{NTF}(e^{j\omega})|^2$")
    ax[1].set_xlim(0, np.pi)
    ax[1].set_ylim(floor, 100)
    ax[1].set_xlabel(r"$\omega$ (radians per frame)")
    ax[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"order {order}, {signal} input (level {level:g}): mean of b over {T} frames "
                 f"{nums['mean_b']:+.3f} against mean of c {nums['mean_c']:+.3f}, "
                 f"var(b − c) = {nums['var_error']:.3f}", fontsize=10)
    fig.tight_layout()
    return fig, nums


def modulator_widget() -> widgets.VBox:
    """Order, input and level of :func:`modulator_draw`.

    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    The white-noise model and the real modulator*.
    """
    return _live(modulator_draw, {
        "order": widgets.ToggleButtons(options=[0, 1, 2], value=1, description="order"),
        "signal": widgets.ToggleButtons(options=list(SIGNALS), value="sine",
                                        description="input"),
        "level": widgets.FloatSlider(value=0.5, min=-0.95, max=0.95, step=0.05,
                                     description="level", continuous_update=False),
    })


# --------------------------------------------------------------------------- 4. conditional coding

BOTTLENECKS: dict[str, tuple[int, ...]] = {
    "⌊x̃/2⌋ (the page's)": (0, 0, 1, 1),
    "none (ỹ = x̃)": (0, 1, 2, 3),
    "is x̃ = 3?": (0, 0, 0, 1),
    "constant": (0, 0, 0, 0),
}
"""Conditional branches ``f`` of :func:`conditional_draw`: ``f[x~]`` for ``x~ = 0..3``."""

_RATES = (
    ("H_residual", r"$H(x - \tilde x)$"),
    ("H_conditional", r"$H(x \mid \tilde x)$"),
    ("I_prediction_residual", r"$I(\tilde x; r)$"),
    ("H_conditional_bottleneck", r"$H(x \mid \tilde y)$"),
    ("I_lost", r"$I(x; \tilde x \mid \tilde y)$"),
)


def conditional_draw(q: float = 0.25, bottleneck: str = "⌊x̃/2⌋ (the page's)"
                     ) -> tuple[Figure, Numbers]:
    """The rates of the bottleneck example (:func:`nctutor.symbolic.conditional.bottleneck_example`,
    prediction one level too low with probability ``q``) as bars, with the branch ``f`` of
    :data:`BOTTLENECKS`.

    Returns the figure and the dict of :func:`nctutor.symbolic.conditional.bottleneck_terms` in
    floats, plus ``"loss"`` = ``H(x | y~) - H(x - x~)`` (positive: the bottlenecked conditional
    coder loses to the residual coder). Defined in book section *Conditional coding versus
    residual coding → A bottleneck in the conditional branch*.
    """
    if bottleneck not in BOTTLENECKS:
        raise ValueError(f"bottleneck must be one of {list(BOTTLENECKS)}, got {bottleneck!r}")
    pmf = np.array(cc.bottleneck_example(q)["pmf"].evalf(), dtype=float)
    nums = cc.bottleneck_terms(pmf, BOTTLENECKS[bottleneck])
    nums["loss"] = nums["H_conditional_bottleneck"] - nums["H_residual"]

    fig = Figure(figsize=(7, 3.4))
    ax = fig.subplots()
    values = [nums[key] for key, _ in _RATES]
    colors = ["C0", "C2", "C1", "C3", "C7"]
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(values)), [label for _, label in _RATES])
    ax.set_ylabel("bits")
    ax.set_ylim(0, 1.15 * max(max(values), 1e-3))
    verdict = "loses to" if nums["loss"] > 1e-12 else "matches" if abs(nums["loss"]) <= 1e-12 \
        else "beats"
    ax.set_title(f"q = {q:.2f}, f = {bottleneck}\nthe bottlenecked conditional coder {verdict} "
                 f"the residual coder by {abs(nums['loss']):.3f} bits", fontsize=9)
    fig.tight_layout()
    return fig, nums


def conditional_widget() -> widgets.VBox:
    """A slider for ``q`` and a choice of conditional branch for :func:`conditional_draw`.

    Defined in book section *Conditional coding versus residual coding → A bottleneck in the
    conditional branch*.
    """
    return _live(conditional_draw, {
        "q": widgets.FloatSlider(value=0.25, min=0.01, max=0.99, step=0.01, description="q",
                                 continuous_update=False),
        "bottleneck": widgets.Dropdown(options=list(BOTTLENECKS), value="⌊x̃/2⌋ (the page's)",
                                       description="f(x̃)"),
    })
