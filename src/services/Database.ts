import { SqlClient, SqlError } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Data, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { assetKey, promptAssets } from "../domain/cloudinaryField.js"
import type { TrashedPrompt } from "../domain/prompt.js"
import { hasExpired, type RetentionCutoffs } from "../domain/retention.js"
import { AppConfig, databaseUrl, type PremiumTierSource } from "./AppConfig.js"

/**
 * PromptFlow's tables as the jobs need them. The live layer speaks SQL through @effect/sql-pg; the
 * schema belongs to Django, so nothing here creates or alters PromptFlow's tables.
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string
  readonly message: string
  /** A dropped connection, a timeout, a deadlock: the same statement may succeed if tried again. */
  readonly transient: boolean
}> {}

/** A setting that names database objects which do not exist (PREMIUM_TIER_SOURCE): a configuration error. */
export class DatabaseSetupError extends Data.TaggedError("DatabaseSetupError")<{ readonly message: string }> {}

export interface LockedBatch {
  /** The requested prompts that are still trashed and expired, now locked until the batch ends. */
  readonly prompts: ReadonlyArray<TrashedPrompt>
  /** Asset keys of these prompts that a prompt outside the locked set still references. */
  readonly sharedAssetKeys: ReadonlySet<string>
}

export interface PurgeDecision {
  readonly purge: ReadonlyArray<number>
}

/** A prompt's stored media columns, live and trashed alike (trashed prompts still own their files). */
export interface PromptMediaRow {
  readonly id: number
  readonly title: string
  readonly author: string
  readonly featuredImage: string | null
  readonly featuredVideo: string | null
}

export interface DatabaseShape {
  /** Every prompt with a media column set, by keyset page on id. */
  readonly promptMedia: (page: { readonly afterId: number; readonly limit: number }) => Effect.Effect<ReadonlyArray<PromptMediaRow>, DatabaseError>
  /** How many trashed prompts have expired (for the progress indicator and the start line). */
  readonly countExpired: (cutoffs: RetentionCutoffs) => Effect.Effect<number, DatabaseError>
  /** A keyset page of expired trashed prompts, by id. */
  readonly expiredTrash: (
    cutoffs: RetentionCutoffs,
    page: { readonly afterId: number; readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<TrashedPrompt>, DatabaseError>
  /**
   * In one transaction: lock the prompts among `ids` that are still expired (re-checking the trash
   * condition, so a prompt restored meanwhile drops out), let `decide` do the outside work, then
   * delete the rows it chose with everything Django would cascade. A failure rolls the batch back.
   */
  readonly purgeExpired: <A extends PurgeDecision, E, R>(
    ids: ReadonlyArray<number>,
    cutoffs: RetentionCutoffs,
    decide: (batch: LockedBatch) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, DatabaseError | E, R>
  /** A session-level advisory lock held for the scope; false when another run holds it. */
  readonly tryRunLock: (name: string) => Effect.Effect<boolean, DatabaseError, Scope.Scope>
}

export class Database extends Context.Tag("promptflow/Database")<Database, DatabaseShape>() {}

// ---- error classification ----

const TRANSIENT_SQLSTATE = /^(08|53|57P0[123]|40001|40P01|55P03)/
const TRANSIENT_NODE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENOTFOUND"])

export const isTransientCause = (cause: unknown): boolean => {
  let current: unknown = cause
  for (let depth = 0; depth < 5 && current !== null && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE_CODES.has(code))) return true
    const message = (current as { message?: unknown }).message
    if (typeof message === "string" && /Connection terminated|timeout|connection error/i.test(message)) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

const describeCause = (error: SqlError.SqlError): string => {
  const cause = error.cause as { message?: unknown } | undefined
  return typeof cause?.message === "string" && cause.message !== "" ? cause.message : error.message
}

export const toDatabaseError = (operation: string) => (error: SqlError.SqlError) =>
  new DatabaseError({ operation, message: describeCause(error), transient: isTransientCause(error) })

// ---- live layer ----

interface PromptRow {
  readonly id: string | number
  readonly title: string
  readonly author_id: number
  readonly deleted_at: Date
  readonly featured_image: string | null
  readonly featured_video: string | null
  readonly premium: boolean
}

const toTrashedPrompt = (row: PromptRow): TrashedPrompt => ({
  id: Number(row.id),
  title: row.title,
  authorId: Number(row.author_id),
  deletedAt: new Date(row.deleted_at),
  premium: row.premium === true,
  featuredImage: row.featured_image,
  featuredVideo: row.featured_video
})

/** Hash a lock name into the bigint key space of pg_advisory_lock, stably. */
const advisoryKey = (name: string): string => {
  let hash = 0n
  for (const char of `promptflow-maintenance:${name}`) hash = (hash * 31n + BigInt(char.codePointAt(0)!)) % 9223372036854775783n
  return hash.toString()
}

export const makeSqlDatabase = (premiumTier: PremiumTierSource) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const isPremium =
      premiumTier.kind === "none"
        ? sql`false`
        : sql`EXISTS (SELECT 1 FROM ${sql(premiumTier.table)} AS tier WHERE tier.${sql(premiumTier.userColumn)} = p.author_id AND tier.${sql(premiumTier.column)} IS TRUE)`

    if (premiumTier.kind === "column") {
      // A wrong table or column must stop the run at start-up, not in the middle of a purge.
      yield* sql`SELECT ${sql(premiumTier.userColumn)}, ${sql(premiumTier.column)} FROM ${sql(premiumTier.table)} WHERE false`.pipe(
        Effect.mapError(
          (error) =>
            new DatabaseSetupError({
              message: `PREMIUM_TIER_SOURCE ${premiumTier.table}.${premiumTier.column} (user column ${premiumTier.userColumn}) cannot be read: ${describeCause(error)}`
            })
        )
      )
    }

    const expiredCondition = (cutoffs: RetentionCutoffs) =>
      sql`p.deleted_at IS NOT NULL AND p.deleted_at <= CASE WHEN ${isPremium} THEN ${cutoffs.premium}::timestamptz ELSE ${cutoffs.free}::timestamptz END`

    const selectColumns = sql`p.id, p.title, p.author_id, p.deleted_at, p.featured_image, p.featured_video, ${isPremium} AS premium`

    const expiredTrash: DatabaseShape["expiredTrash"] = (cutoffs, page) =>
      sql<PromptRow>`
        SELECT ${selectColumns} FROM prompts_prompt p
        WHERE ${expiredCondition(cutoffs)} AND p.id > ${page.afterId}
        ORDER BY p.id LIMIT ${page.limit}`.pipe(
        Effect.map((rows) => rows.map(toTrashedPrompt)),
        Effect.mapError(toDatabaseError("list expired prompts"))
      )

    const promptMedia: DatabaseShape["promptMedia"] = (page) =>
      sql<{ id: string; title: string; author: string | null; featured_image: string | null; featured_video: string | null }>`
        SELECT p.id, p.title, u.username AS author, p.featured_image, p.featured_video
        FROM prompts_prompt p LEFT JOIN auth_user u ON u.id = p.author_id
        WHERE p.id > ${page.afterId} AND (p.featured_image IS NOT NULL OR p.featured_video IS NOT NULL)
        ORDER BY p.id LIMIT ${page.limit}`.pipe(
        Effect.map((rows) =>
          rows.map((row) => ({
            id: Number(row.id),
            title: row.title,
            author: row.author ?? "",
            featuredImage: row.featured_image,
            featuredVideo: row.featured_video
          }))
        ),
        Effect.mapError(toDatabaseError("read prompt media"))
      )

    const countExpired: DatabaseShape["countExpired"] = (cutoffs) =>
      sql<{ count: string }>`SELECT count(*) AS count FROM prompts_prompt p WHERE ${expiredCondition(cutoffs)}`.pipe(
        Effect.map((rows) => Number(rows[0]?.count ?? 0)),
        Effect.mapError(toDatabaseError("count expired prompts"))
      )

    const sharedAssetKeys = (prompts: ReadonlyArray<TrashedPrompt>) =>
      Effect.gen(function* () {
        const wanted = new Set(prompts.flatMap((p) => promptAssets(p).map(assetKey)))
        if (wanted.size === 0) return new Set<string>()
        const publicIds = [...new Set(prompts.flatMap((p) => promptAssets(p).map((a) => a.publicId)))]
        // strpos narrows the rows in SQL; the exact comparison uses the same parser as everywhere else.
        const rows = yield* sql<{ featured_image: string | null; featured_video: string | null }>`
          SELECT p.featured_image, p.featured_video FROM prompts_prompt p
          WHERE p.id NOT IN ${sql.in(prompts.map((p) => p.id))}
            AND EXISTS (
              SELECT 1 FROM unnest(${publicIds}::text[]) AS candidate(public_id)
              WHERE strpos(p.featured_image, candidate.public_id) > 0 OR strpos(p.featured_video, candidate.public_id) > 0)`
        const shared = new Set<string>()
        for (const row of rows) {
          for (const asset of promptAssets({ featuredImage: row.featured_image, featuredVideo: row.featured_video })) {
            const key = assetKey(asset)
            if (wanted.has(key)) shared.add(key)
          }
        }
        return shared
      })

    const deleteWithDependents = (ids: ReadonlyArray<number>) =>
      Effect.gen(function* () {
        const inIds = sql.in(ids)
        // Django's hard_delete order (fixture README); the FKs are deferred, so the order is for readers.
        yield* sql`DELETE FROM prompts_contentflag WHERE moderation_log_id IN (SELECT id FROM prompts_moderationlog WHERE prompt_id IN ${inIds})`
        yield* sql`DELETE FROM prompts_prompt_likes WHERE prompt_id IN ${inIds}`
        yield* sql`DELETE FROM prompts_comment WHERE prompt_id IN ${inIds}`
        yield* sql`DELETE FROM taggit_taggeditem WHERE content_type_id IN (SELECT id FROM django_content_type WHERE app_label = 'prompts' AND model = 'prompt') AND object_id IN ${inIds}`
        yield* sql`DELETE FROM prompts_moderationlog WHERE prompt_id IN ${inIds}`
        yield* sql`DELETE FROM prompts_prompt WHERE id IN ${inIds} AND deleted_at IS NOT NULL`
      })

    const purgeExpired: DatabaseShape["purgeExpired"] = (ids, cutoffs, decide) =>
      Effect.gen(function* () {
        const locked =
          ids.length === 0
            ? []
            : (yield* sql<PromptRow>`
                SELECT ${selectColumns} FROM prompts_prompt p
                WHERE p.id IN ${sql.in(ids)} AND ${expiredCondition(cutoffs)}
                ORDER BY p.id FOR UPDATE OF p`.pipe(Effect.mapError(toDatabaseError("lock expired prompts")))).map(
                toTrashedPrompt
              )
        const shared =
          locked.length === 0
            ? new Set<string>()
            : yield* sharedAssetKeys(locked).pipe(Effect.mapError(toDatabaseError("find shared assets")))
        const decision = yield* decide({ prompts: locked, sharedAssetKeys: shared })
        const lockedIds = new Set(locked.map((p) => p.id))
        const purge = decision.purge.filter((id) => lockedIds.has(id))
        if (purge.length > 0) {
          yield* deleteWithDependents(purge).pipe(Effect.mapError(toDatabaseError("delete prompts")))
        }
        return decision
      }).pipe(
        sql.withTransaction,
        Effect.mapError((error) =>
          error instanceof SqlError.SqlError ? toDatabaseError("commit purge")(error) : error
        )
      )

    const tryRunLock: DatabaseShape["tryRunLock"] = (name) =>
      Effect.gen(function* () {
        const connection = yield* sql.reserve
        const key = advisoryKey(name)
        const rows = yield* connection.executeValues(`SELECT pg_try_advisory_lock(${key}::bigint)`, [])
        const acquired = rows[0]?.[0] === true
        if (acquired) {
          yield* Effect.addFinalizer(() =>
            connection.executeValues(`SELECT pg_advisory_unlock(${key}::bigint)`, []).pipe(Effect.ignore)
          )
        }
        return acquired
      }).pipe(Effect.mapError(toDatabaseError("take the run lock")))

    return Database.of({ promptMedia, countExpired, expiredTrash, purgeExpired, tryRunLock })
  })

/** The PostgreSQL pool for DATABASE_URL. Its layer runs `SELECT 1`, so a bad URL fails at start-up. */
export const PgLive = Layer.unwrapEffect(
  Effect.map(databaseUrl, (url) =>
    PgClient.layer({
      url,
      maxConnections: 4,
      connectTimeout: Duration.seconds(10),
      applicationName: "promptflow-maintenance"
    })
  )
)

export const DatabaseLive = Layer.effect(
  Database,
  Effect.flatMap(AppConfig, (config) => makeSqlDatabase(config.premiumTier))
)

/** Only the host and database name of a URL, for messages: never its password. */
export const describeDatabaseUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    return `${parsed.hostname}${parsed.port ? `:${parsed.port}` : ""}${parsed.pathname}`
  } catch {
    return "(unparseable URL)"
  }
}

// ---- in-memory layer for unit tests of the jobs ----

export interface InMemoryPrompt extends Omit<TrashedPrompt, "deletedAt"> {
  deletedAt: Date | null
  dependents: number
}

export interface InMemoryDatabaseState {
  readonly prompts: Map<number, InMemoryPrompt>
  /** Runs right before a batch is locked: a test restores a prompt here to race the job. */
  beforeLock?: (ids: ReadonlyArray<number>) => void
  /** Fails the next purge transactions with these errors, in order. */
  readonly purgeFailures: Array<DatabaseError>
  readonly heldLocks: Set<string>
}

export const makeInMemoryDatabaseState = (prompts: ReadonlyArray<InMemoryPrompt>): InMemoryDatabaseState => ({
  prompts: new Map(prompts.map((p) => [p.id, { ...p }])),
  purgeFailures: [],
  heldLocks: new Set()
})

const asTrashed = (p: InMemoryPrompt): TrashedPrompt => ({ ...p, deletedAt: p.deletedAt! })

export const DatabaseInMemory = (state: InMemoryDatabaseState) =>
  Layer.succeed(
    Database,
    Database.of({
      promptMedia: (page) =>
        Effect.sync(() =>
          [...state.prompts.values()]
            .filter((p) => p.id > page.afterId && (p.featuredImage !== null || p.featuredVideo !== null))
            .sort((a, b) => a.id - b.id)
            .slice(0, page.limit)
            .map((p) => ({ id: p.id, title: p.title, author: `user${p.authorId}`, featuredImage: p.featuredImage, featuredVideo: p.featuredVideo }))
        ),
      countExpired: (cutoffs) => Effect.sync(() => [...state.prompts.values()].filter((p) => hasExpired(p, cutoffs)).length),
      expiredTrash: (cutoffs, page) =>
        Effect.sync(() =>
          [...state.prompts.values()]
            .filter((p) => p.id > page.afterId && hasExpired(p, cutoffs))
            .sort((a, b) => a.id - b.id)
            .slice(0, page.limit)
            .map(asTrashed)
        ),
      purgeExpired: (ids, cutoffs, decide) =>
        Effect.gen(function* () {
          state.beforeLock?.(ids)
          const locked = ids.flatMap((id) => {
            const p = state.prompts.get(id)
            return p !== undefined && hasExpired(p, cutoffs) ? [asTrashed(p)] : []
          })
          const lockedIds = new Set(locked.map((p) => p.id))
          const wanted = new Set(locked.flatMap((p) => promptAssets(p).map(assetKey)))
          const shared = new Set<string>()
          for (const other of state.prompts.values()) {
            if (lockedIds.has(other.id)) continue
            for (const asset of promptAssets(other)) if (wanted.has(assetKey(asset))) shared.add(assetKey(asset))
          }
          const decision = yield* decide({ prompts: locked, sharedAssetKeys: shared })
          const failure = state.purgeFailures.shift()
          if (failure !== undefined) return yield* Effect.fail(failure)
          for (const id of decision.purge) if (lockedIds.has(id)) state.prompts.delete(id)
          return decision
        }),
      tryRunLock: (name) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            if (state.heldLocks.has(name)) return false
            state.heldLocks.add(name)
            return true
          }),
          (acquired) => Effect.sync(() => (acquired ? state.heldLocks.delete(name) : undefined))
        )
    })
  )
