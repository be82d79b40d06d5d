"""The post-incident review: everything the runs of one incident left, read back and judged.

Pure functions over the run folders of ``<output-dir>/<incident-id>/`` (CONTRACT.md section 4):

- every run folder is checked against its ``SHA256SUMS`` (tampered, missing and unlisted files);
- the timeline: each run, the first time each problem was seen, each remediation step executed,
  when each problem cleared and when everything was ok again;
- root causes: the ``fail`` codes of the runbooks (triage's per-component codes are symptoms) with
  their evidence;
- the Recovery Time Objectives per service (API 15 min, database 1 h, file storage 1 h, frontend
  5 min), from the incident start to the first run after the problem in which that service's codes
  were all non-fail; the database RPO from the ``db-connection`` evidence (``DB_RPO_AT_RISK``);
- the response time against the severity's target and the escalation steps that fell due;
- the Post-Incident Checklist, pre-filled where the evidence decides an item, the rest left for people.

An observation (a problem seen, a problem cleared) is dated by the finish of the run that reported
it: that is when the evidence existed. Actions carry their own time.

One concern a module: :mod:`.load` (the run folders and the record's action events, read back),
:mod:`.model` (the :class:`~.model.Review` and its vocabulary), :mod:`.timeline`, :mod:`.judge` (the
verdicts; :func:`~.judge.build_review`), :mod:`.render` (summary, figure, ``postmortem.md``) and
:mod:`.command` (``propflow-ops review INCIDENT_ID``: it runs the ``post-incident`` notebook through the
runner, so the review is itself an evidence report, and the notebook writes ``postmortem.md`` beside its
``evidence.json``). Each imports only those before it in this list (tests/foundation/test_layers.py).

The post-incident notebook uses ``from propflow_ops import review as rv``: the names below are its surface.
"""

from propflow_ops.review.judge import build_review, findings
from propflow_ops.review.render import (
    checklist_view,
    postmortem_view,
    summary_text,
    timeline_figure,
    write_postmortem,
)

__all__ = [
    "build_review",
    "checklist_view",
    "findings",
    "postmortem_view",
    "summary_text",
    "timeline_figure",
    "write_postmortem",
]
