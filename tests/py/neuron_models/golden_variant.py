"""A golden variant's model built in NEURON by tests/golden/generate.py's own functions, as
the golden data was made (tests/py/test_from_neuron.py converts it with from-neuron and
compares spikebus's run of the result with the committed golden file).
Usage: golden_variant.py VARIANT (with $SPIKEBUS_TEST_MECHLIB for VecStim)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "golden"))
import generate  # noqa: E402
from neuron import h  # noqa: E402

name = sys.argv[1]
spec = generate.load_variants()[name]
mechlib = os.environ.get("SPIKEBUS_TEST_MECHLIB")
model = generate.load_model(spec["model"])
model["morph_secs"] = generate.import_morphology(h, model)
generate.apply_overrides(model, dict(spec.get("set", {})))
generate.validate(model)
built = generate.build(h, model, mechlib)
spikebus_names = {o: n for kind in ("pps", "arts", "ncs") for n, o in built[kind].items()}
spikebus_record = [s for s in built["traces"] if s != "t"]
