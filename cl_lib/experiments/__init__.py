"""The book layer: helpers that only the chapters need.

The engine (``cl_lib.losses``, ``cl_lib.train``, ...) imports nothing from here; these
modules import the engine freely.

- ``toy``             -- the rank-1 subspace toy of Li & Pimentel-Alarcón (2024),
  chapter 1
- ``sphere``          -- points on the sphere: energies (kernel table of
  ``cl_lib.kernels``), one free-point minimiser, known configurations, one configuration
  distance (ch. 2-5)
- ``theory``          -- NSCL gap, CDNV, negative-sample bounds, LDA, alpha-CL (chapters
  6-8)
- ``results``         -- load, tabulate and plot the results JSON files of
  ``book/results/``; seed summaries and the book's verdicts
- ``grid``            -- the planned runs of chapters 10-12 by tier, their commands
  and time estimates
- ``study``           -- a chapter's results joined to its plan: groups, keys,
  what is missing (chapters 10-12)
- ``viz``             -- ``show_plotly``: interactive figures that work live, in HTML
  and under nbval
"""
