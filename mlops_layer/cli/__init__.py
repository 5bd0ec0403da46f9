"""The ``mlops`` command line: parses, calls :mod:`mlops_layer.api`, renders. No decision lives here."""
