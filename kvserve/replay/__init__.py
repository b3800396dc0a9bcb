"""Trace replay: how much prefill a KV-cache store would save on a serving trace.

``trace`` reads Mooncake-format traces, ``sim`` replays one against a model
of the store (no daemon; no capacity = an unbounded cache = the best hit
ratio the trace allows), ``drive`` replays it against running daemons with
real puts and gets, and ``report`` holds what both produce.
"""
