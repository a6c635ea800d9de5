"""SymPy derivations of the book: one module per topic, returning SymPy objects.

One module per chapter: :mod:`~nctutor.symbolic.rounding` (chapter *From rounding to bits*),
:mod:`~nctutor.symbolic.deltasigma` (chapter *Delta-sigma modulation of binary latents: gradients
and noise shaping*), :mod:`~nctutor.symbolic.conditional` (chapter *Conditional coding versus
residual coding*), :mod:`~nctutor.symbolic.lattice` (chapter *Uniform scalar and lattice vector
quantization*) and :mod:`~nctutor.symbolic.kkt` (chapter *KKT conditions and the latent shift's
premise*).
"""
