#!/usr/bin/env bash
# Run the property-based tests far longer than the default test run does:
#   scripts/fuzz.sh                        # the "long" profile of tests/conftest.py: 5000 examples
#                                          # per property, random seeds
#   FUZZ_EXAMPLES=20000 scripts/fuzz.sh    # another number of examples per property
#   FUZZ_SEED=12345 scripts/fuzz.sh        # repeat a run (the seed a failure prints)
#   scripts/fuzz.sh -k records -x          # anything else goes to pytest
# Hypothesis prints, per property, how many examples it tried and how long they took
# (--hypothesis-show-statistics). Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."

export HYPOTHESIS_PROFILE=long
tests=(tests/test_fuzz_ingest.py tests/test_api_fuzz.py)
args=(-q -p no:cacheprovider --hypothesis-show-statistics)
if [[ -n "${FUZZ_SEED:-}" ]]; then
  args+=("--hypothesis-seed=$FUZZ_SEED")
fi

if [[ -z "${FUZZ_EXAMPLES:-}" ]]; then
  exec .venv/bin/python -m pytest "${args[@]}" "${tests[@]}" "$@"
fi

if ! [[ "$FUZZ_EXAMPLES" =~ ^[1-9][0-9]*$ ]]; then
  echo "FUZZ_EXAMPLES must be a positive whole number, got '$FUZZ_EXAMPLES'" >&2
  exit 2
fi
# tests/conftest.py loads the "long" profile when it is imported; a hook that runs after
# Hypothesis's own pytest_configure derives a profile from it with another max_examples, so
# every other setting of "long" (deadline, health checks) still comes from conftest.py.
exec .venv/bin/python - "${args[@]}" "${tests[@]}" "$@" <<'PY'
import os
import sys

import pytest


class FuzzExamples:
    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        from hypothesis import settings

        examples = int(os.environ["FUZZ_EXAMPLES"])
        name = f"long-{examples}-examples"
        settings.register_profile(name, parent=settings.default, max_examples=examples)
        settings.load_profile(name)


sys.exit(pytest.main(sys.argv[1:], plugins=[FuzzExamples()]))
PY
