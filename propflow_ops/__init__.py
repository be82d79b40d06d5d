"""propflow-ops: PropFlow's operational runbooks as executable, parameterized notebooks."""

__version__ = "0.1.0"
