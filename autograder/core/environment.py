"""The environment of each process the grader starts: student kernels and the scoring process.

Each is this process's environment with a few variables set; TensorFlow's C++ logs are
always filtered, and the kernels share thread caps and hash seed so that a notebook
trains the same way under `autograder grade` and under otter.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")
ERRORS_ONLY, SILENT = "2", "3"     # TF_CPP_MIN_LOG_LEVEL: no info/warnings; nothing at all
# What a grading kernel inherits of the grader's environment: where programs and libraries are,
# and the locale.  Nothing else: a token or password in the instructor's shell stays there.
KERNEL_INHERITS = ("PATH", "LD_LIBRARY_PATH", "LANG", "LANGUAGE", "TZ", "TERM")


def process_env(tf_log_level: str, **extra: str) -> dict[str, str]:
    """This process's environment, TensorFlow's C++ logs filtered down to ``tf_log_level``, plus ``extra``."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL=tf_log_level, **extra)


def kernel_env(threads: int) -> dict[str, str]:
    """A grading kernel's (`autograder grade`, otter): thread caps and hash seed make training reproducible.
    Of the grader's own variables it keeps only ``KERNEL_INHERITS`` and the locale (``LC_*``)."""
    kept = {k: v for k, v in os.environ.items() if k in KERNEL_INHERITS or k.startswith("LC_")}
    # ERRORS_ONLY: a kernel's TensorFlow errors stay in kernel.log for the instructor.
    return dict(kept, TF_CPP_MIN_LOG_LEVEL=ERRORS_ONLY, **{var: str(threads) for var in THREAD_VARS},
                PYTHONHASHSEED="0", MPLBACKEND="agg", KERAS_BACKEND="tensorflow", PYTHONWARNINGS="ignore")


def scoring_env() -> dict[str, str]:
    """The scoring process's: it only loads the captured models and measures them, on the CPU.  The
    hidden suite uses no third-party pytest plugin; importing them would slow every session."""
    return process_env(SILENT, PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
