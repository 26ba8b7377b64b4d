import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A local stand-in for Cloudinary's API, speaking enough of the wire protocol
 * (shared/reference/cloudinary-api.md) for the unmodified `cloudinary` SDK to work against it through
 * `upload_prefix`. It serves the demo and the tests: Basic auth, listing, Search, bulk delete, signed
 * destroy and upload, the hourly Admin quota with its headers and 420, and injected faults.
 */
export type EmulatorResourceType = "image" | "video" | "raw"

export interface EmulatorAsset {
  readonly publicId: string
  readonly resourceType: EmulatorResourceType
  readonly type: string
  readonly format: string
  readonly bytes: number
  readonly createdAt: Date
  readonly version: number
}

export type Operation = "list" | "search" | "delete" | "destroy" | "upload" | "other"

export interface Fault {
  /** Which operations it applies to; all Admin and Upload operations when absent. */
  readonly operations?: ReadonlyArray<Operation>
  /** Answer with this status and a Cloudinary-style error body. */
  readonly status?: number
  /** Delay the answer (before the status or the real handling). */
  readonly latencyMs?: number
  /** Destroy the socket without answering. */
  readonly drop?: boolean
  /** Apply to these matching calls, counted from 1 since the fault was injected (a sequence). */
  readonly calls?: ReadonlyArray<number>
  /** Apply to the next N matching calls. */
  readonly times?: number
  /** Apply to this share (0..1) of matching calls, drawn from a seeded generator. */
  readonly share?: number
  readonly seed?: number
}

export interface RecordedRequest {
  readonly method: string
  readonly operation: Operation
  readonly path: string
  readonly status: number
  readonly admin: boolean
  readonly body: unknown
}

export interface EmulatorOptions {
  readonly cloudName?: string
  readonly apiKey?: string
  readonly apiSecret?: string
  /** Admin API calls allowed per hour (500 on the free plan). */
  readonly hourlyLimit?: number
  readonly now?: () => Date
  readonly port?: number
  readonly host?: string
  /** Called with one line per answered request (`dev emulator` prints them). */
  readonly log?: (line: string) => void
}

interface ActiveFault {
  readonly fault: Fault
  seen: number
  applied: number
  random: () => number
}

export interface CloudinaryEmulator {
  readonly url: string
  readonly port: number
  readonly cloudName: string
  readonly apiKey: string
  readonly apiSecret: string
  /** `cloudinary://key:secret@cloud?upload_prefix=http://127.0.0.1:PORT` */
  readonly cloudinaryUrl: string
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Admin API requests answered (any status but a dropped connection), the calls the quota counts. */
  readonly adminCallCount: () => number
  readonly addAsset: (asset: Partial<EmulatorAsset> & { publicId: string }) => EmulatorAsset
  readonly assets: () => ReadonlyArray<EmulatorAsset>
  readonly hasAsset: (resourceType: EmulatorResourceType, publicId: string, type?: string) => boolean
  readonly injectFault: (fault: Fault) => void
  readonly clearFaults: () => void
  readonly resetRequests: () => void
  readonly setRemainingQuota: (remaining: number) => void
  /** Called before each request is handled; a test can race the job from here. */
  onRequest: ((request: { operation: Operation; method: string; path: string; body: unknown }) => Promise<void> | void) | null
  readonly close: () => Promise<void>
}

const ADMIN_OPERATIONS: ReadonlySet<Operation> = new Set(["list", "search", "delete", "other"])

const mulberry32 = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

/** Form fields as the SDK sends them; `key[]` repeated keys become arrays. */
type Fields = Record<string, string | Array<string>>

const addField = (fields: Fields, key: string, value: string) => {
  if (key.endsWith("[]")) {
    const name = key.slice(0, -2)
    const existing = fields[name]
    fields[name] = Array.isArray(existing) ? [...existing, value] : [value]
  } else {
    fields[key] = value
  }
}

const parseUrlEncoded = (text: string): Fields => {
  const fields: Fields = {}
  for (const [key, value] of new URLSearchParams(text)) addField(fields, key, value)
  return fields
}

const parseMultipart = (body: Buffer, contentType: string): Fields => {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1]
  if (boundary === undefined) throw new HttpFailure(400, "Missing multipart boundary")
  const fields: Fields = {}
  for (const part of body.toString("utf8").split(`--${boundary}`)) {
    const match = /name="([^"]+)"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*)\r\n$/.exec(part)
    if (match !== null) addField(fields, match[1]!, match[2]!)
  }
  return fields
}

const single = (fields: Fields, key: string): string | undefined => {
  const value = fields[key]
  return Array.isArray(value) ? value[0] : value
}

/** Cloudinary's request signature: sorted non-blank params, `&` escaped, secret appended, sha1 (or sha256). */
export const signParams = (params: Record<string, string>, secret: string, algorithm: "sha1" | "sha256" = "sha1") =>
  createHash(algorithm)
    .update(
      Object.entries(params)
        .filter(([, v]) => v !== "")
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`.replace(/&/g, "%26"))
        .join("&") + secret
    )
    .digest("hex")

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  M: 30 * 86_400_000,
  y: 365 * 86_400_000
}

const parseInstant = (raw: string, now: Date): Date => {
  const value = raw.replace(/^["']|["']$/g, "")
  const relative = /^(\d+)([smhdwMy])$/.exec(value)
  if (relative !== null) return new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2]!]!)
  const absolute = new Date(value)
  if (Number.isNaN(absolute.getTime())) throw new HttpFailure(400, `Invalid date in expression: ${raw}`)
  return absolute
}

type Predicate = (asset: EmulatorAsset) => boolean

/** The Search expression subset: terms joined by AND; field:value, field>x, field>=x, field<x, field<=x, field:[a TO b]. */
export const compileExpression = (expression: string, now: Date): Predicate => {
  const trimmed = expression.trim()
  if (trimmed === "") return () => true
  const terms = trimmed.split(/\s+AND\s+/i)
  const predicates = terms.map((term): Predicate => {
    const range = /^(created_at|uploaded_at):\[(\S+)\s+TO\s+(\S+)\]$/i.exec(term)
    if (range !== null) {
      // Relative bounds read "from 4w ago to 1w ago": the older bound may come first or second.
      const a = parseInstant(range[2]!, now).getTime()
      const b = parseInstant(range[3]!, now).getTime()
      const [low, high] = a <= b ? [a, b] : [b, a]
      return (asset) => asset.createdAt.getTime() >= low && asset.createdAt.getTime() <= high
    }
    const compare = /^(created_at|uploaded_at)\s*(>=|<=|>|<|=|:)\s*(\S+)$/i.exec(term)
    if (compare !== null) {
      const instant = parseInstant(compare[3]!, now).getTime()
      const op = compare[2]!
      // "uploaded_at>7d" means newer than 7 days ago.
      return (asset) => {
        const t = asset.createdAt.getTime()
        return op === ">" ? t > instant : op === ">=" ? t >= instant : op === "<" ? t < instant : op === "<=" ? t <= instant : t === instant
      }
    }
    const field = /^(resource_type|type|public_id|format)\s*[:=]\s*(\S+)$/i.exec(term)
    if (field !== null) {
      const wanted = field[2]!.replace(/^["']|["']$/g, "")
      const key = field[1]!.toLowerCase()
      const read = (asset: EmulatorAsset) =>
        key === "resource_type" ? asset.resourceType : key === "type" ? asset.type : key === "format" ? asset.format : asset.publicId
      if (wanted.endsWith("*")) return (asset) => read(asset).startsWith(wanted.slice(0, -1))
      return (asset) => read(asset) === wanted
    }
    throw new HttpFailure(400, `Invalid search expression: ${term}`)
  })
  return (asset) => predicates.every((p) => p(asset))
}

const toResource = (asset: EmulatorAsset, cloudName: string, baseUrl: string) => {
  const path = `${asset.resourceType}/${asset.type}/v${asset.version}/${asset.publicId}.${asset.format}`
  return {
    asset_id: createHash("md5").update(`${asset.resourceType}/${asset.type}/${asset.publicId}`).digest("hex"),
    public_id: asset.publicId,
    format: asset.format,
    version: asset.version,
    resource_type: asset.resourceType,
    type: asset.type,
    created_at: asset.createdAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
    uploaded_at: asset.createdAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
    bytes: asset.bytes,
    width: asset.resourceType === "raw" ? undefined : 800,
    height: asset.resourceType === "raw" ? undefined : 600,
    status: "active",
    url: `${baseUrl.replace("https:", "http:")}/${cloudName}/${path}`,
    secure_url: `https://res.cloudinary.com/${cloudName}/${path}`
  }
}

const encodeCursor = (offset: number) => Buffer.from(JSON.stringify({ offset })).toString("base64url")
const decodeCursor = (cursor: string | undefined): number => {
  if (cursor === undefined || cursor === "") return 0
  try {
    const offset = (JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { offset: unknown }).offset
    if (typeof offset === "number" && offset >= 0) return offset
  } catch {
    // fall through
  }
  throw new HttpFailure(400, "Invalid next_cursor")
}

type SortKey = { field: "created_at" | "uploaded_at" | "public_id"; direction: 1 | -1 }

const sortAssets = (assets: Array<EmulatorAsset>, keys: ReadonlyArray<SortKey>) =>
  assets.sort((a, b) => {
    for (const key of keys) {
      const diff =
        key.field === "public_id"
          ? a.publicId < b.publicId
            ? -1
            : a.publicId > b.publicId
              ? 1
              : 0
          : a.createdAt.getTime() - b.createdAt.getTime()
      if (diff !== 0) return diff * key.direction
    }
    return a.publicId < b.publicId ? -1 : a.publicId > b.publicId ? 1 : 0
  })

const describeBody = (operation: Operation, body: unknown): string => {
  const fields = (body ?? {}) as Record<string, unknown>
  if (operation === "delete") return ` public_ids=${JSON.stringify(fields["public_ids"] ?? [])}`
  if (operation === "search") return ` expression=${JSON.stringify(fields["expression"] ?? "")}`
  if (operation === "destroy" || operation === "upload") return ` public_id=${JSON.stringify(fields["public_id"] ?? "")}`
  return ""
}

export const startCloudinaryEmulator = async (options: EmulatorOptions = {}): Promise<CloudinaryEmulator> => {
  const cloudName = options.cloudName ?? "promptflow-demo"
  const apiKey = options.apiKey ?? "123456789012345"
  const apiSecret = options.apiSecret ?? randomBytes(12).toString("hex")
  const hourlyLimit = options.hourlyLimit ?? 500
  const now = options.now ?? (() => new Date())
  const store = new Map<string, EmulatorAsset>()
  const requests: Array<RecordedRequest> = []
  let faults: Array<ActiveFault> = []
  let quotaWindowStart = -1
  let used = 0
  let versionCounter = 1_700_000_000

  const keyOf = (resourceType: string, type: string, publicId: string) => `${resourceType}/${type}/${publicId}`

  const windowStartOf = (date: Date) => Math.floor(date.getTime() / 3_600_000) * 3_600_000
  const refreshWindow = () => {
    const start = windowStartOf(now())
    if (start !== quotaWindowStart) {
      quotaWindowStart = start
      used = 0
    }
  }
  const resetAt = () => new Date(quotaWindowStart + 3_600_000)

  const pickFault = (operation: Operation): Fault | null => {
    for (const active of faults) {
      const ops = active.fault.operations
      if (ops !== undefined && !ops.includes(operation)) continue
      active.seen++
      const { calls, times, share } = active.fault
      let applies: boolean
      if (calls !== undefined) applies = calls.includes(active.seen)
      else if (times !== undefined) applies = active.applied < times
      else if (share !== undefined) applies = active.random() < share
      else applies = true
      if (applies) {
        active.applied++
        return active.fault
      }
    }
    return null
  }

  const emulator: CloudinaryEmulator = {
    url: "",
    port: 0,
    cloudName,
    apiKey,
    apiSecret,
    cloudinaryUrl: "",
    requests,
    adminCallCount: () => requests.filter((r) => r.admin).length,
    addAsset: (partial) => {
      const asset: EmulatorAsset = {
        resourceType: "image",
        type: "upload",
        format: partial.resourceType === "video" ? "mp4" : partial.resourceType === "raw" ? "bin" : "jpg",
        bytes: 100_000,
        createdAt: now(),
        version: versionCounter++,
        ...partial
      }
      store.set(keyOf(asset.resourceType, asset.type, asset.publicId), asset)
      return asset
    },
    assets: () => [...store.values()],
    hasAsset: (resourceType, publicId, type = "upload") => store.has(keyOf(resourceType, type, publicId)),
    injectFault: (fault) => {
      faults.push({ fault, seen: 0, applied: 0, random: mulberry32(fault.seed ?? 42) })
    },
    clearFaults: () => {
      faults = []
    },
    resetRequests: () => {
      requests.length = 0
    },
    setRemainingQuota: (remaining) => {
      refreshWindow()
      used = Math.max(0, hourlyLimit - remaining)
    },
    onRequest: null,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }

  const authorized = (req: http.IncomingMessage): boolean => {
    const header = req.headers.authorization ?? ""
    if (!header.startsWith("Basic ")) return false
    const [key, ...rest] = Buffer.from(header.slice(6), "base64").toString("utf8").split(":")
    return key === apiKey && rest.join(":") === apiSecret
  }

  const verifySignature = (fields: Fields) => {
    if (single(fields, "api_key") !== apiKey) throw new HttpFailure(401, `Invalid api_key ${single(fields, "api_key") ?? ""}`)
    const signature = single(fields, "signature")
    const toSign: Record<string, string> = {}
    for (const [key, value] of Object.entries(fields)) {
      if (["file", "cloud_name", "resource_type", "api_key", "signature", "signature_algorithm"].includes(key)) continue
      toSign[key] = Array.isArray(value) ? value.join(",") : value
    }
    const valid = signature === signParams(toSign, apiSecret, "sha1") || signature === signParams(toSign, apiSecret, "sha256")
    if (!valid) throw new HttpFailure(401, "Invalid Signature")
    const timestamp = Number(single(fields, "timestamp"))
    // Signatures carry the client's wall-clock time, whatever clock the emulator runs its quota on.
    if (!Number.isFinite(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > 3600) {
      throw new HttpFailure(400, "Stale request - reported time is too far from the current time")
    }
  }

  const classify = (method: string, parts: ReadonlyArray<string>): Operation => {
    // parts: ["v1_1", cloud, ...]
    const rest = parts.slice(2)
    if (rest[0] === "resources" && rest[1] === "search" && method === "POST") return "search"
    if (rest[0] === "resources" && method === "GET" && rest.length >= 2) return "list"
    if (rest[0] === "resources" && method === "DELETE" && rest.length >= 2) return "delete"
    if (rest.length === 2 && rest[1] === "destroy" && method === "POST") return "destroy"
    if (rest.length === 2 && rest[1] === "upload" && method === "POST") return "upload"
    return "other"
  }

  const baseUrl = () => emulator.url

  const handleAdmin = (operation: Operation, parts: ReadonlyArray<string>, fields: Fields, json: Record<string, unknown>) => {
    const rest = parts.slice(2)
    switch (operation) {
      case "list": {
        const resourceType = rest[1]!
        const type = rest[2]
        const ids = fields["public_ids"]
        let matches = [...store.values()].filter(
          (a) => a.resourceType === resourceType && (type === undefined || a.type === type)
        )
        if (ids !== undefined) {
          const wanted = new Set(Array.isArray(ids) ? ids : [ids])
          if (wanted.size > 100) throw new HttpFailure(400, "Too many public_ids (max 100)")
          matches = matches.filter((a) => wanted.has(a.publicId))
          return { resources: matches.map((a) => toResource(a, cloudName, baseUrl())) }
        }
        const prefix = single(fields, "prefix")
        const startAt = single(fields, "start_at")
        const direction = single(fields, "direction") ?? "desc"
        if (prefix !== undefined) {
          matches = sortAssets(matches.filter((a) => a.publicId.startsWith(prefix)), [{ field: "public_id", direction: 1 }])
        } else {
          const ascending = direction === "asc" || direction === "1"
          if (startAt !== undefined) {
            const from = new Date(startAt).getTime()
            if (Number.isNaN(from)) throw new HttpFailure(400, "Invalid start_at")
            matches = matches.filter((a) => (ascending ? a.createdAt.getTime() >= from : a.createdAt.getTime() <= from))
          }
          matches = sortAssets(matches, [{ field: "created_at", direction: ascending ? 1 : -1 }])
        }
        return page(matches, single(fields, "max_results"), single(fields, "next_cursor"), 10)
      }
      case "search": {
        const predicate = compileExpression(String(json["expression"] ?? ""), now())
        const sortBy = (Array.isArray(json["sort_by"]) ? json["sort_by"] : []) as Array<Record<string, string>>
        const keys: Array<SortKey> = sortBy.flatMap((entry) =>
          Object.entries(entry).map(([field, dir]) => {
            if (field !== "created_at" && field !== "uploaded_at" && field !== "public_id") {
              throw new HttpFailure(400, `Unsupported sort_by field ${field}`)
            }
            return { field, direction: dir === "asc" ? 1 : -1 } as SortKey
          })
        )
        const matches = sortAssets(
          [...store.values()].filter(predicate),
          keys.length > 0 ? keys : [{ field: "created_at", direction: -1 }]
        )
        const result = page(matches, json["max_results"] as string | number | undefined, json["next_cursor"] as string | undefined, 50)
        return { total_count: matches.length, time: 1, ...result }
      }
      case "delete": {
        const resourceType = rest[1]!
        const type = rest[2] ?? "upload"
        const raw = fields["public_ids"]
        const ids = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
        if (ids.length === 0) throw new HttpFailure(400, "Must specify public_ids, prefix or all")
        if (ids.length > 100) throw new HttpFailure(400, "Too many public_ids (max 100)")
        const deleted: Record<string, string> = {}
        const deletedCounts: Record<string, { original: number; derived: number }> = {}
        for (const id of ids) {
          const existed = store.delete(keyOf(resourceType, type, id))
          deleted[id] = existed ? "deleted" : "not_found"
          if (existed) deletedCounts[id] = { original: 1, derived: 0 }
        }
        return { deleted, deleted_counts: deletedCounts, partial: false }
      }
      default:
        throw new HttpFailure(404, "Resource not found")
    }
  }

  const page = (matches: ReadonlyArray<EmulatorAsset>, maxRaw: string | number | undefined, cursor: string | undefined, fallback: number) => {
    const max = maxRaw === undefined ? fallback : Number(maxRaw)
    if (!Number.isInteger(max) || max < 1 || max > 500) throw new HttpFailure(400, "max_results must be between 1 and 500")
    const offset = decodeCursor(cursor)
    const slice = matches.slice(offset, offset + max)
    return {
      resources: slice.map((a) => toResource(a, cloudName, baseUrl())),
      ...(offset + max < matches.length ? { next_cursor: encodeCursor(offset + max) } : {})
    }
  }

  const handleUpload = (operation: Operation, parts: ReadonlyArray<string>, fields: Fields) => {
    verifySignature(fields)
    const requested = parts[2] ?? ""
    if (!["image", "video", "raw", "auto"].includes(requested)) throw new HttpFailure(404, "Resource not found")
    const resourceType = (requested === "auto" ? "image" : requested) as EmulatorResourceType
    const type = single(fields, "type") ?? "upload"
    const publicId = single(fields, "public_id")
    if (operation === "destroy") {
      if (publicId === undefined) throw new HttpFailure(400, "Missing required parameter - public_id")
      return { result: store.delete(keyOf(resourceType, type, publicId)) ? "ok" : "not found" }
    }
    const asset = emulator.addAsset({
      publicId: publicId ?? randomBytes(10).toString("hex"),
      resourceType,
      type,
      ...(single(fields, "format") !== undefined ? { format: single(fields, "format")! } : {}),
      bytes: (single(fields, "file") ?? "").length
    })
    return toResource(asset, cloudName, baseUrl())
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const method = (req.method ?? "GET").toUpperCase()
      const url = new URL(req.url ?? "/", "http://emulator")
      // The SDK percent-encodes the slash of resources/search: decode before routing.
      const parts = decodeURIComponent(url.pathname).split("/").filter((p) => p !== "")
      const operation = parts[0] === "v1_1" ? classify(method, parts) : "other"
      const admin = ADMIN_OPERATIONS.has(operation)
      let status = 200
      let recordedBody: unknown = null
      const headers: Record<string, string> = { "Content-Type": "application/json" }
      try {
        const body = await readBody(req)
        const contentType = req.headers["content-type"] ?? ""
        const fields: Fields = parseUrlEncoded(url.search.slice(1))
        let json: Record<string, unknown> = {}
        if (contentType.startsWith("application/json") && body.length > 0) json = JSON.parse(body.toString("utf8"))
        else if (contentType.startsWith("multipart/form-data")) Object.assign(fields, parseMultipart(body, contentType))
        else if (body.length > 0) Object.assign(fields, parseUrlEncoded(body.toString("utf8")))
        recordedBody = Object.keys(json).length > 0 ? json : fields
        await emulator.onRequest?.({ operation, method, path: url.pathname, body: recordedBody })

        if (parts[0] !== "v1_1" || parts[1] !== cloudName) throw new HttpFailure(404, "Resource not found")
        const fault = pickFault(operation)
        if (fault?.latencyMs !== undefined) await new Promise((r) => setTimeout(r, fault.latencyMs))
        if (fault?.drop === true) {
          req.socket.destroy()
          return
        }
        if (admin) {
          if (!authorized(req)) throw new HttpFailure(401, "Invalid credentials")
          refreshWindow()
          if (used >= hourlyLimit) {
            const reset = resetAt().toISOString().slice(0, 19).replace("T", " ")
            throw new HttpFailure(420, `Rate Limit Exceeded. Limit of ${hourlyLimit} api operations reached. Try again on ${reset} UTC`)
          }
          used++
          headers["X-FeatureRateLimit-Limit"] = String(hourlyLimit)
          headers["X-FeatureRateLimit-Remaining"] = String(hourlyLimit - used)
          headers["X-FeatureRateLimit-Reset"] = resetAt().toUTCString()
        }
        if (fault?.status !== undefined) throw new HttpFailure(fault.status, `Injected failure (${fault.status})`)
        const result = admin ? handleAdmin(operation, parts, fields, json) : handleUpload(operation, parts, fields)
        res.writeHead(200, headers).end(JSON.stringify(result))
      } catch (error) {
        status = error instanceof HttpFailure ? error.status : 500
        const message = error instanceof Error ? error.message : String(error)
        if (admin && !("X-FeatureRateLimit-Limit" in headers) && status !== 401) {
          headers["X-FeatureRateLimit-Limit"] = String(hourlyLimit)
          headers["X-FeatureRateLimit-Remaining"] = String(Math.max(0, hourlyLimit - used))
          headers["X-FeatureRateLimit-Reset"] = resetAt().toUTCString()
        }
        if (!res.headersSent && !req.socket.destroyed) res.writeHead(status, headers).end(JSON.stringify({ error: { message } }))
      } finally {
        if (!req.socket.destroyed || res.writableEnded) {
          requests.push({ method, operation, path: url.pathname, status, admin, body: recordedBody })
          options.log?.(`${method} ${decodeURIComponent(url.pathname)} ${operation} → ${status}${describeBody(operation, recordedBody)}`)
        }
      }
    })()
  })

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve))
  const address = server.address() as AddressInfo
  const url = `http://${address.address}:${address.port}`
  Object.assign(emulator, {
    url,
    port: address.port,
    cloudinaryUrl: `cloudinary://${apiKey}:${apiSecret}@${cloudName}?upload_prefix=${url}`
  })
  return emulator
}
