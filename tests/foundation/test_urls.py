import pytest

from propflow_ops.sources import db
from propflow_ops.urls import url_host

RDS = "propflow-db.abc.eu-west-1.rds.amazonaws.com"


@pytest.mark.parametrize(
    ("url", "host", "with_port"),
    [
        (f"postgresql://u:secret@{RDS}:5432/propflow", RDS, f"{RDS}:5432"),
        ("postgresql+psycopg://u@127.0.0.1/d", "127.0.0.1", "127.0.0.1"),
        ("postgresql://u:p@DB.Example.COM:5432/x", "db.example.com", "db.example.com:5432"),
        ("postgresql://postgres@/postgres?host=/tmp/pgserver", "/tmp/pgserver", "/tmp/pgserver"),
        ("postgresql+psycopg://u:p@/propflow?host=/tmp/pg&sslmode=disable", "/tmp/pg", "/tmp/pg"),
        ("unix:///tmp/redis.sock?db=0", "/tmp/redis.sock", "/tmp/redis.sock"),
        ("redis://:pw@cache.local:6380/0", "cache.local", "cache.local:6380"),
        ("postgresql://u@/dbname", None, None),  # no host at all: not the database name
        ("not a url", None, None),
        ("http://[::1", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_url_host_never_shows_more_than_the_host(url, host, with_port):
    assert url_host(url) == host
    assert url_host(url, port=True) == with_port
    assert db.url_host is url_host  # one function, under the name the notebooks use
