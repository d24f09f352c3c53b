"""Skipping unchanged nodes: fingerprints of inputs, parameters and code (``fingerprints``), and the
runner that uses them (``runner``)."""
