"""cl_lib: the small library behind the contrastive-learning book.

Modules (each readable top to bottom):

- ``cl_lib.profile``  -- the ``quick``/``full`` switch (``CL_BOOK_PROFILE``), seeding, devices
- ``cl_lib.losses``   -- InfoNCE, DCL, DHEL, KCL, CLOA, VICReg, Barlow Twins, SupCon, NSCL
- ``cl_lib.metrics``  -- alignment, uniformity, (effective) rank, variance, Wasserstein uniformity
- ``cl_lib.geometry`` -- points on the sphere, energies, energy minimisers, known configurations
- ``cl_lib.toy``      -- the rank-1 subspace toy of the CLOA paper
- ``cl_lib.data`` / ``cl_lib.augment`` -- GPU-resident data sets, loaders and batched augmentations
- ``cl_lib.models`` / ``cl_lib.train`` / ``cl_lib.evaluate`` -- encoders, trainer + CLI, kNN / linear probe
- ``cl_lib.distributed`` -- DDP helpers; all-gather *with* gradient so negatives span all GPUs
- ``cl_lib.theory``   -- helpers of chapters 6-8 (NSCL gap, CDNV, negative-sample bounds, LDA, alpha-CL)
- ``cl_lib.hem_experiments`` -- free-point traces and Monte-Carlo estimates of chapters 4-5
- ``cl_lib.results``  -- load and plot the results JSON files that full runs leave in ``book/results/``
- ``cl_lib.viz``      -- ``show_plotly``: interactive figures that work live, in the HTML book and under nbval
"""
from cl_lib.profile import get_profile, by_profile, seed_everything, default_device  # noqa: F401

__version__ = "0.1.0"
