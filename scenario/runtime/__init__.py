"""Threads and event loops the library owns: the shared worker pool and the loop helpers."""
