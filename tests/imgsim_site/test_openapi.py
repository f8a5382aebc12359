"""The OpenAPI schema is valid and generates without warnings (clients are generated from it)."""

from __future__ import annotations

from django.core.management import call_command


def test_schema_is_valid_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in ["/api/images/", "/api/search/", "/api/index/", "/api/duplicates/", "/api/duplicates/check/"]:
        assert f"{path}:" in text, path
