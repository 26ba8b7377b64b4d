import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { randomBytes } from "node:crypto"
import { startEmbeddedPostgres } from "../../src/dev/embeddedPostgres.js"
import { loadFixtureSchema } from "../../src/dev/seed.js"

/**
 * A fresh database per test file with PromptFlow's schema loaded: on the PostgreSQL server of this
 * machine (TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres) when one answers,
 * otherwise on an embedded PGlite. PGlite is one backend session, so tests that need truly
 * concurrent sessions check `backend` and say so when they are left out.
 */
export interface TestDatabase {
  readonly url: string
  readonly backend: "postgresql" | "pglite"
  readonly layer: Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, unknown>
  /** Run SQL-using test code against this database, outside the job under test. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  readonly close: () => Promise<void>
}

const serverUrl = process.env["TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

let serverAnswers: boolean | undefined
export const postgresServerAnswers = async (): Promise<boolean> => {
  if (serverAnswers !== undefined) return serverAnswers
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.query("SELECT 1")
    serverAnswers = true
  } catch {
    serverAnswers = false
  } finally {
    await client.end().catch(() => undefined)
  }
  return serverAnswers
}

/** For tests that need truly concurrent sessions: PGlite has one backend session for every connection. */
export const onlyOnPostgresServer = async (what: string): Promise<boolean> => {
  const answers = await postgresServerAnswers()
  if (!answers) console.warn(`left out: ${what} needs a real PostgreSQL server (PGlite shares one backend session)`)
  return !answers
}

export const createTestDatabase = async (): Promise<TestDatabase> => {
  let url: string
  let backend: TestDatabase["backend"]
  let dispose: () => Promise<void>
  if (await postgresServerAnswers()) {
    const name = `pfm_test_${randomBytes(6).toString("hex")}`
    const admin = new pg.Client({ connectionString: serverUrl })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    const parsed = new URL(serverUrl)
    parsed.pathname = `/${name}`
    url = parsed.toString()
    backend = "postgresql"
    dispose = async () => {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    }
  } else {
    const embedded = await startEmbeddedPostgres()
    url = embedded.url
    backend = "pglite"
    dispose = embedded.close
  }
  const layer = PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })
  const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.runPromise(Effect.provide(effect, layer))
  await run(loadFixtureSchema)
  return { url, backend, layer, run, close: dispose }
}
