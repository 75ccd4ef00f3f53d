#!/bin/bash
# The bundled PostgreSQL of deploy/compose.yaml runs this once, when it initialises an empty
# data volume (/docker-entrypoint-initdb.d): Dagster's own storage and the warehouse, each a
# database with its own role, kept apart (docs/deploy.md). The warehouse role may create
# databases: every backup is verified by restoring it into a throwaway database.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v dagster_user="$DAGSTER_PG_USER" -v dagster_password="$DAGSTER_PG_PASSWORD" \
    -v dagster_db="$DAGSTER_PG_DB" \
    -v warehouse_user="$WAREHOUSE_DB_USER" -v warehouse_password="$WAREHOUSE_DB_PASSWORD" \
    -v warehouse_db="$WAREHOUSE_DB_NAME" <<'SQL'
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_password';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE ROLE :"warehouse_user" LOGIN CREATEDB PASSWORD :'warehouse_password';
CREATE DATABASE :"warehouse_db" OWNER :"warehouse_user";
SQL
