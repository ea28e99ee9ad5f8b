"""Benchmarks of jaxhash's hot paths; each prints JSON lines and times a reference in-process."""
