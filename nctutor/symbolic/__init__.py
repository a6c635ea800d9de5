"""SymPy derivations of the book: one module per topic, returning SymPy objects."""
