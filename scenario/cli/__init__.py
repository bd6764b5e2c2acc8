"""The ``scenario`` command line (front end): it calls the library; the library never imports it.

The entry point is :func:`scenario.cli.main.main`; ``python -m scenario.cli`` runs it too.
"""
