#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume: creates Vigil's own
# role and database. Temporal uses the superuser and creates its own databases.
set -euo pipefail
: "${VIGIL_DB_PASSWORD:?VIGIL_DB_PASSWORD must be set (see .env)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --set=pw="$VIGIL_DB_PASSWORD" <<'SQL'
CREATE ROLE vigil LOGIN PASSWORD :'pw';
CREATE DATABASE vigil OWNER vigil;
SQL
