"""The hyperprior codecs with ``y`` coded exactly, one quantized Gaussian per symbol.

Defined in book section "Transform coding with learned priors → Exact Gaussian coding".

CompressAI's :class:`~compressai.entropy_models.GaussianConditional` does not code ``y`` with
the Gaussian its hyperprior predicts: it rounds each ``sigma`` *up* to one of 64 log-spaced
table scales and uses precomputed 16-bit CDF tables, which costs about 1 % over
``-sum log2 P`` on Kodak. The classes here code every symbol with its own quantized Gaussian
(:func:`nctutor.entropy.gaussian.encode_gaussian`) instead:

* :class:`ExactScaleHyperprior`, :class:`ExactMeanScaleHyperprior`: CompressAI's
  ``bmshj2018-hyperprior`` and ``mbt2018-mean`` with ``compress``/``decompress`` replaced for
  ``y`` (``z`` keeps CompressAI's ``EntropyBottleneck``); same ``{"strings": [y_strings,
  z_strings], "shape"}`` layout and the same ``y_hat``, hence the same reconstruction;
* :func:`exact`: a trained CompressAI model → its exact-coding twin (weights copied).

*Determinism.* The decoder recomputes the scales with ``h_s`` from the decoded ``z``; the coder
needs them bit-identical to the encoder's (CompressAI only needs the same table *index*, which
tolerates small differences except at the table's boundaries). On the CPU they are identical
whatever ``torch.get_num_threads()`` is (checked in ``tests/test_coding.py``; ``g_s``'s output is
not: ``x_hat`` may differ in the last float bit, with either coder); across machines or
on GPUs with nondeterministic convolution algorithms they need not be, and the stream's CRC then
reports the mismatch instead of producing a wrong image.
"""

from __future__ import annotations

import torch
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

from ..entropy.gaussian import decode_gaussian, encode_gaussian

__all__ = ["ExactScaleHyperprior", "ExactMeanScaleHyperprior", "EXACT_CLASSES", "exact"]


class _ExactY:
    """Codes ``y`` of a hyperprior model with :func:`encode_gaussian` (one string per image).

    The symbols are CompressAI's: ``round(y - μ)`` (``μ = 0`` without means), coded with the
    zero-mean Gaussian of scale ``max(σ, 0.11)`` — exactly the likelihood that ``forward``
    computes and training minimizes (``GaussianConditional._likelihood``).
    """

    gaussian_conditional: torch.nn.Module

    def _scales(self, scales_hat: torch.Tensor) -> torch.Tensor:
        return self.gaussian_conditional.lower_bound_scale(scales_hat)

    def _encode_y(self, y, scales_hat, means_hat=None) -> list[bytes]:
        q = self.gaussian_conditional.quantize(y, "symbols", means_hat)
        s = self._scales(scales_hat)
        return [encode_gaussian(q[i], None, s[i]) for i in range(y.size(0))]

    def _decode_y(self, strings, scales_hat, means_hat=None) -> torch.Tensor:
        if len(strings) != scales_hat.size(0):
            raise ValueError(f"{len(strings)} y strings for a batch of {scales_hat.size(0)}")
        s = self._scales(scales_hat)
        q = torch.stack([decode_gaussian(b, None, s[i]) for i, b in enumerate(strings)])
        return self.gaussian_conditional.dequantize(q.to(scales_hat.device), means_hat,
                                                    scales_hat.dtype)


class ExactScaleHyperprior(_ExactY, ScaleHyperprior):
    """``bmshj2018-hyperprior`` (Ballé et al. 2018) with ``y`` coded by :func:`encode_gaussian`.

    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        y_strings = self._encode_y(y, self.h_s(z_hat))
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        if not isinstance(strings, list) or len(strings) != 2:
            raise ValueError("strings must be [y_strings, z_strings]")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        y_hat = self._decode_y(strings[0], self.h_s(z_hat))
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


class ExactMeanScaleHyperprior(_ExactY, MeanScaleHyperprior):
    """``mbt2018-mean`` (Minnen et al. 2018) with ``y`` coded by :func:`encode_gaussian`.

    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        scales_hat, means_hat = self.h_s(z_hat).chunk(2, 1)
        y_strings = self._encode_y(y, scales_hat, means_hat)
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        if not isinstance(strings, list) or len(strings) != 2:
            raise ValueError("strings must be [y_strings, z_strings]")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        scales_hat, means_hat = self.h_s(z_hat).chunk(2, 1)
        y_hat = self._decode_y(strings[0], scales_hat, means_hat)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}


#: CompressAI class → its exact-coding twin.
EXACT_CLASSES: dict[type, type] = {
    ScaleHyperprior: ExactScaleHyperprior,
    MeanScaleHyperprior: ExactMeanScaleHyperprior,
}


def exact(model: torch.nn.Module) -> torch.nn.Module:
    """The exact-coding twin of a CompressAI ``ScaleHyperprior`` or ``MeanScaleHyperprior``.

    A new model of the matching ``Exact…`` class with ``model``'s state dict (weights and entropy
    coder tables), on its device and in its train/eval mode; ``model`` is left unchanged, and
    ``model.nctutor`` (see :func:`nctutor.zoo.load`) is copied with ``"coder": "exact"`` added.
    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """
    cls = EXACT_CLASSES.get(type(model))
    if cls is None:
        known = ", ".join(c.__name__ for c in EXACT_CLASSES)
        raise TypeError(f"exact() takes a {known}, got {type(model).__name__} (the factorized "
                        f"prior has no Gaussian to code exactly)")
    twin = cls(N=int(model.N), M=int(model.M))
    twin.load_state_dict(model.state_dict())
    param = next(model.parameters())
    twin.to(param.device).train(model.training)
    if hasattr(model, "nctutor"):
        twin.nctutor = {**model.nctutor, "coder": "exact"}
    return twin
