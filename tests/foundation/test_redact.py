from propflow_ops.redact import mask_phone, redact, redact_text


def test_passwords_in_urls_are_masked_and_hosts_kept():
    out = redact_text("postgresql+psycopg://propflow:s3cr3t-pw@db.example.com:5432/propflow")
    assert out == "postgresql+psycopg://propflow:***@db.example.com:5432/propflow"
    assert redact_text("rediss://:canary-redis-1@cache:6379/0") == "rediss://:***@cache:6379/0"


def test_tokens_in_text_are_masked():
    assert "abc.def" not in redact_text("Authorization: Bearer abc.def.ghijklmnop")
    assert redact_text("auth_token=ZZZ999yyy888") == "auth_token=***"
    assert "EAAB" not in redact_text("token EAABsbCS1iHgBAOZCZBZCZCabcdefghijk")
    aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert aws_secret not in redact_text(f"secret is {aws_secret}")


def test_phone_numbers_keep_last_two_digits():
    assert mask_phone("+919999900001") == "+91********01"
    assert redact_text("sent OTP to +14155550123 ok") == "sent OTP to +14*******23 ok"


def test_timestamps_ids_and_plain_numbers_survive():
    text = "2026-11-26T03:00:00Z request 123 took 450 ms, task arn:aws:ecs:us-east-1:123456789012:task/abc"
    assert redact_text(text) == text


def test_secret_keys_are_masked_recursively_but_urls_keep_hosts():
    data = {
        "TWILIO_AUTH_TOKEN": "x" * 32,
        "nested": [{"password": "p"}],
        "DATABASE_URL": "postgresql://u:pw@h/db",
        "api_url": "https://api.propflow.com",
        "count": 3,
    }
    out = redact(data)
    assert out["TWILIO_AUTH_TOKEN"] == "***"
    assert out["nested"][0]["password"] == "***"
    assert out["DATABASE_URL"] == "postgresql://u:***@h/db"
    assert out["api_url"] == "https://api.propflow.com"
    assert out["count"] == 3


def test_aws_account_ids_are_not_phone_numbers():
    assert redact({"aws_account": "123456789012"}) == {"aws_account": "123456789012"}
    assert (
        redact_text("AWS account 123456789012, region us-east-1")
        == "AWS account 123456789012, region us-east-1"
    )
    assert redact_text("call 123456789012 now") != "call 123456789012 now"
