import { Duration, Effect, Layer, TestClock, TestContext } from "effect"
import { describe, expect, it } from "vitest"
import { cleanupExitCode, runCleanup, CLEANUP_SUBJECT } from "../../src/jobs/cleanup.js"
import { AppConfigTest, type AppConfigShape } from "../../src/services/AppConfig.js"
import {
  CloudinaryInMemory,
  CloudinaryRejected,
  CloudinaryUnavailable,
  makeInMemoryCloudinaryState,
  type StoredAsset
} from "../../src/services/Cloudinary.js"
import {
  DatabaseError,
  DatabaseInMemory,
  makeInMemoryDatabaseState,
  type InMemoryPrompt
} from "../../src/services/Database.js"
import { MailerInMemory, type MailMessage } from "../../src/services/Mailer.js"
import { ProgressInMemory } from "../../src/services/Progress.js"
import { captureConsole } from "../support/console.js"

const NOW = new Date("2026-11-30T03:00:00Z")
const daysAgo = (days: number) => new Date(NOW.getTime() - days * 86_400_000)

let nextId = 1
const prompt = (overrides: Partial<InMemoryPrompt>): InMemoryPrompt => ({
  id: nextId++,
  title: `Prompt ${nextId}`,
  authorId: 1,
  deletedAt: null,
  premium: false,
  featuredImage: null,
  featuredVideo: null,
  dependents: 3,
  ...overrides
})

const asset = (publicId: string, resourceType: "image" | "video" = "image"): StoredAsset => ({
  publicId,
  resourceType,
  deliveryType: "upload",
  format: "jpg",
  bytes: 1000,
  createdAt: daysAgo(30),
  secureUrl: null
})

interface Setup {
  prompts: Array<InMemoryPrompt>
  assets?: Array<StoredAsset>
  config?: Partial<AppConfigShape>
  mailFailure?: string
  dryRun?: boolean
  arrange?: (state: {
    database: ReturnType<typeof makeInMemoryDatabaseState>
    cloudinary: ReturnType<typeof makeInMemoryCloudinaryState>
  }) => void
}

const run = async (setup: Setup) => {
  const database = makeInMemoryDatabaseState(setup.prompts)
  const cloudinary = makeInMemoryCloudinaryState(setup.assets ?? [])
  setup.arrange?.({ database, cloudinary })
  const outbox: Array<MailMessage> = []
  const lines: Array<string> = []
  const progress: Array<string> = []
  const layers = Layer.mergeAll(
    AppConfigTest({ retry: { maxRetries: 2, maxElapsed: Duration.seconds(5) }, ...setup.config }),
    DatabaseInMemory(database),
    CloudinaryInMemory(cloudinary),
    MailerInMemory(outbox, setup.mailFailure),
    ProgressInMemory(progress)
  )
  const program = Effect.gen(function* () {
    yield* TestClock.setTime(NOW.getTime())
    const fiber = yield* Effect.fork(runCleanup({ dryRun: setup.dryRun ?? false }))
    // Retries sleep on the test clock: move it until the job is done.
    for (let i = 0; i < 50; i++) yield* TestClock.adjust(Duration.seconds(5))
    return yield* fiber.await
  }).pipe(Effect.provide(layers), Effect.withConsole(captureConsole(lines)), Effect.provide(TestContext.TestContext))
  const exit = await Effect.runPromise(Effect.scoped(program))
  if (exit._tag === "Failure") throw new Error(`job failed: ${String(exit.cause)}`)
  return { report: exit.value, database, cloudinary, outbox, lines, progress }
}

describe("cleanup-deleted-prompts (in-memory services)", () => {
  it("purges expired prompts with their assets and leaves live and in-retention prompts alone (invariant 1)", async () => {
    const live = prompt({ featuredImage: "image/upload/live_one" })
    const recent = prompt({ deletedAt: daysAgo(4), featuredImage: "image/upload/recent" })
    const premiumRecent = prompt({ deletedAt: daysAgo(20), premium: true, featuredImage: "image/upload/premium_recent" })
    const expired = prompt({ deletedAt: daysAgo(6), featuredImage: "image/upload/v1/old.jpg", featuredVideo: "video/upload/old_clip" })
    const premiumExpired = prompt({ deletedAt: daysAgo(31), premium: true, featuredVideo: "video/upload/pclip" })
    const { report, database, cloudinary, outbox, lines } = await run({
      prompts: [live, recent, premiumRecent, expired, premiumExpired],
      assets: [asset("live_one"), asset("recent"), asset("premium_recent"), asset("old"), asset("old_clip", "video"), asset("pclip", "video")]
    })
    expect([...database.prompts.keys()].sort()).toEqual([live.id, recent.id, premiumRecent.id].sort())
    expect([...cloudinary.assets.keys()].sort()).toEqual(["image/upload/live_one", "image/upload/premium_recent", "image/upload/recent"])
    expect(report).toMatchObject({ successful: 2, failed: 0, free: { deleted: 1 }, premium: { deleted: 1 } })
    expect(cleanupExitCode(report)).toBe(0)
    expect(outbox).toHaveLength(1)
    expect(outbox[0]!.subject).toBe(CLEANUP_SUBJECT)
    expect(lines).toContain("Starting cleanup of deleted prompts...")
    expect(lines).toContain("Dry-run mode: OFF")
    expect(lines).toContain(`Processing prompt ID ${expired.id}: '${expired.title}' (deleted 6 days ago)`)
    expect(lines).toContain(`✓ Successfully deleted prompt ID ${expired.id}`)
    expect(lines).toContain("Email summary sent to 1 admin(s)")
    expect(lines.at(-1)).toBe("Cleanup complete!")
  })

  it("keeps an asset that a live prompt shares with an expired one (invariant 2)", async () => {
    const live = prompt({ featuredImage: "image/upload/v99/shared/pic.png" })
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/shared/pic" })
    const { report, database, cloudinary } = await run({ prompts: [live, expired], assets: [asset("shared/pic")] })
    expect(database.prompts.has(expired.id)).toBe(false)
    expect(cloudinary.assets.has("image/upload/shared/pic")).toBe(true)
    expect(cloudinary.deleteCalls).toEqual([])
    expect(report.assetsKeptShared).toBe(1)
  })

  it("deletes an asset shared only by prompts purged in the same step", async () => {
    const a = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/twin" })
    const b = prompt({ deletedAt: daysAgo(11), featuredImage: "twin" })
    const { cloudinary, database } = await run({ prompts: [a, b], assets: [asset("twin")] })
    expect(database.prompts.size).toBe(0)
    expect(cloudinary.assets.size).toBe(0)
  })

  it("does not confuse an image and a video with the same public id", async () => {
    const live = prompt({ featuredVideo: "video/upload/same" })
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/same" })
    const { cloudinary } = await run({ prompts: [live, expired], assets: [asset("same"), asset("same", "video")] })
    expect([...cloudinary.assets.keys()]).toEqual(["video/upload/same"])
  })

  it("keeps the prompt in the trash when its assets cannot be deleted, and a re-run converges (invariant 3)", async () => {
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/flaky" })
    const failing = await run({
      prompts: [expired],
      assets: [asset("flaky")],
      arrange: ({ cloudinary }) => {
        for (let i = 0; i < 3; i++) {
          cloudinary.failures.push(new CloudinaryUnavailable({ operation: "delete resources", status: 503, message: "Service Unavailable" }))
        }
      }
    })
    expect(failing.database.prompts.has(expired.id)).toBe(true)
    expect(failing.cloudinary.assets.has("image/upload/flaky")).toBe(true)
    expect(failing.report.failed).toBe(1)
    expect(failing.report.failures[0]!.error).toContain("HTTP 503")
    expect(cleanupExitCode(failing.report)).toBe(1)
    expect(failing.outbox[0]!.text).toContain(`ID ${expired.id} '${expired.title}'`)
    expect(failing.lines).toContain(`✗ Failed to delete prompt ID ${expired.id}: Cloudinary unavailable during delete resources (HTTP 503): Service Unavailable`)

    // Same world, the outage over.
    const rerun = await run({ prompts: [...failing.database.prompts.values()], assets: [...failing.cloudinary.assets.values()] })
    expect(rerun.database.prompts.size).toBe(0)
    expect(rerun.cloudinary.assets.size).toBe(0)
    expect(cleanupExitCode(rerun.report)).toBe(0)
  })

  it("retries a transient failure and succeeds", async () => {
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/blip" })
    const { report, cloudinary } = await run({
      prompts: [expired],
      assets: [asset("blip")],
      arrange: ({ cloudinary }) =>
        cloudinary.failures.push(new CloudinaryUnavailable({ operation: "delete resources", status: null, message: "ECONNRESET" }))
    })
    expect(report.successful).toBe(1)
    expect(cloudinary.assets.size).toBe(0)
  })

  it("never retries a 4xx other than 420/429", async () => {
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/x" })
    const { report, cloudinary } = await run({
      prompts: [expired],
      assets: [asset("x")],
      arrange: ({ cloudinary }) =>
        cloudinary.failures.push(new CloudinaryRejected({ operation: "delete resources", status: 401, message: "Invalid credentials" }))
    })
    expect(report.failed).toBe(1)
    expect(cloudinary.deleteCalls).toHaveLength(0)
    expect(cloudinary.remaining).toBe(500)
  })

  it("stops every further Admin call once the quota is spent (420)", async () => {
    const prompts = [1, 2, 3].map((n) => prompt({ deletedAt: daysAgo(10), featuredImage: `image/upload/q${n}` }))
    const { report, cloudinary, database } = await run({
      prompts,
      assets: [asset("q1"), asset("q2"), asset("q3")],
      config: { cleanupBatchSize: 1 },
      arrange: ({ cloudinary }) => {
        cloudinary.remaining = 1
      }
    })
    // First batch spends the last unit, the second gets 420, the third is never sent.
    expect(cloudinary.deleteCalls).toHaveLength(1)
    expect(report.successful).toBe(1)
    expect(report.failed).toBe(2)
    expect(report.stoppedEarly).toContain("quota exhausted")
    expect(report.failures[1]!.error).toContain("not attempted")
    expect(database.prompts.size).toBe(2)
    expect(cleanupExitCode(report)).toBe(1)
  })

  it("counts not_found as already deleted", async () => {
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/gone" })
    const { report, database } = await run({ prompts: [expired], assets: [] })
    expect(database.prompts.size).toBe(0)
    expect(report).toMatchObject({ successful: 1, assetsAlreadyGone: 1, assetsDeleted: 0 })
  })

  it("does not purge a prompt restored while the job runs (invariant 4)", async () => {
    const first = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/first" })
    const restored = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/restored" })
    const { report, database, cloudinary, lines } = await run({
      prompts: [first, restored],
      assets: [asset("first"), asset("restored")],
      config: { cleanupBatchSize: 1 },
      arrange: ({ database }) => {
        database.beforeLock = (ids) => {
          // Listed with the first batch, restored by its owner before its own batch is locked.
          if (ids.includes(restored.id)) database.prompts.get(restored.id)!.deletedAt = null
        }
      }
    })
    expect(database.prompts.has(restored.id)).toBe(true)
    expect(cloudinary.assets.has("image/upload/restored")).toBe(true)
    expect(report).toMatchObject({ successful: 1, skipped: 1, failed: 0 })
    expect(lines).toContain(`- Skipped prompt ID ${restored.id}: restored or changed during the run`)
  })

  it("changes nothing in dry-run and sends no email (invariant 6)", async () => {
    const live = prompt({ featuredImage: "image/upload/shared" })
    const expired = prompt({ deletedAt: daysAgo(10), featuredImage: "image/upload/shared", featuredVideo: "video/upload/own" })
    const { report, database, cloudinary, outbox, lines } = await run({
      prompts: [live, expired],
      assets: [asset("shared"), asset("own", "video")],
      dryRun: true
    })
    expect(database.prompts.size).toBe(2)
    expect(cloudinary.assets.size).toBe(2)
    expect(cloudinary.deleteCalls).toEqual([])
    expect(outbox).toEqual([])
    expect(report.successful).toBe(1)
    expect(lines).toContain("Dry-run mode: ON")
    expect(lines).toContain(
      `[DRY RUN] Would delete prompt ID ${expired.id} and image/upload/shared (kept: another prompt uses it), video/upload/own`
    )
    expect(lines.some((l) => l.startsWith("[DRY RUN] Email preview (not sent"))).toBe(true)
  })

  it("reports an unsent email and exits 1, without undoing the purge", async () => {
    const expired = prompt({ deletedAt: daysAgo(10) })
    const { report, database, lines } = await run({ prompts: [expired], mailFailure: "connection refused" })
    expect(database.prompts.size).toBe(0)
    expect(report.mail).toEqual({ status: "failed", detail: "connection refused" })
    expect(lines).toContain("✗ Failed to send email summary: connection refused")
    expect(cleanupExitCode(report)).toBe(1)
  })

  it("sends no email when there was nothing to do", async () => {
    const { outbox, report } = await run({ prompts: [prompt({ deletedAt: daysAgo(1) })] })
    expect(outbox).toEqual([])
    expect(cleanupExitCode(report)).toBe(0)
  })

  it("reports prompts of a batch whose transaction failed as failed, and carries on", async () => {
    const a = prompt({ deletedAt: daysAgo(10) })
    const b = prompt({ deletedAt: daysAgo(10) })
    const { report, database } = await run({
      prompts: [a, b],
      config: { cleanupBatchSize: 1, retry: { maxRetries: 0, maxElapsed: Duration.seconds(1) } },
      arrange: ({ database }) =>
        database.purgeFailures.push(new DatabaseError({ operation: "commit purge", message: "deadlock detected", transient: false }))
    })
    expect(database.prompts.has(a.id)).toBe(true)
    expect(database.prompts.has(b.id)).toBe(false)
    expect(report.failures[0]).toMatchObject({ id: a.id, error: "database error during commit purge: deadlock detected" })
  })

  it("honours the configured retention", async () => {
    const sixDays = prompt({ deletedAt: daysAgo(6) })
    const { database } = await run({ prompts: [sixDays], config: { retention: { freeDays: 7, premiumDays: 30 } } })
    expect(database.prompts.has(sixDays.id)).toBe(true)
  })

  it("refuses to run while another run holds the lock", async () => {
    const expired = prompt({ deletedAt: daysAgo(10) })
    const { report, database } = await run({
      prompts: [expired],
      arrange: ({ database }) => database.heldLocks.add("cleanup-deleted-prompts")
    })
    expect(database.prompts.size).toBe(1)
    expect(report.stoppedEarly).toContain("another cleanup run holds the lock")
    expect(cleanupExitCode(report)).toBe(1)
  })
})
