"""Local Beam engines for tests: a multi-process Flink cluster with Beam's job server, and Prism.

Artifacts come from ``engines/fetch.sh`` (into ``.engines/``); ``engines.cluster`` starts and stops the
processes. See ``engines/FINDINGS.md``.
"""
