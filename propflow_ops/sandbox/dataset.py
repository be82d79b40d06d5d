"""Deterministic seed data shared by the database and S3 (every photo row has its object)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass

from .canaries import CANARY_PHONE_IN, CANARY_PHONE_US

N_OWNERS = 10
N_TENANT_USERS = 150
N_PROPERTIES = 25
UNITS_PER_PROPERTY = 8
N_UNITS = N_PROPERTIES * UNITS_PER_PROPERTY
N_MAINTENANCE_REQUESTS = 50_000
N_PHOTOS = 240
CITIES = ("Bengaluru", "Pune", "Austin", "Denver", "Lisbon")


@dataclass(frozen=True)
class PhotoSeed:
    id: int
    maintenance_request_id: int
    property_id: int
    unit_id: int
    s3_key: str
    size_bytes: int
    age_days: float


def unit_of_request(request_id: int) -> int:
    """Unit of a seeded maintenance request (the SQL seed uses the same formula)."""
    return (request_id - 1) % N_UNITS + 1


def property_of_unit(unit_id: int) -> int:
    return (unit_id - 1) // UNITS_PER_PROPERTY + 1


def photo_key(property_id: int, unit_id: int, request_id: int, photo_uuid: str) -> str:
    return f"properties/{property_id}/units/{unit_id}/maintenance/{request_id}/{photo_uuid}.jpg"


def photos(seed: int = 7) -> list[PhotoSeed]:
    rng = random.Random(seed)
    out: list[PhotoSeed] = []
    for i in range(1, N_PHOTOS + 1):
        request_id = N_MAINTENANCE_REQUESTS - rng.randrange(0, 5000)
        unit_id = unit_of_request(request_id)
        property_id = property_of_unit(unit_id)
        key = photo_key(property_id, unit_id, request_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        age = rng.uniform(0.05, 45.0)
        out.append(PhotoSeed(i, request_id, property_id, unit_id, key, rng.randrange(80_000, 2_400_000), age))
    return out


def orphan_keys(count: int, seed: int = 99) -> list[str]:
    """Keys of uploads no photos row references (a failed upload flow left them)."""
    rng = random.Random(seed)
    keys: list[str] = []
    for _ in range(count):
        request_id = rng.randrange(1, N_MAINTENANCE_REQUESTS)
        unit_id = unit_of_request(request_id)
        keys.append(
            photo_key(
                property_of_unit(unit_id),
                unit_id,
                request_id,
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            )
        )
    return keys


def users() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(1, N_OWNERS + N_TENANT_USERS + 1):
        role = "owner" if i <= N_OWNERS else "tenant"
        phone = f"+9198{(45000000 + i * 7919) % 100000000:08d}"
        if i == N_OWNERS + 1:
            phone = CANARY_PHONE_IN
        elif i == N_OWNERS + 2:
            phone = CANARY_PHONE_US
        rows.append(
            {"id": i, "email": f"user{i}@example.com", "phone": phone, "full_name": f"User {i}", "role": role}
        )
    return rows


def properties() -> list[dict[str, object]]:
    return [
        {
            "id": p,
            "owner_id": (p - 1) % N_OWNERS + 1,
            "name": f"Residency {p}",
            "address": f"{100 + p} Main Road",
            "city": CITIES[p % len(CITIES)],
        }
        for p in range(1, N_PROPERTIES + 1)
    ]


def units() -> list[dict[str, object]]:
    return [
        {
            "id": u,
            "property_id": property_of_unit(u),
            "unit_number": f"{(u - 1) % UNITS_PER_PROPERTY + 101}",
            "bedrooms": (u % 3) + 1,
            "rent_cents": 1_500_000 + (u % 7) * 100_000,
        }
        for u in range(1, N_UNITS + 1)
    ]


def tenants() -> list[dict[str, object]]:
    start = dt.date(2024, 6, 1)
    return [
        {
            "id": t,
            "user_id": N_OWNERS + t,
            "unit_id": t,
            "lease_start": start + dt.timedelta(days=t),
            "lease_end": None,
        }
        for t in range(1, N_TENANT_USERS + 1)
    ]
