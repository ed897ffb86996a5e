"""Code shared by the chapters of *Deep Learning Theory and Non-Convex Optimization*.

One module per topic (``implicit_bias``, ``landscape``, ``lqr``, ...) plus small shared
modules: :mod:`helpers.repro` (seeds, threads, scale), :mod:`helpers.plotting` (house
style), :mod:`helpers.widgets` (live widgets and their static fallback) and
:mod:`helpers.claims` (the checked-claims tables).

Nothing heavy is imported here: a chapter that only needs numpy never loads torch.
"""

__version__ = "0.1.0"
