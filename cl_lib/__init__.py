"""cl_lib: the small library behind the contrastive-learning book.

Two layers. The **engine** is what a user installs and trains with (each module readable
top to bottom):

- ``cl_lib.profile``     -- the ``quick``/``full`` switch (``CL_BOOK_PROFILE``),
  seeding, devices
- ``cl_lib.losses``      -- InfoNCE, DCL, DHEL, KCL, CLOA, VICReg, Barlow Twins, SupCon,
  NSCL
- ``cl_lib.metrics``     -- alignment, uniformity, (effective) rank, variance,
  Wasserstein uniformity
- ``cl_lib.data``        -- cached uint8 data sets and the GPU-resident loader
- ``cl_lib.augment``     -- batched SimCLR augmentations as tensor ops
- ``cl_lib.models``      -- encoders and projection heads
- ``cl_lib.train``       -- the trainer and its CLI (``cl-train``)
- ``cl_lib.evaluate``    -- kNN, linear probe and held-out embedding metrics
- ``cl_lib.stats``       -- the verdict rule: intervals of differences over seeds,
  Holm, equivalence (TOST), paired tests on per-image correctness
- ``cl_lib.distributed`` -- DDP helpers; all-gather *with* gradient so negatives span
  all GPUs
- ``cl_lib.io``          -- atomic writes, hardware description, library commit

The **book layer**, ``cl_lib.experiments``, holds what only the chapters need (the
rank-1 toy, sphere geometry, theory helpers, results plumbing, plotting). The engine
imports nothing from it."""

from cl_lib.profile import (  # noqa: F401
    by_profile,
    default_device,
    get_profile,
    mix_seed,
    seed_everything,
)

__version__ = "0.1.0"
