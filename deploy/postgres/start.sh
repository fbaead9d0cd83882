#!/bin/sh
# Make the cluster on the first start (see the Dockerfile), then run the server in the foreground.
# POSTGRES_LISTEN: the addresses it listens on (default: all).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file=$(mktemp)
  printf '%s' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD: the password of the database user}" >"$password_file"
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-helix}" --pwfile="$password_file" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
  rm -f "$password_file"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"${POSTGRES_DB:-helixserve}\";" | postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses="${POSTGRES_LISTEN:-*}"
