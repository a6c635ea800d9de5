"""Quantizers that are the lessons themselves (written by hand): delta-sigma, lattices."""
