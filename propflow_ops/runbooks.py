"""The runbooks (CONTRACT.md section 3): slug, notebook, title, default severity, symptoms, steps."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Runbook:
    slug: str
    notebook: str
    title: str
    severity: str
    symptoms: str
    steps: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return notebooks_dir() / self.notebook


RUNBOOKS: dict[str, Runbook] = {
    rb.slug: rb
    for rb in (
        Runbook(
            "triage",
            "00_triage.ipynb",
            "Triage: sweep every component",
            "P1",
            "Something is wrong and it is not yet clear what",
        ),
        Runbook(
            "api-down",
            "01_api_down.ipynb",
            "Backend API Down",
            "P0",
            "/health returns 500 or times out; users cannot reach the app",
            ("force-new-deployment", "rollback"),
        ),
        Runbook(
            "db-connection",
            "02_db_connection.ipynb",
            "Database Connection Issues",
            "P0",
            "500s with 'connection refused'; slow queries; connection pool exhausted",
            ("reboot-db-failover",),
        ),
        Runbook(
            "api-latency",
            "03_api_latency.ipynb",
            "High API Latency",
            "P2",
            "API p95 > 500 ms; users complain of slow responses",
            ("create-read-replica", "scale-service"),
        ),
        Runbook(
            "photo-upload",
            "04_photo_upload.ipynb",
            "Photo Upload Failures",
            "P1",
            "Users cannot upload photos; 'Upload failed' errors",
            ("delete-orphaned-uploads",),
        ),
        Runbook(
            "websocket",
            "05_websocket.ipynb",
            "WebSocket Disconnections",
            "P2",
            "Real-time updates missing; 'Reconnecting...'; high reconnection rate",
            ("force-new-deployment",),
        ),
        Runbook(
            "notifications",
            "06_notifications.ipynb",
            "SMS/WhatsApp Notifications Not Sending",
            "P1",
            "Users not receiving OTPs or status notifications",
            ("send-test-otp",),
        ),
        Runbook(
            "migration",
            "07_migration.ipynb",
            "Database Migration Failure",
            "P1",
            "Deployment fails at the migration step; 'already exists' errors",
            ("migration-downgrade", "migration-upgrade"),
        ),
        Runbook(
            "post-incident",
            "99_post_incident.ipynb",
            "Post-incident review",
            "P3",
            "The incident is over: timeline, RTO/RPO, escalation, checklist",
        ),
    )
}


def notebooks_dir() -> Path:
    """The runbook notebooks: ``$PROPFLOW_NOTEBOOKS_DIR`` or the repository's ``notebooks/``."""
    override = os.environ.get("PROPFLOW_NOTEBOOKS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "notebooks"


def get(slug: str) -> Runbook:
    try:
        return RUNBOOKS[slug]
    except KeyError:
        raise KeyError(slug) from None
