#!/bin/sh
# Make PostgreSQL's server binaries available for the PostgreSQL half of the test suite.
# The tests start (and stop) their own throwaway cluster on 127.0.0.1; this only installs.
set -eu
# The same places testkit/postgres.py looks (RENTAN_PG_BINDIR, Debian's directory, PATH).
if [ -n "${RENTAN_PG_BINDIR:-}" ] && [ -x "$RENTAN_PG_BINDIR/initdb" ]; then
    exit 0
fi
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing PostgreSQL from Debian's packages for the test suite..."
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null; then
        exit 0
    fi
fi
case "${RENTAN_REQUIRE_POSTGRES:-}" in
    "" | 0)
        echo "PostgreSQL is not installed: the PostgreSQL half of the suite will be skipped." ;;
    *)
        echo "PostgreSQL is not installed and this script could not install it (it needs root," \
            "apt-get and a package mirror), but RENTAN_REQUIRE_POSTGRES is set: the PostgreSQL" \
            "half of the suite must run." >&2
        exit 1 ;;
esac
