import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { assetKey, type AssetRef, type DeliveryType, type ResourceType } from "../domain/cloudinaryField.js"
import { type DatabaseError, toDatabaseError } from "./Database.js"
import { OWN_SCHEMA } from "./Migrations.js"

/**
 * The asset references of every prompt, parsed once per scan and kept in PostgreSQL (not in the
 * program's memory), so that each page of Cloudinary assets is matched with one anti-join.
 */
export interface StoredReference {
  readonly promptId: number
  readonly title: string
  readonly author: string
  readonly mediaType: "image" | "video"
  readonly asset: AssetRef
  readonly storedValue: string
}

export interface ReferenceIndexShape {
  readonly add: (runId: number, references: ReadonlyArray<StoredReference>) => Effect.Effect<void, DatabaseError>
  /** Marks the assets that some prompt references as seen and returns the keys of those none does. */
  readonly unreferenced: (runId: number, assets: ReadonlyArray<AssetRef>) => Effect.Effect<ReadonlySet<string>, DatabaseError>
  /** The (resource type, delivery type) pairs among references the scan has not seen. */
  readonly unseenGroups: (runId: number) => Effect.Effect<ReadonlyArray<{ resourceType: ResourceType; deliveryType: DeliveryType }>, DatabaseError>
  /** Distinct public ids of one group that the scan has not seen, by keyset page. */
  readonly unseenPublicIds: (
    runId: number,
    group: { resourceType: ResourceType; deliveryType: DeliveryType },
    afterPublicId: string,
    limit: number
  ) => Effect.Effect<ReadonlyArray<string>, DatabaseError>
  /** Every prompt reference to these assets of one group. */
  readonly referencesTo: (
    runId: number,
    group: { resourceType: ResourceType; deliveryType: DeliveryType },
    publicIds: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<StoredReference>, DatabaseError>
  readonly clear: (runId: number) => Effect.Effect<void, DatabaseError>
}

export class ReferenceIndex extends Context.Tag("promptflow/ReferenceIndex")<ReferenceIndex, ReferenceIndexShape>() {}

interface ReferenceRow {
  readonly resource_type: ResourceType
  readonly delivery_type: DeliveryType
  readonly public_id: string
  readonly prompt_id: string
  readonly title: string
  readonly author: string
  readonly media_type: "image" | "video"
  readonly stored_value: string
}

const toReference = (row: ReferenceRow): StoredReference => ({
  promptId: Number(row.prompt_id),
  title: row.title,
  author: row.author,
  mediaType: row.media_type,
  asset: { resourceType: row.resource_type, deliveryType: row.delivery_type, publicId: row.public_id },
  storedValue: row.stored_value
})

export const makeSqlReferenceIndex = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const table = sql(`${OWN_SCHEMA}.scan_references`)
  const runs = sql(`${OWN_SCHEMA}.runs`)

  // Left behind by a run that was killed: its rows are scratch, never results.
  yield* sql`DELETE FROM ${table} WHERE run_id NOT IN (SELECT id FROM ${runs} WHERE outcome = 'running' AND started_at > now() - interval '1 day')`.pipe(
    Effect.mapError(toDatabaseError("clear stale scan references"))
  )

  return ReferenceIndex.of({
    add: (runId, references) =>
      references.length === 0
        ? Effect.void
        : sql`INSERT INTO ${table} ${sql.insert(
            references.map((r) => ({
              run_id: runId,
              resource_type: r.asset.resourceType,
              delivery_type: r.asset.deliveryType,
              public_id: r.asset.publicId,
              prompt_id: r.promptId,
              title: r.title,
              author: r.author,
              media_type: r.mediaType,
              stored_value: r.storedValue
            }))
          )}`.pipe(Effect.asVoid, Effect.mapError(toDatabaseError("index prompt references"))),
    unreferenced: (runId, assets) =>
      assets.length === 0
        ? Effect.succeed(new Set<string>())
        : Effect.gen(function* () {
            const types = assets.map((a) => a.resourceType)
            const deliveries = assets.map((a) => a.deliveryType)
            const ids = assets.map((a) => a.publicId)
            const page = sql`SELECT * FROM unnest(${types}::text[], ${deliveries}::text[], ${ids}::text[]) AS page(resource_type, delivery_type, public_id)`
            yield* sql`UPDATE ${table} AS r SET seen = true FROM (${page}) AS page
              WHERE r.run_id = ${runId} AND r.resource_type = page.resource_type AND r.delivery_type = page.delivery_type
                AND r.public_id = page.public_id AND NOT r.seen`
            const rows = yield* sql<{ resource_type: ResourceType; delivery_type: DeliveryType; public_id: string }>`
              SELECT page.resource_type, page.delivery_type, page.public_id FROM (${page}) AS page
              WHERE NOT EXISTS (SELECT 1 FROM ${table} r WHERE r.run_id = ${runId} AND r.resource_type = page.resource_type
                AND r.delivery_type = page.delivery_type AND r.public_id = page.public_id)`
            return new Set(rows.map((row) => assetKey({ resourceType: row.resource_type, deliveryType: row.delivery_type, publicId: row.public_id })))
          }).pipe(Effect.mapError(toDatabaseError("match assets against references"))),
    unseenGroups: (runId) =>
      sql<{ resource_type: ResourceType; delivery_type: DeliveryType }>`
        SELECT DISTINCT resource_type, delivery_type FROM ${table} WHERE run_id = ${runId} AND NOT seen ORDER BY 1, 2`.pipe(
        Effect.map((rows) => rows.map((row) => ({ resourceType: row.resource_type, deliveryType: row.delivery_type }))),
        Effect.mapError(toDatabaseError("list unseen references"))
      ),
    unseenPublicIds: (runId, group, afterPublicId, limit) =>
      sql<{ public_id: string }>`
        SELECT DISTINCT public_id COLLATE "C" AS public_id FROM ${table}
        WHERE run_id = ${runId} AND resource_type = ${group.resourceType} AND delivery_type = ${group.deliveryType}
          AND NOT seen AND public_id COLLATE "C" > ${afterPublicId}
        ORDER BY 1 LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map((row) => row.public_id)),
        Effect.mapError(toDatabaseError("list unseen references"))
      ),
    referencesTo: (runId, group, publicIds) =>
      publicIds.length === 0
        ? Effect.succeed([])
        : sql<ReferenceRow>`
            SELECT * FROM ${table} WHERE run_id = ${runId} AND resource_type = ${group.resourceType}
              AND delivery_type = ${group.deliveryType} AND public_id IN ${sql.in(publicIds)} ORDER BY prompt_id, media_type`.pipe(
            Effect.map((rows) => rows.map(toReference)),
            Effect.mapError(toDatabaseError("read references"))
          ),
    clear: (runId) =>
      sql`DELETE FROM ${table} WHERE run_id = ${runId}`.pipe(Effect.asVoid, Effect.mapError(toDatabaseError("clear scan references")))
  })
})

export const ReferenceIndexLive = Layer.effect(ReferenceIndex, makeSqlReferenceIndex)

// ---- in-memory layer ----

export const ReferenceIndexInMemory = () => {
  const rows: Array<StoredReference & { runId: number; seen: boolean }> = []
  const sameGroup = (a: AssetRef, g: { resourceType: string; deliveryType: string }) =>
    a.resourceType === g.resourceType && a.deliveryType === g.deliveryType
  return Layer.succeed(
    ReferenceIndex,
    ReferenceIndex.of({
      add: (runId, references) => Effect.sync(() => void rows.push(...references.map((r) => ({ ...r, runId, seen: false })))),
      unreferenced: (runId, assets) =>
        Effect.sync(() => {
          const orphans = new Set<string>()
          for (const asset of assets) {
            const matching = rows.filter((r) => r.runId === runId && assetKey(r.asset) === assetKey(asset))
            for (const r of matching) r.seen = true
            if (matching.length === 0) orphans.add(assetKey(asset))
          }
          return orphans
        }),
      unseenGroups: (runId) =>
        Effect.sync(() => {
          const groups = new Map<string, { resourceType: ResourceType; deliveryType: DeliveryType }>()
          for (const r of rows) {
            if (r.runId === runId && !r.seen) groups.set(`${r.asset.resourceType}/${r.asset.deliveryType}`, { resourceType: r.asset.resourceType, deliveryType: r.asset.deliveryType })
          }
          return [...groups.values()]
        }),
      unseenPublicIds: (runId, group, afterPublicId, limit) =>
        Effect.sync(() =>
          [...new Set(rows.filter((r) => r.runId === runId && !r.seen && sameGroup(r.asset, group) && r.asset.publicId > afterPublicId).map((r) => r.asset.publicId))]
            .sort()
            .slice(0, limit)
        ),
      referencesTo: (runId, group, publicIds) =>
        Effect.sync(() => rows.filter((r) => r.runId === runId && sameGroup(r.asset, group) && publicIds.includes(r.asset.publicId))),
      clear: (runId) =>
        Effect.sync(() => {
          for (let i = rows.length - 1; i >= 0; i--) if (rows[i]!.runId === runId) rows.splice(i, 1)
        })
    })
  )
}
