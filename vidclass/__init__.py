"""vidclass: batch video classification on TensorFlow and Apache Beam.

Kept import-light on purpose: decode worker processes import this package and must not pay for TensorFlow.
"""
__version__ = "0.1.0"
