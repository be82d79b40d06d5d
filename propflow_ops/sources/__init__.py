"""Sources: fetch only.

boto3 / SQLAlchemy / redis / HTTP -> DataFrames or plain dicts. No thresholds, no
judging, no printing. Clients are created inside functions (or passed in), and
every network call has a timeout. Checks (``propflow_ops.checks``) judge what
these return.
"""
