#!/usr/bin/env bash
# Install the database servers the tests and benchmarks start (PostgreSQL, PgBouncer, Redis) from
# Debian's packages, and openssl for the TLS tests' certificates, only those that are missing.
# Quiet when there is nothing to do or it works; prints apt's output and exits non-zero when it
# fails.
#
# Nothing already installed is upgraded (--no-upgrade), and `apt-get update` runs only when a
# package is missing. The packages' own services are not started: the test run starts its own
# servers on loopback ports (checkpoint_base/testing/servers.py).
set -euo pipefail

missing=()

have_postgres() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/postgres" ]] && return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/postgres" && -x "$dir/pg_isready" ]] && return 0
    done
    return 1
}

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]; }

have_postgres || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have pgbouncer || missing+=(pgbouncer)
have openssl || missing+=(openssl)  # the test certificates of the TLS servers

[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing ${missing[*]} and this is not a Debian system (no apt-get);" \
        "install them, or set CHECKPOINTERS_TEST_*_URL to servers of your own" >&2
    exit 1
fi
sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "install-system-deps: missing ${missing[*]}; run as root to install them" >&2
        exit 1
    }
    sudo=(sudo)
fi

policy=/usr/sbin/policy-rc.d
our_policy=
cleanup() {
    if [[ -n "$our_policy" ]]; then "${sudo[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT

# Keep the packages' init scripts from starting system-wide servers on 5432/6379/6432.
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    our_policy=1
fi

run() {
    # Another apt may hold the lock (a parallel install): wait for it rather than fail.
    local attempt out=""
    for attempt in $(seq 30); do
        if out="$("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "$@" 2>&1)"; then
            return 0
        fi
        grep -qE 'Could not get lock|Unable to lock|Unable to acquire' <<<"$out" || break
        sleep 10
    done
    echo "install-system-deps: '$*' failed (attempt $attempt):" >&2
    printf '%s\n' "$out" >&2
    exit 1
}

run apt-get -o DPkg::Lock::Timeout=300 update -q
run apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-upgrade --no-install-recommends \
    "${missing[@]}"

for tool in redis-server redis-cli pgbouncer; do
    have "$tool" || { echo "install-system-deps: $tool still missing after install" >&2; exit 1; }
done
have_postgres || { echo "install-system-deps: initdb still missing after install" >&2; exit 1; }
