"""``propflow-ops review INCIDENT_ID``: the ``post-incident`` notebook run through the runner over the
incident's runs (so the review is itself an evidence report); the notebook writes ``postmortem.md``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from propflow_ops.findings import iso
from propflow_ops.incident import (
    BadInput,
)
from propflow_ops.review.judge import incident_severity, incident_start
from propflow_ops.review.load import POSTMORTEM, REVIEW_SLUG, action_events, incident_folder, load_runs
from propflow_ops.run.request import RunRequest


def review_request(
    incident_id: str,
    output_dir: str | None,
    html: bool = True,
    env: Mapping[str, str] | None = None,
    read_from: Path | None = None,
) -> RunRequest:
    """The post-incident run over the incident's runs; BadInput when there is nothing to review.

    With an incident record the run takes its severity and start from it (nothing to override); without one
    (run folders from before the record existed) from the runs, and the review opens the record."""
    from propflow_ops import incident_record as ir

    folder = incident_folder(incident_id, str(read_from) if read_from else output_dir)
    if "/" in incident_id or incident_id.startswith(".") or not incident_id:
        raise BadInput(f"not an incident id: {incident_id!r}")
    runs = [r for r in load_runs(folder) if r.slug != REVIEW_SLUG]
    state = ir.load(ir.LocalStore(folder.parent), incident_id)
    recorded = state.exists
    if not runs and not action_events(state):  # steps applied in a lab session that never saved: reviewed
        raise BadInput(f"no runs of incident {incident_id} under {folder.parent}")
    start, _ = incident_start([r for r in runs if r.evidence is not None])
    return RunRequest(
        slug=REVIEW_SLUG,
        incident=incident_id,
        severity=None if recorded else incident_severity(runs),
        started_at=None if recorded or not start else iso(start),
        params=[("review_incident", incident_id)],
        output_dir=output_dir,
        html=html,
        announce=True,
        # the kernel reads the runs here (for the S3 store: its private copy of the incident's complete runs)
        env={**(env or {}), "PROPFLOW_OUTPUT_DIR": str(folder.parent)},
    )


def review_main(
    incident_id: str, output_dir: str | None, html: bool = True, env: Mapping[str, str] | None = None
) -> int:
    """``propflow-ops review INCIDENT_ID``: the post-incident notebook over the incident's runs."""
    from propflow_ops import store as store_mod
    from propflow_ops.run.temporaries import private_workdir, sweep_temporaries
    from propflow_ops.runner import run

    loc = store_mod.location(output_dir)
    copy: Path | None = None
    try:
        if isinstance(loc, store_mod.S3Url):  # every run of the incident in the store, whoever made it
            sweep_temporaries(None)
            copy = private_workdir()
            got = store_mod.mirror(loc, incident_id, copy)
            if got["incomplete"]:
                print(
                    f"propflow-ops: {len(got['incomplete'])} run folder(s) of {incident_id} in {loc} have no "
                    f"SHA256SUMS (incomplete, left out): {', '.join(got['incomplete'])}",
                    file=sys.stderr,
                )
        else:
            sweep_temporaries(loc)  # what dead runs left (also when there is nothing to review)
        try:
            req = review_request(incident_id, str(loc), html, env, read_from=copy)
        except BadInput as exc:
            print(f"propflow-ops: error: {exc}", file=sys.stderr)
            return 2
        result = run(req)
    finally:
        if copy is not None:
            import shutil

            shutil.rmtree(copy, ignore_errors=True)
    ev = result.evidence
    print(f"review of {incident_id}: {result.status}" + (f"; {result.error}" if result.error else ""))
    for f in ev.get("findings", []):
        if f["status"] in ("fail", "error"):
            print(f"  {f['status'].upper():5} {f['code']}: {f['title']}: {f.get('detail', '')}")
    pm = result.path / POSTMORTEM
    written = pm.exists() if isinstance(pm, Path) else store_mod.exists(pm)
    print(f"postmortem: {pm}" if written else "postmortem: not written (see the report)")
    print(result.path)
    return result.exit_code
