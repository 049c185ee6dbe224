"""Beam pipelines over the `vidclass` library: the only package that imports apache_beam."""
