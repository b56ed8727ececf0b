-- The shared ledger's two roles: hatchet_apply (the apply job: creates, migrates and writes the ledger's tables)
-- and hatchet_plan (the plan jobs: `diff` and `status` read the ledger and write nothing, not even a migration).
--
-- Run once, connected to the ledger's database as its owner or a superuser:
--   psql "postgresql://admin@db.example.com/hatchet_ledger" -v ON_ERROR_STOP=1 -f ledger-roles.sql
-- then give each role a password (\password hatchet_apply, \password hatchet_plan) and store the URLs as secrets:
--   HATCHET_MANIFEST_LEDGER (environment hatchet-production)  postgresql://hatchet_apply:...@db.example.com/hatchet_ledger?sslmode=verify-full
--   HATCHET_PLAN_LEDGER     (repository secret)               postgresql://hatchet_plan:...@db.example.com/hatchet_ledger?sslmode=verify-full
-- Running it again changes nothing. The tables live in the schema hatchet_manifest, owned by hatchet_apply, which
-- both roles find on their search_path in this database.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hatchet_apply') THEN
    CREATE ROLE hatchet_apply LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hatchet_plan') THEN
    CREATE ROLE hatchet_plan LOGIN;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS hatchet_manifest AUTHORIZATION hatchet_apply;

DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO hatchet_apply, hatchet_plan', current_database());
  EXECUTE format('ALTER ROLE hatchet_apply IN DATABASE %I SET search_path = hatchet_manifest', current_database());
  EXECUTE format('ALTER ROLE hatchet_plan IN DATABASE %I SET search_path = hatchet_manifest', current_database());
END
$$;

-- Nobody else creates objects in public (the default from PostgreSQL 15 on; on a database of its own this is safe).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The reader: the tables that exist, and those later migrations create (as hatchet_apply), for SELECT only.
GRANT USAGE ON SCHEMA hatchet_manifest TO hatchet_plan;
GRANT SELECT ON ALL TABLES IN SCHEMA hatchet_manifest TO hatchet_plan;
ALTER DEFAULT PRIVILEGES FOR ROLE hatchet_apply IN SCHEMA hatchet_manifest GRANT SELECT ON TABLES TO hatchet_plan;
-- Belt and braces: every transaction of the reader is read-only, whatever a client asks.
ALTER ROLE hatchet_plan SET default_transaction_read_only = on;
