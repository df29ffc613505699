"""Code that runs inside the student's kernel, injected by the hidden preamble.

It is self-contained (standard library, NumPy, Keras) because it is shipped into the kernel as
source, never imported from the grader's package: the plan (notebook/plan.py) sends its modules'
sources in the order of their relative imports, and the preamble makes them the package
``_autograder_runtime`` there.  It computes no score: it only serves MNIST offline, seeds, records
``fit``/``predict``/``evaluate`` calls and exports each question's artifacts for the clean scoring
process.  Its modules, one job each:

- ``format``: the capture's file names and keys, which the scoring process reads too;
- ``state``: the shared state and small helpers;
- ``fingerprints``: row hashes and projections of training rows (test images among them);
- ``inputs``: what a call's ``x`` is (arrays, structures, tf.data read statically);
- ``batches``: generators and PyDatasets, followed while Keras pulls their batches;
- ``training``: training outside fit (train_on_batch, custom loops);
- ``lineage``: every change of a model's weights accounted for;
- ``acceleration``: fits run several batches per call into TensorFlow;
- ``recorder``: the wrappers of Keras' methods;
- ``boot``: ``install``: MNIST offline, seeds, the wrappers in place;
- ``questions``: ``begin`` and ``capture``, each question's artifacts exported;
- ``memo``: the instructor's first cells, recorded and replayed.

The hidden steps call what this module exposes: ``install``, ``begin``, ``capture`` and the
``memo_*`` functions; ``_state["config"]`` is the configuration ``install`` was given.
"""

from .boot import install   # noqa: F401 - what the hidden steps call
from .memo import memo_record, memo_restore, memo_snapshot
from .questions import begin, capture
from .state import _state   # noqa: F401 - _state["config"]: the configuration install was given (otter's plugin)
