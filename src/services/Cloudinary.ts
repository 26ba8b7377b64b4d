import { Context, Data, Duration, Effect, Layer, Option, Redacted, Ref } from "effect"
import * as http from "node:http"
import type { DeliveryType, ResourceType } from "../domain/cloudinaryField.js"
import { redact } from "../domain/format.js"
import { AppConfig, type CloudinaryCredentials } from "./AppConfig.js"

/** The figures Cloudinary sends on every Admin API answer (`X-FeatureRateLimit-*`). */
export interface RateLimitSnapshot {
  readonly limit: number
  readonly remaining: number
  readonly resetAt: Date
}

/** What one asset looks like in a listing. */
export interface AssetInfo {
  readonly publicId: string
  readonly resourceType: ResourceType
  readonly deliveryType: DeliveryType
  readonly format: string | null
  readonly bytes: number
  readonly createdAt: Date
  readonly secureUrl: string | null
}

export interface SearchPage {
  readonly assets: ReadonlyArray<AssetInfo>
  readonly totalCount: number
  readonly nextCursor: string | null
}

export interface SearchRequest {
  readonly expression: string
  readonly maxResults: number
  readonly nextCursor: string | null
}

/** Per public id: `deleted`, `not_found` (already gone), or whatever else Cloudinary answered. */
export type DeletionResults = ReadonlyMap<string, string>

// ---- errors: the job decides what each one means for the run ----

/** 5xx, an unexpected status, a dropped connection or a timeout: worth retrying. */
export class CloudinaryUnavailable extends Data.TaggedError("CloudinaryUnavailable")<{
  readonly operation: string
  readonly status: number | null
  readonly message: string
}> {}

/** 420/429: the hourly Admin API quota is spent. */
export class CloudinaryRateLimited extends Data.TaggedError("CloudinaryRateLimited")<{
  readonly operation: string
  readonly status: number
  readonly message: string
}> {}

/** Any other 4xx (bad credentials, bad request, not allowed): retrying cannot help. */
export class CloudinaryRejected extends Data.TaggedError("CloudinaryRejected")<{
  readonly operation: string
  readonly status: number
  readonly message: string
}> {}

export type CloudinaryError = CloudinaryUnavailable | CloudinaryRateLimited | CloudinaryRejected

export interface CloudinaryShape {
  /** Bulk delete (Admin API, ≤ 100 ids, 1 quota unit per call). */
  readonly deleteAssets: (
    resourceType: ResourceType,
    deliveryType: DeliveryType,
    publicIds: ReadonlyArray<string>
  ) => Effect.Effect<DeletionResults, CloudinaryError>
  /** One page of the Search API (Admin quota, 1 unit per page). */
  readonly search: (request: SearchRequest) => Effect.Effect<SearchPage, CloudinaryError>
  /** Which of these ids exist (Admin API, ≤ 100 ids, 1 unit). */
  readonly existingAssets: (
    resourceType: ResourceType,
    deliveryType: DeliveryType,
    publicIds: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<AssetInfo>, CloudinaryError>
  /** The last figures Cloudinary reported; none before the first successful Admin call. */
  readonly rateLimit: Effect.Effect<Option.Option<RateLimitSnapshot>>
  /** Admin API requests sent by this process, attempts included. */
  readonly adminCalls: Effect.Effect<number>
}

export class Cloudinary extends Context.Tag("promptflow/Cloudinary")<Cloudinary, CloudinaryShape>() {}

export const MAX_IDS_PER_CALL = 100
export const MAX_SEARCH_RESULTS = 500

// ---- live layer: the official SDK ----

interface SdkError {
  readonly error?: { readonly message?: unknown; readonly http_code?: number }
  readonly message?: unknown
  readonly http_code?: number
  readonly code?: string
}

/** Turn whatever the SDK rejected with into one of our errors, never keeping its request options (they hold the secret). */
export const classifySdkError = (operation: string, raw: unknown, secret: string): CloudinaryError => {
  const err = (raw ?? {}) as SdkError
  const status = err.error?.http_code ?? err.http_code ?? null
  const rawMessage = err.error?.message ?? err.message ?? (err.code !== undefined ? err.code : "request failed")
  const text = redact(typeof rawMessage === "string" ? rawMessage : String(rawMessage), [secret])
  const message = err.code !== undefined && !text.includes(err.code) ? `${err.code}: ${text}` : text
  if (status === 420 || status === 429) return new CloudinaryRateLimited({ operation, status, message })
  if (status !== null && status >= 400 && status < 500) return new CloudinaryRejected({ operation, status, message })
  return new CloudinaryUnavailable({ operation, status, message })
}

interface SdkResource {
  readonly public_id: string
  readonly resource_type?: string
  readonly type?: string
  readonly format?: string
  readonly bytes?: number
  readonly created_at?: string
  readonly uploaded_at?: string
  readonly secure_url?: string
}

const toAssetInfo = (resource: SdkResource): AssetInfo => ({
  publicId: resource.public_id,
  resourceType: (resource.resource_type ?? "image") as ResourceType,
  deliveryType: (resource.type ?? "upload") as DeliveryType,
  format: resource.format ?? null,
  bytes: resource.bytes ?? 0,
  createdAt: new Date(resource.uploaded_at ?? resource.created_at ?? 0),
  secureUrl: resource.secure_url ?? null
})

interface SdkRateLimited {
  readonly rate_limit_allowed?: number
  readonly rate_limit_remaining?: number
  readonly rate_limit_reset_at?: Date | string
}

/**
 * The SDK parses CLOUDINARY_URL from the environment when it is first loaded and throws, printing the
 * URL with its secret, when that is malformed. Loading it only after our own validation avoids both.
 */
const loadSdk = Effect.promise(async () => {
  const module = await import("cloudinary")
  return module.v2 ?? module.default.v2
})

export const makeSdkCloudinary = (credentials: CloudinaryCredentials, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    const cloudinarySdk = yield* loadSdk
    const lastRateLimit = yield* Ref.make(Option.none<RateLimitSnapshot>())
    const calls = yield* Ref.make(0)
    const secret = Redacted.value(credentials.apiSecret)
    // The SDK picks http or https once, at load time; an explicit agent makes an http:// prefix work anyway.
    const agent = credentials.uploadPrefix.startsWith("http:") ? new http.Agent({ keepAlive: true }) : undefined
    const baseOptions = {
      cloud_name: credentials.cloudName,
      api_key: credentials.apiKey,
      api_secret: secret,
      upload_prefix: credentials.uploadPrefix,
      ...(agent !== undefined ? { agent } : {})
    }
    cloudinarySdk.config({ hide_sensitive: true })

    const adminCall = <A extends SdkRateLimited>(operation: string, call: () => Promise<A>) =>
      Ref.update(calls, (n) => n + 1).pipe(
        Effect.zipRight(
          Effect.tryPromise({ try: call, catch: (raw) => classifySdkError(operation, raw, secret) })
        ),
        // The SDK's own timeout does not abort Admin calls: bound each one here.
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new CloudinaryUnavailable({ operation, status: null, message: `timed out after ${Duration.format(timeout)}` })
        }),
        Effect.tap((result) =>
          result.rate_limit_allowed !== undefined && result.rate_limit_remaining !== undefined
            ? Ref.set(
                lastRateLimit,
                Option.some({
                  limit: result.rate_limit_allowed,
                  remaining: result.rate_limit_remaining,
                  resetAt: new Date(result.rate_limit_reset_at ?? 0)
                })
              )
            : Effect.void
        )
      )

    return Cloudinary.of({
      deleteAssets: (resourceType, deliveryType, publicIds) =>
        adminCall("delete resources", () =>
          cloudinarySdk.api.delete_resources([...publicIds], {
            ...baseOptions,
            resource_type: resourceType,
            type: deliveryType,
            invalidate: true
          }) as Promise<{ deleted: Record<string, string> } & SdkRateLimited>
        ).pipe(Effect.map((result) => new Map(Object.entries(result.deleted ?? {})))),
      search: (request) =>
        adminCall("search", () =>
          // The SDK's typings say the search params are a string; at runtime it takes the JSON body.
          (cloudinarySdk.api.search as unknown as (params: object, options: object) => Promise<unknown>)(
            {
              expression: request.expression,
              // The documented sort key; the window itself is in the expression.
              sort_by: [{ created_at: "desc" }],
              max_results: request.maxResults,
              ...(request.nextCursor !== null ? { next_cursor: request.nextCursor } : {})
            },
            baseOptions
          ) as Promise<{ resources: Array<SdkResource>; total_count: number; next_cursor?: string } & SdkRateLimited>
        ).pipe(
          Effect.map((result) => ({
            assets: result.resources.map(toAssetInfo),
            totalCount: result.total_count,
            nextCursor: result.next_cursor ?? null
          }))
        ),
      existingAssets: (resourceType, deliveryType, publicIds) =>
        adminCall("resources by ids", () =>
          cloudinarySdk.api.resources_by_ids([...publicIds], {
            ...baseOptions,
            resource_type: resourceType,
            type: deliveryType,
            max_results: MAX_IDS_PER_CALL
          }) as Promise<{ resources: Array<SdkResource> } & SdkRateLimited>
        ).pipe(Effect.map((result) => result.resources.map(toAssetInfo))),
      rateLimit: Ref.get(lastRateLimit),
      adminCalls: Ref.get(calls)
    })
  })

export const CloudinaryLive = Layer.effect(
  Cloudinary,
  Effect.flatMap(AppConfig, (config) => makeSdkCloudinary(config.cloudinary, config.cloudinaryTimeout))
)

// ---- in-memory layer for unit tests of the jobs ----

export interface StoredAsset extends AssetInfo {}

export interface InMemoryCloudinaryState {
  readonly assets: Map<string, StoredAsset>
  /** Calls answered with this error instead of being carried out, consumed in order. */
  readonly failures: Array<CloudinaryError>
  readonly deleteCalls: Array<{ resourceType: ResourceType; deliveryType: DeliveryType; publicIds: Array<string> }>
  limit: number
  remaining: number
}

export const inMemoryAssetKey = (resourceType: string, deliveryType: string, publicId: string) =>
  `${resourceType}/${deliveryType}/${publicId}`

export const makeInMemoryCloudinaryState = (assets: ReadonlyArray<StoredAsset> = []): InMemoryCloudinaryState => ({
  assets: new Map(assets.map((a) => [inMemoryAssetKey(a.resourceType, a.deliveryType, a.publicId), a])),
  failures: [],
  deleteCalls: [],
  limit: 500,
  remaining: 500
})

export const CloudinaryInMemory = (state: InMemoryCloudinaryState) =>
  Layer.effect(
    Cloudinary,
    Effect.gen(function* () {
      const lastRateLimit = yield* Ref.make(Option.none<RateLimitSnapshot>())
      const calls = yield* Ref.make(0)
      const admin = <A>(body: () => A): Effect.Effect<A, CloudinaryError> =>
        Effect.gen(function* () {
          yield* Ref.update(calls, (n) => n + 1)
          const failure = state.failures.shift()
          if (failure !== undefined) return yield* Effect.fail(failure)
          if (state.remaining <= 0) {
            return yield* new CloudinaryRateLimited({ operation: "admin", status: 420, message: "Rate Limit Exceeded" })
          }
          state.remaining -= 1
          yield* Ref.set(lastRateLimit, Option.some({ limit: state.limit, remaining: state.remaining, resetAt: new Date(0) }))
          return body()
        })
      return Cloudinary.of({
        deleteAssets: (resourceType, deliveryType, publicIds) =>
          admin(() => {
            state.deleteCalls.push({ resourceType, deliveryType, publicIds: [...publicIds] })
            const results = new Map<string, string>()
            for (const id of publicIds) {
              results.set(id, state.assets.delete(inMemoryAssetKey(resourceType, deliveryType, id)) ? "deleted" : "not_found")
            }
            return results as DeletionResults
          }),
        search: (request) =>
          admin(() => {
            const all = [...state.assets.values()].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
            const start = request.nextCursor === null ? 0 : Number(request.nextCursor)
            const page = all.slice(start, start + request.maxResults)
            const next = start + request.maxResults < all.length ? String(start + request.maxResults) : null
            return { assets: page, totalCount: all.length, nextCursor: next }
          }),
        existingAssets: (resourceType, deliveryType, publicIds) =>
          admin(() =>
            publicIds.flatMap((id) => {
              const found = state.assets.get(inMemoryAssetKey(resourceType, deliveryType, id))
              return found === undefined ? [] : [found]
            })
          ),
        rateLimit: Ref.get(lastRateLimit),
        adminCalls: Ref.get(calls)
      })
    })
  )
