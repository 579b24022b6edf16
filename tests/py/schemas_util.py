"""Loading the JSON Schemas of the spikebus wire protocol (schemas/*.schema.json), shared by
test_schemas.py and test_wire_conformance.py.

Every schema file is loaded once; ``REGISTRY`` holds them all under their ``$id`` (the file
name), so a ``$ref`` such as ``common.schema.json#/$defs/time`` resolves locally.
"""

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SUFFIX = ".schema.json"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA_FILES = sorted(SCHEMAS.glob("*" + SUFFIX))
SCHEMA_DOCS = {p.name: load(p) for p in SCHEMA_FILES}
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
    for doc in SCHEMA_DOCS.values()
)


def validator(message, cls=Draft202012Validator):
    """A validator of ``message`` (a schema file name without ``.schema.json``, e.g.
    ``sync.reply``), resolving references through ``REGISTRY``."""
    return cls(SCHEMA_DOCS[message + SUFFIX], registry=REGISTRY)
