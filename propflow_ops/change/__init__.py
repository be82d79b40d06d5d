"""Change control on ``apply``: confirm, lock, protect, verify, undo (issue 17, CONTRACT.md section 7).

- :mod:`.target`: is the target the sandbox? (a marker trusted only when every target is that sandbox's
  loopback address), else a change needs a confirmation;
- :mod:`.confirm`: the change options a run hands its kernel (``--yes``, ``--reason``, ``--no-snapshot``,
  ``--force``), the notebook's ``confirm`` parameter, and the terminal prompt between kernel and runner;
- :mod:`.lock`: the team-wide lock per resource (DynamoDB conditional write, or a local fcntl lock file);
- :mod:`.protect`: an RDS snapshot, the S3 keys and versioning state, before a step that can destroy;
- :mod:`.verify`: a bounded wait for the change to take effect, ``verified`` or ``not verified`` with what
  was seen;
- :mod:`.audit`: the ``action`` events in the incident record (before a step starts and after it ends);
- :mod:`.apply`: the order of all of the above for one step (what :func:`remediation.run_step` calls);
- :mod:`.runs`: what the headless runner and the ``lock`` command call.
"""
