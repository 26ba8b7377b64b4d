import * as http from "node:http"
import { v2 as cloudinary } from "cloudinary"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { signParams, startCloudinaryEmulator, type CloudinaryEmulator } from "../../src/dev/cloudinaryEmulator.js"

// The unmodified SDK drives the emulator: everything below goes over HTTP.
let emulator: CloudinaryEmulator
let clock = new Date("2026-11-30T10:15:00Z")
const agent = new http.Agent()
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK's option typings omit the per-call credentials
const options = (extra: Record<string, unknown> = {}): any => ({
  cloud_name: emulator.cloudName,
  api_key: emulator.apiKey,
  api_secret: emulator.apiSecret,
  upload_prefix: emulator.url,
  agent,
  ...extra
})
const days = (n: number) => new Date(clock.getTime() - n * 86_400_000)
type Resources = { resources: Array<{ public_id: string; resource_type: string }>; next_cursor?: string; total_count?: number }
const search = (body: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  (cloudinary.api.search as unknown as (p: object, o: object) => Promise<Resources & Record<string, unknown>>)(body, options(extra))
const rejection = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (error) {
    return error as { error?: { http_code?: number; message?: string }; http_code?: number; code?: string; message?: string }
  }
  throw new Error("expected a rejection")
}

beforeAll(async () => {
  emulator = await startCloudinaryEmulator({ hourlyLimit: 50, now: () => clock })
})
afterAll(async () => emulator.close())
beforeEach(() => {
  clock = new Date("2026-11-30T10:15:00Z")
  emulator.clearFaults()
  emulator.resetRequests()
  emulator.setRemainingQuota(50)
})

describe("Cloudinary emulator through the official SDK", () => {
  it("answers 401 to bad credentials", async () => {
    const error = await rejection(cloudinary.api.resources(options({ api_secret: "wrong" })))
    expect(error.error?.http_code).toBe(401)
  })

  it("lists resources with max_results, next_cursor, start_at and direction", async () => {
    for (let i = 0; i < 5; i++) emulator.addAsset({ publicId: `list/item${i}`, createdAt: days(i + 1) })
    const first = (await cloudinary.api.resources(options({ max_results: 2, prefix: "list/" }))) as Resources
    expect(first.resources.map((r) => r.public_id)).toEqual(["list/item0", "list/item1"])
    const second = (await cloudinary.api.resources(options({ max_results: 2, prefix: "list/", next_cursor: first.next_cursor }))) as Resources
    expect(second.resources.map((r) => r.public_id)).toEqual(["list/item2", "list/item3"])
    const ascending = (await cloudinary.api.resources(options({ max_results: 500, direction: "asc", start_at: days(3) }))) as Resources
    const names = ascending.resources.map((r) => r.public_id).filter((id) => id.startsWith("list/"))
    expect(names).toEqual(["list/item2", "list/item1", "list/item0"])
  })

  it("searches by resource type and time window, sorted, with cursors", async () => {
    emulator.addAsset({ publicId: "s/new_image", createdAt: days(1) })
    emulator.addAsset({ publicId: "s/new_video", resourceType: "video", createdAt: days(2) })
    emulator.addAsset({ publicId: "s/old_image", createdAt: days(30) })
    const recent = await search({ expression: "uploaded_at>7d AND public_id:s/*", sort_by: [{ uploaded_at: "desc" }], max_results: 1 })
    expect(recent.total_count).toBe(2)
    expect(recent.resources.map((r) => r.public_id)).toEqual(["s/new_image"])
    const next = await search({ expression: "uploaded_at>7d AND public_id:s/*", sort_by: [{ uploaded_at: "desc" }], max_results: 1, next_cursor: recent.next_cursor })
    expect(next.resources.map((r) => [r.public_id, r.resource_type])).toEqual([["s/new_video", "video"]])
    expect(next.next_cursor).toBeUndefined()
    const videos = await search({ expression: "resource_type:video AND created_at>1w AND public_id:s/*", max_results: 10 })
    expect(videos.resources.map((r) => r.public_id)).toEqual(["s/new_video"])
    const range = await search({ expression: "uploaded_at:[60d TO 7d] AND public_id:s/*", max_results: 10 })
    expect(range.resources.map((r) => r.public_id)).toEqual(["s/old_image"])
    const byName = await search({ expression: "public_id:s/*", sort_by: [{ public_id: "asc" }], max_results: 10 })
    expect(byName.resources.map((r) => r.public_id)).toEqual(["s/new_image", "s/new_video", "s/old_image"])
    const invalid = await rejection(search({ expression: "tags=oops OR x", max_results: 10 }))
    expect(invalid.error?.http_code).toBe(400)
  })

  it("bulk-deletes from a form body on DELETE, with not_found for unknown ids and at most 100 ids", async () => {
    emulator.addAsset({ publicId: "del/a" })
    emulator.addAsset({ publicId: "del/b c&d" })
    const result = (await cloudinary.api.delete_resources(["del/a", "del/b c&d", "del/never"], options())) as { deleted: Record<string, string> }
    expect(result.deleted).toEqual({ "del/a": "deleted", "del/b c&d": "deleted", "del/never": "not_found" })
    expect(emulator.hasAsset("image", "del/a")).toBe(false)
    const tooMany = await rejection(
      cloudinary.api.delete_resources(Array.from({ length: 101 }, (_, i) => `x${i}`), options())
    )
    expect(tooMany.error?.http_code).toBe(400)
    emulator.addAsset({ publicId: "del/video", resourceType: "video" })
    const wrongType = (await cloudinary.api.delete_resources(["del/video"], options())) as { deleted: Record<string, string> }
    expect(wrongType.deleted["del/video"]).toBe("not_found")
    const rightType = (await cloudinary.api.delete_resources(["del/video"], options({ resource_type: "video" }))) as { deleted: Record<string, string> }
    expect(rightType.deleted["del/video"]).toBe("deleted")
  })

  it("checks the signature of destroy and does not count it against the Admin quota", async () => {
    emulator.addAsset({ publicId: "destroy/me" })
    const before = emulator.adminCallCount()
    const ok = await cloudinary.uploader.destroy("destroy/me", options({ invalidate: true }))
    expect(ok).toMatchObject({ result: "ok" })
    const again = await cloudinary.uploader.destroy("destroy/me", options())
    expect(again).toMatchObject({ result: "not found" })
    expect(emulator.adminCallCount()).toBe(before)
    const forged = await rejection(cloudinary.uploader.destroy("destroy/me", options({ api_secret: "forged" })))
    expect(forged.http_code ?? forged.error?.http_code).toBe(401)
  })

  it("signs as the reference vector says", () => {
    expect(signParams({ public_id: "sample", timestamp: "1700000000" }, "abcd")).toBe("0c20945f2b1096f231c92b8f0caed57854fc6949")
  })

  it("sends the rate-limit headers on every Admin call and answers 420 once the hourly quota is spent", async () => {
    emulator.setRemainingQuota(2)
    const first = (await cloudinary.api.resources(options())) as Record<string, unknown>
    expect(first["rate_limit_allowed"]).toBe(50)
    expect(first["rate_limit_remaining"]).toBe(1)
    expect((first["rate_limit_reset_at"] as Date).toISOString()).toBe("2026-11-30T11:00:00.000Z")
    await cloudinary.api.resources(options())
    const limited = await rejection(cloudinary.api.resources(options()))
    expect(limited.error?.http_code).toBe(420)
    expect(limited.error?.message).toContain("Rate Limit Exceeded")
    clock = new Date("2026-11-30T11:00:01Z")
    const fresh = (await cloudinary.api.resources(options())) as Record<string, unknown>
    expect(fresh["rate_limit_remaining"]).toBe(49)
  })

  it("injects a chosen status on a sequence of calls", async () => {
    emulator.injectFault({ operations: ["search"], status: 503, calls: [2, 3] })
    await search({ expression: "", max_results: 1 })
    expect((await rejection(search({ expression: "", max_results: 1 }))).http_code).toBe(503)
    expect((await rejection(search({ expression: "", max_results: 1 }))).http_code).toBe(503)
    await search({ expression: "", max_results: 1 })
    expect(emulator.requests.map((r) => r.status)).toEqual([200, 503, 503, 200])
  })

  it("injects latency and dropped connections", async () => {
    emulator.injectFault({ operations: ["list"], latencyMs: 300, times: 1 })
    const started = Date.now()
    await cloudinary.api.resources(options())
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    emulator.injectFault({ operations: ["list"], drop: true, times: 1 })
    const dropped = await rejection(cloudinary.api.resources(options()))
    expect(dropped.code ?? dropped.message).toMatch(/ECONNRESET|socket hang up/)
  })

  it("injects faults on a seeded share of calls", async () => {
    emulator.injectFault({ operations: ["list"], status: 500, share: 0.5, seed: 7 })
    const statuses: Array<number> = []
    for (let i = 0; i < 40; i++) {
      statuses.push(await cloudinary.api.resources(options()).then(() => 200, (e) => e.error?.http_code ?? e.http_code))
    }
    const failures = statuses.filter((s) => s === 500).length
    expect(failures).toBeGreaterThan(10)
    expect(failures).toBeLessThan(30)
  })
})
