"""Delta-sigma (differential) modulation of a latent into binary codes, in PyTorch.

Written by hand because it *is* the lesson: chapter *Delta-sigma modulation
of binary latents: gradients and noise shaping* (``book/deltasigma/derivations.md``),
after Appendix A and B of the supplement of Sun et al. (``sun_deltasigma``).

The latent ``c`` is a tensor with time (the frame index ``i`` of the paper) along
one dimension ``dim`` (default 0); every other dimension is a batch/channel/pixel
dimension and is modulated independently.  So ``(T,)``, ``(T, C, H, W)`` with
``dim=0`` and ``(B, T, C)`` with ``dim=1`` all work, for any length ``T >= 0``.

First order, Eq. (A.1)-(A.2)::

    y[i] = y[i-1] + c[i] - b[i-1]
    b[i] = B(tanh y[i])

Second order, Eq. (B.1) with (A.2)::

    y[i] = c[i] + 2 (y[i-1] - b[i-1]) - (y[i-2] - b[i-2])

All states before ``i = 0`` are zero.  ``B`` is the straight-through binariser:
forward ``+1`` where its input is ``>= 0`` and ``-1`` elsewhere, backward the
identity (derivative 1), so ``d b / d y = 1 - tanh^2 y`` (Eq. (A.3)).

There is no separate decoder in the supplement: the signal transfer function is 1
(Eq. (B.4)), so the bits ``b`` themselves are the (noise-shaped) estimate of ``c``;
in the paper a learned decoder consumes them.  :func:`shape_noise` applies the noise
transfer function ``(1 - z^-1)^n`` and makes the identity ``b = c + NTF e`` checkable.
"""

from __future__ import annotations

import torch

__all__ = ["binarize_ste", "modulate", "quantization_error", "shape_noise"]

ORDERS = (1, 2)


def _check_tensor(x: object, name: str, allow_scalar: bool = False) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must have a floating point dtype, got {x.dtype}")
    if x.dim() == 0 and not allow_scalar:
        raise ValueError(f"{name} must have at least one dimension (time), got a scalar")
    return x


def _check_order(order: object, any_positive: bool = False) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an int, got {type(order).__name__}")
    if any_positive and order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if not any_positive and order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order}")
    return order


def _check_dim(dim: object, x: torch.Tensor) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim={dim} is out of range for a tensor with {x.dim()} dimensions")
    return dim


def binarize_ste(x: torch.Tensor) -> torch.Tensor:
    """The binary function ``B`` of Eq. (A.2): sign forward (``B(0) = +1``), identity backward.

    ``x + (sign(x) - x).detach()`` has the value ``sign(x)`` and the gradient of ``x``. The
    binariser of :func:`modulate`, book section *Delta-sigma modulation of binary latents: gradients
    and noise shaping → The modulator*; no page calls it directly.
    """
    x = _check_tensor(x, "x", allow_scalar=True)
    hard = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    return x + (hard - x).detach()


def modulate(
    c: torch.Tensor, order: int = 1, dim: int = 0, return_states: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Delta-sigma modulate ``c`` along ``dim`` into codes ``b`` in ``{-1, +1}``.

    Args:
        c: latent, floating point, time along ``dim``.
        order: 1 (Eq. (A.1)) or 2 (Eq. (B.1)).
        dim: the time dimension.
        return_states: also return the integrator states ``y`` (same shape as ``c``).

    Returns:
        ``b`` (same shape and dtype as ``c``), or ``(b, y)``.  Gradients flow to ``c``
        through the straight-through binariser: ``d b[m] / d c[m-k]`` is Eq. (A.7)
        for order 1 and the recursion of the book for order 2.

    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    The modulator*.
    """
    c = _check_tensor(c, "c")
    order = _check_order(order)
    _check_dim(dim, c)
    ct = c.movedim(dim, 0)
    if ct.shape[0] == 0:
        empty = torch.empty_like(c)
        return (empty, empty.clone()) if return_states else empty
    zero = torch.zeros_like(ct[0])
    y_prev, b_prev = [zero, zero], [zero, zero]  # (step i-1, step i-2)
    ys, bs = [], []
    for i in range(ct.shape[0]):
        if order == 1:  # Eq. (A.1)
            y = y_prev[0] + ct[i] - b_prev[0]
        else:  # Eq. (B.1)
            y = ct[i] + 2 * (y_prev[0] - b_prev[0]) - (y_prev[1] - b_prev[1])
        b = binarize_ste(torch.tanh(y))  # Eq. (A.2)
        ys.append(y)
        bs.append(b)
        y_prev, b_prev = [y, y_prev[0]], [b, b_prev[0]]
    b_out = torch.stack(bs).movedim(0, dim)
    if return_states:
        return b_out, torch.stack(ys).movedim(0, dim)
    return b_out


def quantization_error(b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The additive quantization noise ``e = b - y`` of Eq. (B.2).

    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Noise shaping*.
    """
    b, y = _check_tensor(b, "b"), _check_tensor(y, "y")
    if b.shape != y.shape:
        raise ValueError(
            f"b and y must have the same shape, got {tuple(b.shape)} and {tuple(y.shape)}"
        )
    return b - y


def shape_noise(e: torch.Tensor, order: int = 1, dim: int = 0) -> torch.Tensor:
    """Filter ``e`` by the noise transfer function ``(1 - z^-1)^order`` along ``dim``.

    ``order`` first differences with zero initial condition (``e[-1] = 0``): order 1
    gives ``e[i] - e[i-1]``, order 2 ``e[i] - 2 e[i-1] + e[i-2]`` (Eq. (B.3)); any
    ``order >= 1`` is accepted.  With ``e`` from :func:`quantization_error` of the order-1
    or order-2 modulator this reproduces ``b - c`` exactly.
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Noise shaping*.
    """
    e = _check_tensor(e, "e")
    order = _check_order(order, any_positive=True)
    _check_dim(dim, e)
    if e.shape[dim] == 0:
        return e.clone()
    zero = torch.zeros_like(e.narrow(dim, 0, 1))
    out = e
    for _ in range(order):  # each pass multiplies by (1 - z^-1)
        out = torch.diff(out, dim=dim, prepend=zero)
    return out
