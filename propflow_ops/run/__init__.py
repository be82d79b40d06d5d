"""The parts of a headless run, one concern a module; :mod:`propflow_ops.runner` puts them together.

- :mod:`.request`: :class:`~.request.RunRequest` and :class:`~.request.RunResult`;
- :mod:`.parameters`: the notebook's parameters cell, the -p values and the common options checked;
- :mod:`.execute`: the notebook on a kernel with papermill, the time budget, SIGTERM as Ctrl-C;
- :mod:`.mask`: the executed notebook masked;
- :mod:`.evidence`: evidence.json as published;
- :mod:`.header`: report.html's header;
- :mod:`.folder`: the run folder (staging, SHA256SUMS, rename into place, :class:`~.folder.PublishError`);
- :mod:`.temporaries`: the private temporaries and the sweep of what dead runs left.

None of them imports :mod:`propflow_ops.runner` (tests/foundation/test_layers.py).
"""
