"""Issue 20 point 1: every integer query parameter of every endpoint and page takes ASCII digits in its range;
anything else is a 400 naming the parameter (the API's JSON error, the site's 400 page), never a 500."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from gallery.models import Image

pytestmark = pytest.mark.django_db

# (path, parameter): every integer query parameter. A new one belongs here (the last test finds API ones
# from the OpenAPI schema and web ones from the views' query_int calls).
API_PARAMETERS = [
    ("/api/images/", "page"),
    ("/api/images/", "page_size"),
    ("/api/images/{id}/similar/", "k"),
    ("/api/images/{id}/similar/", "rating"),
    ("/api/duplicates/", "image"),
    ("/api/duplicates/", "page"),
    ("/api/duplicates/", "page_size"),
    ("/api/duplicates/decisions/", "pair"),
    ("/api/duplicates/decisions/", "page"),
    ("/api/duplicates/decisions/", "page_size"),
    ("/api/duplicate-groups/", "min_size"),
    ("/api/duplicate-groups/", "member_limit"),
    ("/api/duplicate-groups/", "page"),
    ("/api/duplicate-groups/", "page_size"),
    ("/api/duplicate-groups/decisions/", "group"),
    ("/api/duplicate-groups/decisions/", "page"),
    ("/api/duplicate-groups/decisions/", "page_size"),
    ("/api/trash/", "page"),
    ("/api/trash/", "page_size"),
    ("/api/duplicates/alignment/?b={other}", "a"),  # each with the other it needs, an image that exists
    ("/api/duplicates/alignment/?a={other}", "b"),
]
# Parameters an endpoint cannot answer without: empty or absent is a 400 naming them too.
REQUIRED = {("/api/duplicates/alignment/", "a"), ("/api/duplicates/alignment/", "b")}
WEB_PARAMETERS = [
    ("/", "page"),
    ("/images/{id}/similar/", "k"),
    ("/duplicates/", "group"),
    ("/duplicates/cards/", "group"),
    ("/duplicates/cards/", "card"),
    ("/duplicates/cards/", "limit"),
    ("/duplicates/pairs/", "page"),
    ("/duplicates/decisions/", "page"),
    ("/duplicates/decisions/", "gpage"),
    ("/trash/", "page"),
]
INVALID = [
    "%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "%D9%A1",  # Arabic-Indic one: int() says 1
    "-1",
    "%2B1",
    "%201",
    "1%20",
    "1.0",
    "1e3",
    "1_0",
    "0x10",
    "abc",
    "99999999999999999999",  # more than a 64-bit database integer holds
    "9" * 5000,  # more digits than int() converts
]
APPS = ("core", "gallery", "search", "duplicates", "pipeline")
VALID = ["1", ""]  # empty: as if absent (an HTML form sends its empty fields)


@pytest.mark.parametrize(("path", "parameter"), API_PARAMETERS + WEB_PARAMETERS)
def test_integer_query_parameters_refuse_anything_but_digits_in_range(staff, path, parameter):
    staff_web = Client(raise_request_exception=False)  # a 500 is counted, not raised
    staff_web.force_login(staff)
    image, other = (
        Image.objects.create(
            file=f"originals/{n}.jpg", sha256=str(n) * 64, width=8, height=8, format="JPEG", file_size=1000
        )
        for n in (0, 1)
    )
    url = path.format(id=image.pk, other=other.pk)  # other.pk > 1: never the same image as "1"
    required = (path.split("?")[0], parameter) in REQUIRED
    url += "&" if "?" in url else "?"
    wrong = []
    for value in ["1"] if required else VALID:
        response = staff_web.get(f"{url}{parameter}={value}")
        if response.status_code == 400 or response.status_code >= 500:
            wrong.append(f"{value!r}: {response.status_code}")
    for value in [*INVALID, ""] if required else INVALID:
        response = staff_web.get(f"{url}{parameter}={value}")
        body = response.content.decode()
        if response.status_code != 400:
            wrong.append(f"{value[:20]!r}: {response.status_code}")
        elif url.startswith("/api/"):
            error = response.json()["error"] if response["Content-Type"] == "application/json" else {}
            if error.get("code") != "invalid" or parameter not in error.get("fields", {}):
                wrong.append(f"{value[:20]!r}: {body[:200]}")
        elif 'id="error-400"' not in body or f"{parameter} must be a whole number" not in body:
            wrong.append(f"{value[:20]!r}: not the 400 page naming {parameter}")
    assert not wrong, f"{url} ?{parameter}=: {wrong}"


def test_every_integer_query_parameter_is_in_the_lists():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    in_schema = {
        (path, parameter["name"])
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter["schema"].get("type") == "integer"
    }
    assert in_schema == {(path.split("?")[0], parameter) for path, parameter in API_PARAMETERS}
    root = Path(settings.BASE_DIR)
    trees = {path: ast.parse(path.read_text()) for app in APPS for path in root.glob(f"{app}/**/*.py")}
    nodes = [(path, node) for path, tree in trees.items() for node in ast.walk(tree)]
    read_by_views = {
        node.args[1].value
        for _, node in nodes
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "query_int"
        and ast.unparse(node.args[0]) == "request.GET"
    }
    assert read_by_views == {parameter for _, parameter in WEB_PARAMETERS}
    # Digits are told apart in one place: str.isdigit() accepts "²".
    digit_checks = {path for path, node in nodes if isinstance(node, ast.Attribute) and node.attr == "isdigit"}
    assert digit_checks == {root / "core" / "query_params.py"}
