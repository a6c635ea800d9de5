"""Quantizers that are the lessons themselves (written by hand): delta-sigma, lattices.

:mod:`~nctutor.quant.deltasigma` belongs to the chapter *Delta-sigma modulation of binary latents:
gradients and noise shaping*, :mod:`~nctutor.quant.lattice` to the chapter *Uniform scalar and
lattice vector quantization*.
"""
