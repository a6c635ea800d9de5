"""The widgets of nctutor.widgets: their pure draw functions and the controls that call them."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nctutor import data, widgets  # noqa: E402
from nctutor.quant import lattice as Q  # noqa: E402

# --------------------------------------------------------------------------- λ slider


def _kodak_available() -> bool:
    try:
        data.kodak()[0]
    except Exception:
        return False
    return True


needs_kodak = pytest.mark.skipif(not _kodak_available(), reason="Kodak images not available")


@needs_kodak
def test_lambda_rate_and_quality_grow_with_quality():
    qualities = widgets.shipped_qualities()
    assert len(qualities) >= 2
    points = [widgets.lambda_draw(q, size=64)[1] for q in qualities]
    for lo, hi in zip(points, points[1:], strict=False):
        assert hi["lambda"] > lo["lambda"]
        assert hi["bpp"] > lo["bpp"]
        assert hi["psnr"] > lo["psnr"]
    # the bpp is the real file: 8 bits per byte over the crop's pixels
    assert points[0]["bpp"] == pytest.approx(8 * points[0]["bytes"] / 64**2)


@needs_kodak
def test_lambda_widget_redraws_on_the_slider():
    box = widgets.lambda_widget(size=64)
    slider = box.children[0]
    first = box.numbers["quality"]
    slider.value = widgets.shipped_qualities()[-1]
    assert box.numbers["quality"] == widgets.shipped_qualities()[-1] != first


def test_lambda_rejects_a_quality_not_shipped():
    with pytest.raises(ValueError, match="shipped at qualities"):
        widgets._shipped_model(99)


# --------------------------------------------------------------------------- lattice


def test_lattice_central_cell_is_most_probable_at_zero_mean():
    _, nums = widgets.lattice_draw(0.0, 0.0, 0.6)
    assert nums["P_drawn"] <= 1 + 1e-9
    assert nums["P_max"] == pytest.approx(nums["P_mean_cell"])
    assert nums["bits_mean_cell"] == pytest.approx(-math.log2(nums["P_mean_cell"]))
    assert nums["cells"] == 19  # the origin, its 6 neighbours and the 12 of the next ring


def test_lattice_mean_cell_follows_the_mean():
    # mu at a neighbouring lattice point: the cell of mu is that one, and as likely as the
    # origin's cell was with mu = 0 (the Gaussian is isotropic and the lattice invariant)
    neighbour = Q.generator_matrix("A2")[0].tolist()
    _, at_zero = widgets.lattice_draw(0.0, 0.0, 0.4)
    _, moved = widgets.lattice_draw(*neighbour, 0.4)
    assert moved["P_mean_cell"] == pytest.approx(at_zero["P_mean_cell"], rel=1e-9)
    # a wide Gaussian puts less mass on the drawn cells and less on the cell of its mean
    _, wide = widgets.lattice_draw(0.0, 0.0, 1.5)
    assert wide["P_drawn"] < at_zero["P_drawn"] and wide["P_mean_cell"] < at_zero["P_mean_cell"]


def test_lattice_widget_redraws_on_each_slider():
    box = widgets.lattice_widget()
    before = box.numbers["P_mean_cell"]
    box.children[2].value = 1.2  # sigma
    assert box.numbers["P_mean_cell"] < before
    box.children[0].value = 0.5  # mu_x: off the centre of the cell
    assert box.numbers["P_mean_cell"] < box.numbers["P_max"] + 1e-12


# --------------------------------------------------------------------------- modulator


def test_order0_error_spectrum_is_flat_and_shaping_lowers_low_frequencies():
    _, n0 = widgets.modulator_draw(order=0, signal="noise", level=0.5)
    _, n1 = widgets.modulator_draw(order=1, signal="noise", level=0.5)
    _, n2 = widgets.modulator_draw(order=2, signal="noise", level=0.5)
    assert n0["low"] == pytest.approx(n0["high"], rel=0.25)  # white: flat
    assert n1["low"] < n0["low"] / 10 and n1["high"] > n0["high"]
    assert n2["low"] < n1["low"]


@pytest.mark.parametrize("order", [1, 2])
def test_modulator_bits_track_a_constant(order):
    _, nums = widgets.modulator_draw(order=order, signal="constant", level=0.3)
    assert nums["mean_b"] == pytest.approx(0.3, abs=0.01)
    _, plain = widgets.modulator_draw(order=0, signal="constant", level=0.3)
    assert plain["mean_b"] == 1.0  # no loop: every bit is the sign


def test_modulator_rejects_bad_controls():
    with pytest.raises(ValueError, match="order"):
        widgets.modulator_draw(order=3)
    with pytest.raises(ValueError, match="signal"):
        widgets.modulator_draw(signal="square")


def test_modulator_widget_redraws():
    box = widgets.modulator_widget()
    box.children[0].value = 0
    box.children[1].value = "noise"
    low0 = box.numbers["low"]
    box.children[0].value = 2
    assert box.numbers["low"] < low0 / 10


# --------------------------------------------------------------------------- conditional


@pytest.mark.parametrize("q", [0.1, 0.25, 0.6])
@pytest.mark.parametrize("bottleneck", list(widgets.BOTTLENECKS))
def test_conditional_identity_and_bottleneck(q, bottleneck):
    _, t = widgets.conditional_draw(q, bottleneck)
    assert t["I_prediction_residual"] == pytest.approx(t["H_residual"] - t["H_conditional"],
                                                       abs=1e-12)
    assert t["H_conditional_bottleneck"] >= t["H_conditional"] - 1e-12
    if bottleneck.startswith("none"):
        assert t["I_lost"] == pytest.approx(0, abs=1e-12)
        assert t["loss"] < 0  # without a bottleneck the conditional coder wins


def test_conditional_default_is_the_page_example():
    from nctutor.symbolic import conditional as cc

    ex = cc.bottleneck_example()
    _, t = widgets.conditional_draw()
    for key, value in ex["rates"].items():
        assert t[key] == pytest.approx(float(value), abs=1e-12)
    assert t["loss"] == pytest.approx(float(ex["loss"]), abs=1e-12)


def test_conditional_widget_redraws():
    box = widgets.conditional_widget()
    box.children[1].value = "constant"
    # a constant branch tells the decoder nothing: H(x | y~) = H(x)
    pmf = np.array([[3, 0, 0, 0], [1, 3, 0, 0], [0, 1, 3, 0], [0, 0, 1, 4]]) / 16
    px = pmf.sum(1)
    assert box.numbers["H_conditional_bottleneck"] == pytest.approx(-(px * np.log2(px)).sum())


def test_show_refuses_other_widgets():
    import ipywidgets

    with pytest.raises(TypeError, match="show"):
        widgets.show(ipywidgets.VBox())
