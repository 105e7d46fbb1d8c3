#!/usr/bin/env bash
# Run the test suite on the lowest versions pyproject.toml allows of the package's dependencies.
#
# Builds .venv-lowest with the dev extra, then replaces the core's dependencies and those of
# the sqlite, postgres, redis and encryption extras, and LangGraph (the all extra), with their
# floors (`scripts/lowest_versions.py`), checks that they are what is installed, and runs
# pytest there; the test-only packages stay at the versions pip chose. Servers as for
# scripts/test.sh. Extra arguments go to pytest.
set -euo pipefail
LOWEST=1 exec bash "$(dirname "$0")/test.sh" "$@"
