"""Checks the JSON Schemas of the spikebus wire protocol (schemas/*.schema.json) and their
examples (schemas/examples/<message>/{valid,invalid,refused}/*.json).

Run: pytest tests/py/test_schemas.py   (needs the `jsonschema` and `referencing` packages)

- every schema is a valid draft 2020-12 schema whose `$id` is its file name, and every `$ref`
  in it resolves through a local registry of all the schema files;
- every valid example validates against its message's schema, every invalid one fails;
- every refused example ({"request": ..., "code": ..., "point": "start"|"step", "note": ...},
  `point` saying where the node is paused when it is sent: the `start` point, or a sync point
  of the run after t = 0.1 ms, owned by the client that sends the examples that carry no
  `client` of their own) holds a request that is valid by the schema but that the node must
  refuse with the given error code (the Rust test `refused_requests_change_nothing` sends
  each one to a real node);
- the refused examples cover every error code a schema-valid request can get;
- every message schema has an examples directory with at least one valid and one invalid
  example, and every examples directory belongs to a schema.
"""

import pytest
from jsonschema import Draft202012Validator

from schemas_util import REGISTRY, SCHEMA_DOCS, SCHEMA_FILES, SCHEMAS, SUFFIX, load, validator

EXAMPLES = SCHEMAS / "examples"
# Shared definitions only: no message of its own, hence no examples.
NOT_A_MESSAGE = {"common"}


def message_of(schema_file):
    return schema_file[: -len(SUFFIX)]


MESSAGES = sorted(message_of(name) for name in SCHEMA_DOCS)


def examples(kind):
    cases = []
    for message_dir in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        for f in sorted((message_dir / kind).glob("*.json")):
            cases.append(pytest.param(message_dir.name, f, id=str(f.relative_to(EXAMPLES))))
    return cases


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_schemas_found():
    assert len(SCHEMA_FILES) >= 15


@pytest.mark.parametrize("name", sorted(SCHEMA_DOCS))
def test_schema_is_valid(name):
    doc = SCHEMA_DOCS[name]
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == name


@pytest.mark.parametrize("name", sorted(SCHEMA_DOCS))
def test_schema_refs_resolve(name):
    resolver = REGISTRY.resolver(base_uri=SCHEMA_DOCS[name]["$id"])
    for ref in refs(SCHEMA_DOCS[name]):
        # Raises referencing.exceptions.Unresolvable if the target is missing.
        resolver.lookup(ref)


@pytest.mark.parametrize("message", sorted(set(MESSAGES) - NOT_A_MESSAGE))
def test_schema_has_examples(message):
    for kind in ("valid", "invalid"):
        found = list((EXAMPLES / message / kind).glob("*.json"))
        assert found, f"no {kind} example in examples/{message}/{kind}/"


def test_examples_belong_to_schemas():
    dirs = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert dirs <= set(MESSAGES) - NOT_A_MESSAGE, dirs - set(MESSAGES)
    for d in EXAMPLES.iterdir():
        kinds = {p.name for p in d.iterdir()}
        assert kinds <= {"valid", "invalid", "refused"}, (d.name, kinds)
        stray = [p.name for k in kinds for p in (d / k).iterdir() if p.suffix != ".json"]
        assert not stray, (d.name, stray)


@pytest.mark.parametrize("message,path", examples("valid"))
def test_valid_example(message, path):
    errors = [e.message for e in validator(message).iter_errors(load(path))]
    assert not errors, errors


@pytest.mark.parametrize("message,path", examples("invalid"))
def test_invalid_example(message, path):
    assert not validator(message).is_valid(load(path)), f"{path.name} should be invalid"


ERROR_CODES = set(SCHEMA_DOCS["common.schema.json"]["$defs"]["errorCode"]["enum"])


@pytest.mark.parametrize("message,path", examples("refused"))
def test_refused_example(message, path):
    case = load(path)
    assert set(case) <= {"request", "code", "note", "point"} and {"request", "code", "point"} <= set(case), set(case)
    assert case["point"] in ("start", "step"), case["point"]
    assert case["code"] in ERROR_CODES, case["code"]
    assert message.endswith(".request"), "refused examples are requests"
    errors = [e.message for e in validator(message).iter_errors(case["request"])]
    assert not errors, errors


def test_continue_has_refused_examples():
    assert list((EXAMPLES / "continue.request" / "refused").glob("*.json"))


def test_refused_examples_cover_every_code():
    """Every code a request valid by its schema can get has an example; `unknown_op` cannot
    (the schemas list the ops), `too_large` is a matter of size (over 1 MiB by default) and
    `io_error` of the node's disk (an `export` that cannot be written: tests/rust/snapshot.rs)."""
    covered = {load(p)["code"] for p in EXAMPLES.glob("*.request/refused/*.json")}
    assert covered == ERROR_CODES - {"unknown_op", "too_large", "io_error"}, sorted(ERROR_CODES - covered)
