"""``python -m propflow_ops.sandbox [--scenario NAME]... [--list]``."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
