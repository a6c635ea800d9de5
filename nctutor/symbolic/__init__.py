"""SymPy derivations of the book: one module per topic, returning SymPy objects.

One module per chapter: :mod:`~nctutor.symbolic.rounding` (*From rounding to bits*),
:mod:`~nctutor.symbolic.deltasigma` (*Delta-sigma modulation of binary latents: gradients and
noise shaping*), :mod:`~nctutor.symbolic.conditional` (*Conditional coding versus residual
coding*), :mod:`~nctutor.symbolic.lattice` (*Uniform scalar and lattice vector quantization*) and
:mod:`~nctutor.symbolic.kkt` (*KKT conditions and the latent shift's premise*).
"""
