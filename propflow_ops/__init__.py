"""propflow-ops: PropFlow's operational runbooks as executable, parameterized notebooks."""

import sys as _sys
import warnings as _warnings

__version__ = "0.1.0"

# jsonschema (imported by nbformat and papermill) builds a lark grammar for its "iri" format checker when
# rfc3987_syntax is installed: 2 s of every command's start on this machine, for a format no notebook
# schema uses. A None entry makes that optional import fail, and jsonschema skips the checker.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

# Two warnings that third-party imports print on their own and that say nothing about a run: urllib3's
# optional SOCKS module without PySocks (requests silences it, but only with a filter it adds when it is
# first imported), and platformdirs' fallback when XDG_RUNTIME_DIR is unset (pgserver's import). Filters
# are process-wide and ``warnings.catch_warnings`` is not thread-safe: a thread leaving such a block puts
# back the filters it saw on entering it, dropping any added meanwhile by another thread, and the sandbox
# starts its parts in threads. So the filters are set here, once, before any thread starts, and the
# package itself never uses ``catch_warnings`` (tests/foundation/test_warnings.py proves both). Without them a
# command's one-line error could arrive as three lines, and a notebook's output could carry the warning.
_warnings.filterwarnings("ignore", message=r"SOCKS support in urllib3 requires")
_warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR is not set")
