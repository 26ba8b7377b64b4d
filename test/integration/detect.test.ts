import { SqlClient } from "@effect/sql"
import { parse } from "csv-parse/sync"
import { Duration, Effect, Option } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { startCloudinaryEmulator, type CloudinaryEmulator } from "../../src/dev/cloudinaryEmulator.js"
import { insertPrompt, insertUser } from "../../src/dev/seed.js"
import { DETECT_SUBJECT, detectExitCode, runDetect, type DetectOptions } from "../../src/jobs/detect.js"
import { runBin } from "../support/cli.js"
import { createTestDatabase, onlyOnPostgresServer, type TestDatabase } from "../support/database.js"
import { runLive } from "../support/jobs.js"
import { startSmtpServer, type TestSmtpServer } from "../../src/dev/mailbox.js"

const HOUR = 3_600_000
const DAY = 24 * HOUR
const ago = (ms: number) => new Date(Date.now() - ms)

let db: TestDatabase
let emulator: CloudinaryEmulator
let smtp: TestSmtpServer
let author: number
let reportsDir: string

const environment = (extra: Record<string, string> = {}) => ({
  DATABASE_URL: db.url,
  CLOUDINARY_URL: emulator.cloudinaryUrl,
  SMTP_URL: smtp.url(),
  ADMIN_EMAIL: "ops@example.com",
  RETRY_MAX_ATTEMPTS: "2",
  RETRY_MAX_ELAPSED: "3 seconds",
  REPORTS_DIR: reportsDir,
  ...extra
})

const detect = (options: Partial<DetectOptions> = {}, extra: Record<string, string> = {}) =>
  runLive(
    environment(extra),
    runDetect({ days: 7, output: Option.none(), gracePeriod: Duration.hours(24), checkMissing: false, dryRun: false, ...options })
  )

const prompt = (title: string, image: string | null, video: string | null = null, trashedDaysAgo: number | null = null) =>
  db.run(insertPrompt({ title, authorId: author, featuredImage: image, featuredVideo: video, deletedAt: trashedDaysAgo === null ? null : ago(trashedDaysAgo * DAY) }))

const searchCalls = () => emulator.requests.filter((r) => r.operation === "search")

beforeAll(async () => {
  db = await createTestDatabase()
  smtp = await startSmtpServer()
  author = await db.run(insertUser("detect_author"))
})
afterAll(async () => {
  await smtp?.close()
  await db?.close()
})
beforeEach(async () => {
  emulator = await startCloudinaryEmulator()
  reportsDir = mkdtempSync(join(tmpdir(), "pfm-reports-"))
  smtp.messages.length = 0
  await db.run(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM prompts_prompt`
      // Each test is its own account: no run of an earlier test may be resumed.
      const own = yield* sql<{ present: boolean }>`SELECT to_regclass('promptflow_maintenance.runs') IS NOT NULL AS present`
      if (own[0]?.present === true) yield* sql`TRUNCATE promptflow_maintenance.runs, promptflow_maintenance.findings`
    })
  )
})
afterEach(async () => emulator.close())

describe("detect-orphaned-files on PostgreSQL, the emulator and SMTP", () => {
  it("lists only the window (assets outside it are neither listed nor billed)", async () => {
    await prompt("Referenced", "image/upload/w/referenced")
    emulator.addAsset({ publicId: "w/referenced", createdAt: ago(2 * DAY) })
    emulator.addAsset({ publicId: "w/orphan_in_window", createdAt: ago(3 * DAY) })
    emulator.addAsset({ publicId: "w/orphan_outside", createdAt: ago(10 * DAY) })
    const { result, output } = await detect()
    expect(detectExitCode(result)).toBe(0)
    expect(result).toMatchObject({ complete: true, totalFiles: 2, validFiles: 1, orphanedFiles: 1 })
    expect(searchCalls()).toHaveLength(1)
    expect((searchCalls()[0]!.body as { expression: string }).expression).toBe("uploaded_at>7d")
    expect(output).toContain("Orphan: image/upload/w/orphan_in_window")
    expect(output).not.toContain("w/orphan_outside")
    expect(output).toContain("Total Cloudinary files: 2")
    expect(output).toContain("Valid files: 1 (50.0%)")
    expect(output).toContain("Orphaned files: 1 (50.0%)")
    expect(output).toMatch(/API calls used: 1\/500 \(0\.2%\), resets at \d{4}-\d\d-\d\d \d\d:00:00 UTC/)
    expect(output).toContain("✅ Scan complete!")

    const all = await detect({ days: null })
    expect(all.result.orphanedFiles).toBe(2)
    expect((searchCalls().at(-1)!.body as { expression?: string }).expression ?? "").toBe("")
  })

  it("holds the Admin calls of a scan to ceil(files in window / 500), plus ceil(unseen references / 100) for --missing", async () => {
    for (let i = 0; i < 1234; i++) emulator.addAsset({ publicId: `bulk/in_${String(i).padStart(4, "0")}`, createdAt: ago(2 * DAY) })
    for (let i = 0; i < 40; i++) emulator.addAsset({ publicId: `bulk/old_${i}`, createdAt: ago(40 * DAY) })
    await db.run(
      Effect.gen(function* () {
        for (let i = 0; i < 250; i++) yield* insertPrompt({ title: `old ref ${i}`, authorId: author, featuredImage: `image/upload/bulk/old_${i % 40}_${Math.floor(i / 40)}` })
        for (let i = 0; i < 5; i++) yield* insertPrompt({ title: `in ref ${i}`, authorId: author, featuredImage: `bulk/in_${String(i).padStart(4, "0")}` })
      })
    )
    const plain = await detect()
    expect(plain.result).toMatchObject({ totalFiles: 1234, validFiles: 5, orphanedFiles: 1229 })
    expect(emulator.adminCallCount()).toBe(Math.ceil(1234 / 500))

    emulator.resetRequests()
    const withMissing = await detect({ checkMissing: true })
    // 250 distinct references outside the window: ceil(250 / 100) lookups by id.
    expect(emulator.adminCallCount()).toBe(Math.ceil(1234 / 500) + Math.ceil(250 / 100))
    expect(emulator.requests.filter((r) => r.operation === "list")).toHaveLength(3)
    expect(withMissing.result.missingFiles).toBe(250)
    expect(withMissing.result.adminCalls).toBe(6)
  })

  it("needs no call beyond the scan for --missing when the scan covers the whole account", async () => {
    await prompt("Present", "image/upload/m/present")
    await prompt("Gone", "image/upload/m/gone")
    emulator.addAsset({ publicId: "m/present", createdAt: ago(300 * DAY) })
    const { result } = await detect({ days: null, checkMissing: true })
    expect(result.missingFiles).toBe(1)
    expect(emulator.adminCallCount()).toBe(1)
  })

  it("never calls a file younger than the grace period an orphan, and counts the ones it skipped", async () => {
    emulator.addAsset({ publicId: "g/uploading", createdAt: ago(2 * HOUR) })
    emulator.addAsset({ publicId: "g/abandoned", createdAt: ago(30 * HOUR) })
    const { result, output } = await detect()
    expect(result).toMatchObject({ orphanedFiles: 1, skippedForGrace: 1 })
    expect(output).not.toContain("Orphan: image/upload/g/uploading")
    expect(output).toContain("Skipped, younger than the grace period: 1")
    const shorter = await detect({ gracePeriod: Duration.hours(1) })
    expect(shorter.result).toMatchObject({ orphanedFiles: 2, skippedForGrace: 0 })
  })

  it("matches references in every stored format, counts trashed prompts, and compares resource types", async () => {
    await prompt("Versioned", "image/upload/v1712345678/f/versioned.jpg")
    await prompt("Upload flow", "image/upload/f/upload_flow")
    await prompt("Bare id", "f/bare")
    await prompt("Video versioned", null, "video/upload/v1700000000/f/clip.mp4")
    await prompt("Video bare", null, "f/bare_clip")
    await prompt("Trashed owns its file", "image/upload/f/trashed", null, 3)
    await prompt("Video named like an image", null, "video/upload/f/same_name")
    for (const id of ["f/versioned", "f/upload_flow", "f/bare", "f/trashed", "f/same_name"]) emulator.addAsset({ publicId: id, createdAt: ago(2 * DAY) })
    for (const id of ["f/clip", "f/bare_clip"]) emulator.addAsset({ publicId: id, resourceType: "video", createdAt: ago(2 * DAY) })
    const { result, output } = await detect({ checkMissing: true })
    expect(result).toMatchObject({ totalFiles: 7, validFiles: 6, orphanedFiles: 1, missingFiles: 1 })
    expect(output).toContain("Orphan: image/upload/f/same_name")
    expect(output).toContain("Missing: prompt")
    expect(output).toContain("video f/same_name")
  })

  it("lists unparseable database values as such instead of dropping them or crashing", async () => {
    await prompt("Empty", "")
    await prompt("Blank", "   ")
    await prompt("No public id", "image/upload/")
    await prompt("Placeholder", "placeholder")
    const { result } = await detect()
    expect(result.unparseable).toBe(4)
    const csv = parse(readFileSync(result.missingReportPath!, "utf8"), { columns: true }) as Array<Record<string, string>>
    expect(csv.map((row) => [row["title"], row["problem"]])).toEqual([
      ["Empty", "unparseable: empty value"],
      ["Blank", "unparseable: whitespace only"],
      ["No public id", "unparseable: no public id"],
      ["Placeholder", "legacy placeholder value, no Cloudinary asset"]
    ])
  })

  it("writes a CSV that a CSV reader parses back exactly, awkward public ids included", async () => {
    const awkward = ["plain", "with,comma", 'with "quotes"', "with\nnewline", "ünïcødé/ファイル 🎉", "trailing space "]
    for (const id of awkward) emulator.addAsset({ publicId: id, createdAt: ago(2 * DAY), bytes: 2_097_152, format: "png" })
    const output = join(reportsDir, "custom", "orphans.csv")
    const { result } = await detect({ output: Option.some(output) })
    expect(result.orphanReportPath).toBe(output)
    const text = readFileSync(output, "utf8")
    expect(text.split("\n")[0]).toBe("public_id,resource_type,size_bytes,size_mb,format,uploaded_at,cloudinary_url")
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>
    expect(rows.map((r) => r["public_id"]).sort()).toEqual([...awkward].sort())
    expect(rows[0]).toMatchObject({ resource_type: "image", size_bytes: "2097152", size_mb: "2.00", format: "png" })
  })

  it("reports a CSV that cannot be written, keeps the findings in the database, still emails, and exits 1", async () => {
    emulator.addAsset({ publicId: "nf/orphan", createdAt: ago(2 * DAY) })
    const notADirectory = join(reportsDir, "plain-file")
    writeFileSync(notADirectory, "")
    const { result, output } = await detect({ output: Option.some(join(notADirectory, "o.csv")) })
    expect(result.reportError).toContain("could not write")
    expect(output).toContain("✗ Report not saved:")
    expect(detectExitCode(result)).toBe(1)
    expect(smtp.messages).toHaveLength(1)
    expect(smtp.messages[0]!.attachments).toHaveLength(0)
    const findings = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`SELECT count(*) AS n FROM promptflow_maintenance.findings WHERE run_id = ${result.runId!}`)
    )
    expect(Number(findings[0]!.n)).toBe(1)
  })

  it("emails the admins with the summary, the first 20 orphans and the CSV attached", async () => {
    for (let i = 0; i < 25; i++) emulator.addAsset({ publicId: `e/orphan_${String(i).padStart(2, "0")}`, createdAt: ago(2 * DAY), bytes: 1_048_576 })
    await detect()
    expect(smtp.messages).toHaveLength(1)
    const mail = smtp.messages[0]!
    expect(mail.subject).toBe(DETECT_SUBJECT)
    expect(mail.text).toContain("Scan range: files uploaded in the last 7 days")
    expect(mail.text).toContain("Orphaned files: 25 (100.0%)")
    expect(mail.text).toContain("Total orphan size: 25.00 MB")
    expect(mail.text).toContain("... and 5 more")
    expect(mail.text).toMatch(/API calls used: \d+\/500/)
    expect(mail.attachments).toHaveLength(1)
    const attached = parse(mail.attachments[0]!.content.toString("utf8"), { columns: true }) as Array<Record<string, string>>
    expect(attached).toHaveLength(25)
  })

  it("sends no email and writes no file when nothing was found", async () => {
    await prompt("All good", "image/upload/ok/one")
    emulator.addAsset({ publicId: "ok/one", createdAt: ago(2 * DAY) })
    const { result } = await detect()
    expect(result).toMatchObject({ orphanedFiles: 0, orphanReportPath: null, complete: true })
    expect(smtp.messages).toEqual([])
  })

  it("records each run and its findings in its own schema, and `runs` prints and re-exports them", async () => {
    emulator.addAsset({ publicId: "r/orphan, one", createdAt: ago(2 * DAY) })
    await prompt("Missing one", "image/upload/r/missing")
    const { result } = await detect({ checkMissing: true })
    const runId = result.runId!
    const rows = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ outcome: string; counts: Record<string, number>; admin_calls: number }>`
        SELECT outcome, counts, admin_calls FROM promptflow_maintenance.runs WHERE id = ${runId}`)
    )
    expect(rows[0]).toMatchObject({ outcome: "complete", counts: { orphaned: 1, missing: 1 }, admin_calls: 2 })

    const list = await runBin(["runs"], { DATABASE_URL: db.url })
    expect(list.code).toBe(0)
    expect(list.stdout).toContain(`#${runId}  detect-orphaned-files`)
    const show = await runBin(["runs", "show", String(runId)], { DATABASE_URL: db.url })
    expect(parse(show.stdout, { columns: true })).toEqual([
      expect.objectContaining({ public_id: "r/orphan, one", resource_type: "image" })
    ])
    const missing = await runBin(["runs", "show", String(runId), "--missing"], { DATABASE_URL: db.url })
    expect(missing.stdout).toContain("Missing one")
    const exported = join(reportsDir, "again.csv")
    const exportRun = await runBin(["runs", "export", String(runId), "--output", exported], { DATABASE_URL: db.url })
    expect(exportRun.code).toBe(0)
    expect(readFileSync(exported, "utf8")).toBe(readFileSync(result.orphanReportPath!, "utf8"))
    const unknown = await runBin(["runs", "show", "999999"], { DATABASE_URL: db.url })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("No run #999999")
  })

  it("reports a scan cut short by an outage as partial, records it, and exits 1", async () => {
    for (let i = 0; i < 700; i++) emulator.addAsset({ publicId: `p/${i}`, createdAt: ago(2 * DAY) })
    emulator.injectFault({ operations: ["search"], status: 503, calls: [2, 3, 4] })
    const { result, output } = await detect()
    expect(result.complete).toBe(false)
    expect(detectExitCode(result)).toBe(1)
    expect(result.totalFiles).toBe(500)
    expect(output).toContain("✗ Scan incomplete (partial)")
    expect(output).not.toContain("Scan complete!")
    expect(smtp.messages[0]!.subject).toBe(`${DETECT_SUBJECT} (partial scan)`)
    const rows = await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ outcome: string }>`SELECT outcome FROM promptflow_maintenance.runs WHERE id = ${result.runId!}`)
    )
    expect(rows[0]!.outcome).toBe("partial")
  })

  it("stops at a 420, reads the quota from the headers and warns under 20%", async () => {
    for (let i = 0; i < 700; i++) emulator.addAsset({ publicId: `q/${i}`, createdAt: ago(2 * DAY) })
    emulator.setRemainingQuota(2)
    let searches = 0
    // Another client spends the rest of the hour's quota between our first and second page.
    emulator.onRequest = ({ operation }) => {
      if (operation === "search" && ++searches === 2) emulator.setRemainingQuota(0)
    }
    const { result, output } = await detect({}, { API_QUOTA_RESERVE: "0" })
    expect(result.complete).toBe(false)
    expect(result.stoppedReason).toContain("quota exhausted")
    expect(searchCalls().map((r) => r.status)).toEqual([200, 420])
    // The figures are the last ones Cloudinary sent, not a count of our own calls.
    expect(output).toContain("API calls used: 499/500 (99.8%)")
    expect(output).toContain("⚠️  Warning: only 1 of 500 Admin API calls left")
  })

  it("stops as partial when its time budget is spent", async () => {
    for (let i = 0; i < 1100; i++) emulator.addAsset({ publicId: `tb/${i}`, createdAt: ago(2 * DAY) })
    emulator.injectFault({ operations: ["search"], latencyMs: 700 })
    const { result } = await detect({}, { RUN_TIME_BUDGET: "1 second" })
    expect(result.complete).toBe(false)
    expect(result.stoppedReason).toContain("time budget")
    expect(result.totalFiles).toBe(1000)
  })

  it("resumes a partial scan from its checkpoint, re-checking what it carries over", async () => {
    for (let i = 0; i < 1200; i++) emulator.addAsset({ publicId: `cp/${String(i).padStart(4, "0")}`, createdAt: ago(2 * DAY + i * 1000) })
    await prompt("Uses one", "image/upload/cp/0700")
    emulator.injectFault({ operations: ["search"], status: 503, calls: [2, 3, 4] })
    const first = await detect()
    expect(first.result).toMatchObject({ complete: false, totalFiles: 500, orphanedFiles: 500 })

    // Meanwhile a prompt starts using a file the first run called an orphan.
    await prompt("Uses an earlier orphan", "image/upload/cp/0003")
    emulator.clearFaults()
    emulator.resetRequests()
    const second = await detect()
    expect(second.output).toContain(`↻ Resuming the scan of run #${first.result.runId} from its checkpoint (500 files already scanned)`)
    expect(searchCalls()).toHaveLength(2)
    expect(second.result).toMatchObject({ complete: true, resumedFrom: first.result.runId, totalFiles: 1200, validFiles: 2, orphanedFiles: 1198 })
    const rows = parse(readFileSync(second.result.orphanReportPath!, "utf8"), { columns: true }) as Array<Record<string, string>>
    expect(rows).toHaveLength(1198)
    expect(new Set(rows.map((r) => r["public_id"])).size).toBe(1198)
    expect(rows.map((r) => r["public_id"])).not.toContain("cp/0003")
    expect(smtp.messages.at(-1)!.text).toContain(`Resumed the partial scan of run ${first.result.runId}`)

    emulator.resetRequests()
    const third = await detect()
    expect(third.result.resumedFrom).toBeNull()
    expect(searchCalls()).toHaveLength(3)
  })

  it("scans from the start when Cloudinary rejects the checkpoint's cursor", async () => {
    for (let i = 0; i < 700; i++) emulator.addAsset({ publicId: `cr/${i}`, createdAt: ago(2 * DAY) })
    emulator.injectFault({ operations: ["search"], status: 503, calls: [2, 3, 4] })
    const first = await detect()
    expect(first.result.complete).toBe(false)
    emulator.clearFaults()
    emulator.injectFault({ operations: ["search"], status: 400, calls: [1] })
    const second = await detect()
    expect(second.output).toContain("was rejected")
    expect(second.result).toMatchObject({ complete: true, resumedFrom: null, totalFiles: 700, orphanedFiles: 700 })
    const rows = parse(readFileSync(second.result.orphanReportPath!, "utf8"), { columns: true }) as Array<Record<string, string>>
    expect(rows).toHaveLength(700)
  })

  it("does not resume a scan of another window, nor one older than the grace period", async () => {
    for (let i = 0; i < 600; i++) emulator.addAsset({ publicId: `ow/${i}`, createdAt: ago(2 * DAY) })
    emulator.injectFault({ operations: ["search"], status: 503, calls: [2, 3, 4] })
    expect((await detect()).result.complete).toBe(false)
    emulator.clearFaults()
    const otherWindow = await detect({ days: 30 })
    expect(otherWindow.result.resumedFrom).toBeNull()
    expect(otherWindow.result.totalFiles).toBe(600)
    const noGrace = await detect({ gracePeriod: Duration.zero })
    expect(noGrace.result.resumedFrom).toBeNull()
    expect(noGrace.result.totalFiles).toBe(600)
  })

  it("stops before the quota reserve instead of spending it", async () => {
    for (let i = 0; i < 1100; i++) emulator.addAsset({ publicId: `rs/${i}`, createdAt: ago(2 * DAY) })
    emulator.setRemainingQuota(12)
    const { result } = await detect({}, { API_QUOTA_RESERVE: "10" })
    expect(searchCalls()).toHaveLength(2)
    expect(result.complete).toBe(false)
    expect(result.stoppedReason).toContain("reserve")
  })
})

const withoutServer = await onlyOnPostgresServer("the scan lock")

describe.skipIf(withoutServer)("detect-orphaned-files with concurrent sessions (PostgreSQL server only)", () => {
  it("refuses to scan a window that another run is scanning", async () => {
    emulator.addAsset({ publicId: "lk/orphan", createdAt: ago(2 * DAY) })
    const { result } = await runLive(
      environment(),
      Effect.gen(function* () {
        const { Database } = yield* Effect.promise(() => import("../../src/services/Database.js"))
        const database = yield* Database
        yield* database.tryRunLock("detect-orphaned-files:days:7")
        return yield* Effect.promise(() => detect())
      })
    )
    expect(result.result.complete).toBe(false)
    expect(result.result.stoppedReason).toBe("another scan of this window is running")
    expect(searchCalls()).toHaveLength(0)
  })
})
