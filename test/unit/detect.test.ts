import { Duration, Effect, Layer, Option, TestClock, TestContext } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { detectExitCode, runDetect, searchExpression, type DetectOptions } from "../../src/jobs/detect.js"
import { AppConfigTest } from "../../src/services/AppConfig.js"
import { CloudinaryInMemory, CloudinaryUnavailable, makeInMemoryCloudinaryState, type StoredAsset } from "../../src/services/Cloudinary.js"
import { DatabaseInMemory, makeInMemoryDatabaseState, type InMemoryPrompt } from "../../src/services/Database.js"
import { MailerInMemory, type MailMessage } from "../../src/services/Mailer.js"
import { ProgressInMemory } from "../../src/services/Progress.js"
import { ReferenceIndexInMemory } from "../../src/services/ReferenceIndex.js"
import { makeInMemoryReportsState, ReportsInMemory } from "../../src/services/Reports.js"
import { captureConsole } from "../support/console.js"

const NOW = new Date("2026-11-30T04:00:00Z")
const HOUR = 3_600_000

let nextId = 1
const prompt = (featuredImage: string | null, featuredVideo: string | null = null, trashed = false): InMemoryPrompt => ({
  id: nextId++,
  title: `Prompt ${nextId}`,
  authorId: 1,
  deletedAt: trashed ? new Date(NOW.getTime() - 48 * HOUR) : null,
  premium: false,
  featuredImage,
  featuredVideo,
  dependents: 0
})

const asset = (publicId: string, ageHours: number, resourceType: "image" | "video" = "image"): StoredAsset => ({
  publicId,
  resourceType,
  deliveryType: "upload",
  format: "jpg",
  bytes: 1024,
  createdAt: new Date(NOW.getTime() - ageHours * HOUR),
  secureUrl: null
})

const run = async (
  prompts: Array<InMemoryPrompt>,
  assets: Array<StoredAsset>,
  options: Partial<DetectOptions> = {},
  arrange?: (cloudinary: ReturnType<typeof makeInMemoryCloudinaryState>) => void
) => {
  const cloudinary = makeInMemoryCloudinaryState(assets)
  arrange?.(cloudinary)
  const reports = makeInMemoryReportsState()
  const outbox: Array<MailMessage> = []
  const lines: Array<string> = []
  const layers = Layer.mergeAll(
    AppConfigTest({ reportsDir: mkdtempSync(join(tmpdir(), "pfm-unit-")), retry: { maxRetries: 1, maxElapsed: Duration.seconds(5) } }),
    DatabaseInMemory(makeInMemoryDatabaseState(prompts)),
    CloudinaryInMemory(cloudinary),
    MailerInMemory(outbox),
    ProgressInMemory([]),
    ReportsInMemory(reports),
    ReferenceIndexInMemory()
  )
  const exit = await Effect.runPromise(
    Effect.gen(function* () {
      yield* TestClock.setTime(NOW.getTime())
      const fiber = yield* Effect.fork(
        runDetect({ days: 7, output: Option.none(), gracePeriod: Duration.hours(24), checkMissing: false, dryRun: false, ...options })
      )
      for (let i = 0; i < 20; i++) yield* TestClock.adjust(Duration.seconds(5))
      return yield* fiber.await
    }).pipe(Effect.provide(layers), Effect.withConsole(captureConsole(lines)), Effect.provide(TestContext.TestContext))
  )
  if (exit._tag === "Failure") throw new Error(String(exit.cause))
  return { report: exit.value, reports, outbox, lines, cloudinary }
}

describe("detect-orphaned-files (in-memory services)", () => {
  it("puts the window in the Search expression", () => {
    expect(searchExpression(7)).toBe("uploaded_at>7d")
    expect(searchExpression(null)).toBe("")
  })

  it("finds unreferenced files and spares files younger than the grace period (invariant 5)", async () => {
    const { report, reports, outbox } = await run(
      [prompt("image/upload/used")],
      [asset("used", 30), asset("orphan", 30), asset("fresh", 2)]
    )
    expect(report).toMatchObject({ totalFiles: 3, validFiles: 1, orphanedFiles: 1, skippedForGrace: 1, complete: true })
    expect(reports.findings.map((f) => f.finding)).toEqual([expect.objectContaining({ kind: "orphan", publicId: "orphan" })])
    expect(reports.runs[0]).toMatchObject({ outcome: "complete", counts: expect.objectContaining({ orphaned: 1, skippedForGrace: 1 }) })
    expect(outbox).toHaveLength(1)
    expect(detectExitCode(report)).toBe(0)
  })

  it("counts trashed prompts as references and compares resource types", async () => {
    const { report } = await run(
      [prompt("image/upload/trashed_file", null, true), prompt(null, "video/upload/shared_name")],
      [asset("trashed_file", 30), asset("shared_name", 30), asset("shared_name", 30, "video")]
    )
    expect(report).toMatchObject({ validFiles: 2, orphanedFiles: 1 })
    expect(report.firstOrphans[0]).toMatchObject({ publicId: "shared_name", resourceType: "image" })
  })

  it("reports a scan that lost its connection as partial, and never as complete", async () => {
    const many = Array.from({ length: 600 }, (_, i) => asset(`a${i}`, 30))
    const { report, lines, reports } = await run([], many, {}, (cloudinary) => {
      cloudinary.failures.push(
        ...[0, 1].map(() => new CloudinaryUnavailable({ operation: "search", status: null, message: "ECONNRESET" }))
      )
    })
    expect(report.complete).toBe(false)
    expect(detectExitCode(report)).toBe(1)
    expect(reports.runs[0]!.outcome).toBe("partial")
    expect(lines).not.toContain("✅ Scan complete!")
  })

  it("changes nothing in dry-run: no file, no email", async () => {
    const { report, outbox, lines } = await run([], [asset("orphan", 30)], { dryRun: true })
    expect(report.orphanedFiles).toBe(1)
    expect(report.orphanReportPath).toBeNull()
    expect(outbox).toEqual([])
    expect(lines.some((l) => l.startsWith("[DRY RUN] Email preview"))).toBe(true)
  })
})
