#!/usr/bin/env bash
# Install (Debian's package, if missing) and start a local PostgreSQL for the tests, with a role and
# database `hypevolve` allowed to create (and force-drop) the per-test databases. Prints the TEST_DATABASE_URL.
# Needs root (CI runs as root). Safe to run again.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >&2
pg_lsclusters -h | grep -q "^$version main .* online" || pg_ctlcluster "$version" main start >&2
for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -q
as_postgres() { su postgres -c "psql -qtAc \"$1\""; }
[ "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname='hypevolve'")" = 1 ] \
  || as_postgres "CREATE ROLE hypevolve LOGIN CREATEDB PASSWORD 'hypevolve'" >&2
[ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname='hypevolve'")" = 1 ] \
  || su postgres -c "createdb -O hypevolve hypevolve" >&2
# The tests drop their databases WITH (FORCE), which terminates whatever is still connected; an
# autovacuum worker has no role of its own, so only pg_signal_backend lets a non-superuser end it.
as_postgres "GRANT pg_signal_backend TO hypevolve" >&2
echo "postgresql+psycopg://hypevolve:hypevolve@127.0.0.1:5432/hypevolve"
