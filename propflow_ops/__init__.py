"""propflow-ops: PropFlow's operational runbooks as executable, parameterized notebooks."""

import sys as _sys

__version__ = "0.1.0"

# jsonschema (imported by nbformat and papermill) builds a lark grammar for its "iri" format checker when
# rfc3987_syntax is installed: 2 s of every command's start on this machine, for a format no notebook
# schema uses. A None entry makes that optional import fail, and jsonschema skips the checker.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
