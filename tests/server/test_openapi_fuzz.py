"""Schemathesis, driven by the app's own OpenAPI schema, finds no server error (5xx)."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.main import create_app


def test_no_server_errors(settings_env):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    strategy = st.one_of([operation.as_strategy() for operation in operations])
    seen: set[str] = set()

    @given(case=strategy)
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call()
        seen.add(f"{case.method} {case.path}")
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)

    check()
    assert len(seen) == len(operations)
