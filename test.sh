#!/usr/bin/env bash
# The test command: brings what the tests need, then runs every test project.
# Arguments go to `dotnet test` (.ci/run passes `-c Release --no-build`).
# Idempotent and quiet when everything is there; it reaches no network but the OS package registry.
set -euo pipefail
cd "$(dirname "$0")"

# Runs an apt-get command as root: directly when root, through sudo when it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# Installs Debian packages; says how to get them by hand when it cannot.
install_packages() {
    echo "test.sh: installing $* (apt-get)" >&2
    if ! command -v apt-get >/dev/null 2>&1 \
        || ! as_root apt-get update -qq \
        || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
        echo "test.sh: could not install $* with apt-get (it needs root or sudo, and the package registry)." >&2
        echo "test.sh: install it by hand (e.g. 'apt-get install $*') and run ./test.sh again." >&2
        exit 1
    fi
}

# nats-server: the NATS tests and the CLI worker tests run a real one (JetStream), started by NatsServerFixture.
need_nats_server() {
    command -v nats-server >/dev/null 2>&1 && return 0
    install_packages nats-server
    if ! command -v nats-server >/dev/null 2>&1; then
        echo "test.sh: nats-server is still not on PATH after installing it." >&2
        exit 1
    fi
}

# PostgreSQL 15: the PostgreSQL store's tests run a real cluster, started by PostgresServerFixture
# (initdb into a temp folder, a loopback port, stopped and deleted at the end). Debian keeps the
# binaries in /usr/lib/postgresql/15/bin, off PATH; the fixture looks there first, then on PATH.
has_postgres() {
    [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ] && return 0
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

need_postgres() {
    has_postgres && return 0
    # postgresql-15 is bookworm's; elsewhere the distribution's default server package.
    if command -v apt-cache >/dev/null 2>&1 && apt-cache show postgresql-15 >/dev/null 2>&1; then
        install_packages postgresql-15
    else
        install_packages postgresql
    fi
    if ! has_postgres; then
        echo "test.sh: initdb and pg_ctl are still missing (neither in /usr/lib/postgresql/15/bin nor on PATH) after installing PostgreSQL." >&2
        exit 1
    fi
}

need_nats_server
need_postgres

dotnet test Pipeline.sln "$@"
