import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { toDatabaseError } from "./Database.js"

/**
 * The program's own tables, in their own schema, created by migrations it runs itself. PromptFlow's
 * tables belong to Django and are never created or altered here.
 */
export const OWN_SCHEMA = "promptflow_maintenance"

interface Migration {
  readonly id: number
  readonly name: string
  readonly statements: string
}

export const MIGRATIONS: ReadonlyArray<Migration> = [
  {
    id: 1,
    name: "runs, findings and the scan's reference index",
    statements: `
      CREATE TABLE ${OWN_SCHEMA}.runs (
        id bigserial PRIMARY KEY,
        job text NOT NULL,
        parameters jsonb NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        outcome text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'complete', 'partial', 'failed')),
        counts jsonb NOT NULL DEFAULT '{}'::jsonb,
        admin_calls integer NOT NULL DEFAULT 0,
        rate_limit jsonb,
        message text
      );
      CREATE INDEX runs_job_started_idx ON ${OWN_SCHEMA}.runs (job, started_at DESC);
      CREATE TABLE ${OWN_SCHEMA}.findings (
        id bigserial PRIMARY KEY,
        run_id bigint NOT NULL REFERENCES ${OWN_SCHEMA}.runs (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('orphan', 'missing', 'unparseable')),
        public_id text,
        resource_type text,
        delivery_type text,
        size_bytes bigint,
        format text,
        uploaded_at timestamptz,
        url text,
        prompt_id bigint,
        title text,
        author text,
        media_type text,
        stored_value text,
        problem text
      );
      CREATE INDEX findings_run_kind_idx ON ${OWN_SCHEMA}.findings (run_id, kind, id);
      CREATE UNLOGGED TABLE ${OWN_SCHEMA}.scan_references (
        id bigserial PRIMARY KEY,
        run_id bigint NOT NULL,
        resource_type text NOT NULL,
        delivery_type text NOT NULL,
        public_id text NOT NULL,
        prompt_id bigint NOT NULL,
        title text NOT NULL,
        author text NOT NULL,
        media_type text NOT NULL,
        stored_value text NOT NULL,
        seen boolean NOT NULL DEFAULT false
      );
      CREATE INDEX scan_references_asset_idx ON ${OWN_SCHEMA}.scan_references (run_id, resource_type, delivery_type, public_id);`
  },
  {
    id: 2,
    name: "scan checkpoints, so that a partial scan can be resumed",
    statements: `
      ALTER TABLE ${OWN_SCHEMA}.runs ADD COLUMN checkpoint jsonb;
      ALTER TABLE ${OWN_SCHEMA}.runs ADD COLUMN resumed_from bigint REFERENCES ${OWN_SCHEMA}.runs (id);
      ALTER TABLE ${OWN_SCHEMA}.runs ADD COLUMN scope text;
      CREATE INDEX runs_scope_idx ON ${OWN_SCHEMA}.runs (job, scope, started_at DESC);`
  }
]

/** Applies what is missing, in one transaction under an advisory lock so that two runs cannot race. */
export const migrate = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* Effect.gen(function* () {
    yield* sql`SELECT pg_advisory_xact_lock(7243150)`
    yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${OWN_SCHEMA}`)
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${OWN_SCHEMA}.schema_migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`
    )
    const applied = new Set(
      (yield* sql<{ id: number }>`SELECT id FROM ${sql(`${OWN_SCHEMA}.schema_migrations`)}`).map((row) => Number(row.id))
    )
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.id)) continue
      yield* sql.unsafe(migration.statements)
      yield* sql`INSERT INTO ${sql(`${OWN_SCHEMA}.schema_migrations`)} (id, name) VALUES (${migration.id}, ${migration.name})`
    }
  }).pipe(sql.withTransaction)
}).pipe(Effect.mapError(toDatabaseError("migrate the program's own schema")))

/** Provides nothing; building it brings the program's schema up to date. */
export const MigrationsLive = Layer.effectDiscard(migrate)
