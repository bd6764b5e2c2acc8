"""Benchmarks: each module measures one claim and prints ratios measured side by side in one run.

Run one from the repository root as a module, ``.venv/bin/python -m bench.batch_scale``, or all of
them with ``make bench`` (``python -m bench.run_all``). Being a package is what lets every script
import the shared helpers as ``bench.batch_common`` with no ``sys.path`` edits; docs/performance.md
lists the scripts and what each one measures.
"""
