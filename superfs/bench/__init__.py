"""Benchmarks that ship with SuperFS: ``superfs bench md | io | footprint | scaling | peers``.

Each module measures one thing and prints one JSON object per result (see
:func:`superfs.bench.report.emit`); none asserts a time. Figures are compared
against a baseline measured in the same run (a local directory, a FUSE
passthrough), never against a remembered number.
"""
