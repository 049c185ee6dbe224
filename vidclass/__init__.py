"""vidclass: batch video classification on TensorFlow and Apache Beam.

Kept import-light on purpose: decode worker processes import this package and must not pay for TensorFlow.
"""
import os as _os

# TensorFlow turns on its oneDNN CPU kernels by itself only where the CPU has AVX-512 VNNI/BF16 or AMX;
# elsewhere (AMD EPYC, Skylake-era Xeons: much of the cloud, Dataflow's default workers included) it runs
# its own kernels, measured here (bench/models.py) 1.7-4.0x slower to train the zoo's models and 1.3-2.6x
# slower to score them. TensorFlow reads the switch once, when it loads, so it is set here, before any
# vidclass module (or a Beam worker unpickling one) imports TensorFlow. TF_ENABLE_ONEDNN_OPTS=0 in the
# environment still turns them off.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
