import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { startCloudinaryEmulator, type CloudinaryEmulator } from "../../src/dev/cloudinaryEmulator.js"
import { addDependents, countDependents, insertPrompt, insertUser, promptExists } from "../../src/dev/seed.js"
import { CLEANUP_SUBJECT, cleanupExitCode, runCleanup } from "../../src/jobs/cleanup.js"
import { createTestDatabase, onlyOnPostgresServer, type TestDatabase } from "../support/database.js"
import { runLive } from "../support/jobs.js"
import { startSmtpServer, type TestSmtpServer } from "../../src/dev/mailbox.js"

const DAY = 86_400_000
const ago = (days: number) => new Date(Date.now() - days * DAY)

let db: TestDatabase
let emulator: CloudinaryEmulator
let smtp: TestSmtpServer
let free: number
let premium: number
let other: number

const SMTP_PASSWORD = "mail-Pa55-word"

const environment = (extra: Record<string, string> = {}) => ({
  DATABASE_URL: db.url,
  CLOUDINARY_URL: emulator.cloudinaryUrl,
  SMTP_URL: smtp.url("mailer", SMTP_PASSWORD),
  ADMIN_EMAIL: "ops@example.com,lead@example.com",
  DEFAULT_FROM_EMAIL: "PromptFlow <noreply@example.com>",
  PREMIUM_TIER_SOURCE: "account_tier.is_premium",
  RETRY_MAX_ATTEMPTS: "2",
  RETRY_MAX_ELAPSED: "3 seconds",
  ...extra
})

const cleanup = (dryRun = false, extra: Record<string, string> = {}) => runLive(environment(extra), runCleanup({ dryRun }))

const prompt = (title: string, authorId: number, daysInTrash: number | null, image: string | null, video: string | null = null) =>
  db.run(insertPrompt({ title, authorId, deletedAt: daysInTrash === null ? null : ago(daysInTrash), featuredImage: image, featuredVideo: video }))

const clearPrompts = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM prompts_contentflag`
  yield* sql`DELETE FROM prompts_moderationlog`
  yield* sql`DELETE FROM prompts_comment`
  yield* sql`DELETE FROM prompts_prompt_likes`
  yield* sql`DELETE FROM taggit_taggeditem`
  yield* sql`DELETE FROM prompts_prompt`
})

beforeAll(async () => {
  db = await createTestDatabase()
  emulator = await startCloudinaryEmulator()
  smtp = await startSmtpServer({ user: "mailer", password: SMTP_PASSWORD })
  ;[free, premium, other] = await db.run(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const ids = [yield* insertUser("freeuser"), yield* insertUser("premiumuser"), yield* insertUser("other")]
      yield* sql`CREATE TABLE account_tier (user_id integer PRIMARY KEY, is_premium boolean NOT NULL)`
      yield* sql`INSERT INTO account_tier VALUES (${ids[0]!}, false), (${ids[1]!}, true)`
      return ids
    })
  )
})

afterAll(async () => {
  await emulator?.close()
  await smtp?.close()
  await db?.close()
})

beforeEach(async () => {
  await db.run(clearPrompts)
  emulator.clearFaults()
  emulator.resetRequests()
  emulator.onRequest = null
  smtp.messages.length = 0
})

describe(`cleanup-deleted-prompts on PostgreSQL, the emulator and SMTP`, () => {
  it("purges expired prompts, their dependent rows and assets, keeps the rest, and emails the admins", async () => {
    const live = await prompt("Live", free, null, "image/upload/v1712345678/int/shared.jpg")
    const inRetention = await prompt("Trashed 3 days", free, 3, "image/upload/int/recent")
    const premiumInRetention = await prompt("Premium 10 days", premium, 10, "image/upload/int/premium_recent")
    const expiredFree = await prompt("Free 6 days", free, 6, "image/upload/int/free_old", "video/upload/v1/int/free_clip.mp4")
    const expiredPremium = await prompt("Premium 31 days", premium, 31, null, "video/upload/int/premium_clip")
    const expiredShared = await prompt("Shares with live", other, 8, "int/shared")
    await db.run(addDependents(expiredFree, other))
    await db.run(addDependents(expiredPremium, free))
    await db.run(addDependents(live, other))
    for (const id of ["int/shared", "int/recent", "int/premium_recent", "int/free_old"]) emulator.addAsset({ publicId: id })
    for (const id of ["int/free_clip", "int/premium_clip"]) emulator.addAsset({ publicId: id, resourceType: "video" })

    const { result: report, output } = await cleanup()

    expect(cleanupExitCode(report)).toBe(0)
    expect(report).toMatchObject({ successful: 3, failed: 0, free: { deleted: 2 }, premium: { deleted: 1 }, assetsKeptShared: 1 })
    for (const id of [live, inRetention, premiumInRetention]) expect(await db.run(promptExists(id))).toBe(true)
    for (const id of [expiredFree, expiredPremium, expiredShared]) {
      expect(await db.run(promptExists(id))).toBe(false)
      expect(await db.run(countDependents(id))).toBe(0)
    }
    expect(await db.run(countDependents(live))).toBe(6)
    expect(emulator.hasAsset("image", "int/shared")).toBe(true)
    expect(emulator.hasAsset("image", "int/recent")).toBe(true)
    expect(emulator.hasAsset("image", "int/premium_recent")).toBe(true)
    expect(emulator.hasAsset("image", "int/free_old")).toBe(false)
    expect(emulator.hasAsset("video", "int/free_clip")).toBe(false)
    expect(emulator.hasAsset("video", "int/premium_clip")).toBe(false)
    // Bulk deletes: one call per resource type for this batch.
    expect(emulator.requests.filter((r) => r.operation === "delete").length).toBe(2)
    // Tags themselves stay, as Django leaves them.
    const tags = await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`SELECT count(*) AS n FROM taggit_tag`))
    expect(Number(tags[0]!.n)).toBeGreaterThanOrEqual(6)

    expect(smtp.messages).toHaveLength(1)
    const mail = smtp.messages[0]!
    expect(mail.subject).toBe(CLEANUP_SUBJECT)
    expect(mail.envelopeTo.sort()).toEqual(["lead@example.com", "ops@example.com"])
    expect(mail.from?.text).toContain("noreply@example.com")
    expect(mail.text).toContain("Total processed: 3")
    expect(mail.text).toContain("Successful: 3")
    expect(mail.text).toContain("Free users: 2 processed, 2 deleted, 0 failed (retention 5 days)")
    expect(mail.text).toContain("Premium users: 1 processed, 1 deleted, 0 failed (retention 30 days)")
    expect(mail.text).toMatch(/Run time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/)
    expect(output).toContain("Email summary sent to 2 admin(s)")
    expect(output).not.toContain(SMTP_PASSWORD)
    expect(output).not.toContain(emulator.apiSecret)
    expect(mail.text).not.toContain(emulator.apiSecret)
  })

  it("changes nothing in dry-run: no row, no asset, no email", async () => {
    const expired = await prompt("Dry expired", free, 9, "image/upload/int/dry")
    await db.run(addDependents(expired, other))
    emulator.addAsset({ publicId: "int/dry" })
    const { result: report, output } = await cleanup(true)
    expect(report.successful).toBe(1)
    expect(await db.run(promptExists(expired))).toBe(true)
    expect(await db.run(countDependents(expired))).toBe(6)
    expect(emulator.hasAsset("image", "int/dry")).toBe(true)
    expect(emulator.requests.filter((r) => r.admin)).toEqual([])
    expect(smtp.messages).toEqual([])
    expect(output).toContain(`[DRY RUN] Would delete prompt ID ${expired} and image/upload/int/dry`)
  })

  it("leaves prompts in the trash during a Cloudinary outage, reports them, and a later run purges them", async () => {
    const a = await prompt("Outage A", free, 9, "image/upload/int/outage_a")
    const b = await prompt("Outage B", free, 9, "image/upload/int/outage_b")
    await db.run(addDependents(a, other))
    emulator.addAsset({ publicId: "int/outage_a" })
    emulator.addAsset({ publicId: "int/outage_b" })
    emulator.injectFault({ operations: ["delete"], status: 503 })

    const failed = await cleanup()
    expect(cleanupExitCode(failed.result)).toBe(1)
    expect(failed.result.failed).toBe(2)
    expect(await db.run(promptExists(a))).toBe(true)
    expect(await db.run(countDependents(a))).toBe(6)
    expect(emulator.hasAsset("image", "int/outage_a")).toBe(true)
    // Retried: the first try and RETRY_MAX_ATTEMPTS more.
    expect(emulator.requests.filter((r) => r.operation === "delete").length).toBe(3)
    expect(failed.output).toContain(`✗ Failed to delete prompt ID ${a}: Cloudinary unavailable during delete resources (HTTP 503)`)
    expect(smtp.messages[0]!.text).toContain(`ID ${a} 'Outage A': Cloudinary unavailable`)

    emulator.clearFaults()
    smtp.messages.length = 0
    const rerun = await cleanup()
    expect(cleanupExitCode(rerun.result)).toBe(0)
    expect(rerun.result.successful).toBe(2)
    expect(await db.run(promptExists(a))).toBe(false)
    expect(await db.run(promptExists(b))).toBe(false)
    expect(emulator.hasAsset("image", "int/outage_a")).toBe(false)
  })

  it("bounds a hanging Cloudinary call with CLOUDINARY_TIMEOUT and retries it", async () => {
    const id = await prompt("Slow Cloudinary", free, 9, "image/upload/int/slow")
    emulator.addAsset({ publicId: "int/slow" })
    emulator.injectFault({ operations: ["delete"], latencyMs: 2_000, times: 1 })
    const started = Date.now()
    const { result } = await cleanup(false, { CLOUDINARY_TIMEOUT: "300 millis" })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(result).toMatchObject({ successful: 1, failed: 0 })
    expect(await db.run(promptExists(id))).toBe(false)
  })

  it("stops cleanly when its time budget is spent, and the next run carries on", async () => {
    const ids = [
      await prompt("Budget 1", free, 9, "image/upload/int/budget1"),
      await prompt("Budget 2", free, 9, "image/upload/int/budget2"),
      await prompt("Budget 3", free, 9, "image/upload/int/budget3")
    ]
    emulator.injectFault({ operations: ["delete"], latencyMs: 700 })
    const first = await cleanup(false, { CLEANUP_BATCH_SIZE: "1", RUN_TIME_BUDGET: "1 second" })
    expect(first.result.successful).toBe(2)
    expect(first.result.stoppedEarly).toContain("time budget")
    expect(cleanupExitCode(first.result)).toBe(1)
    expect(await db.run(promptExists(ids[2]!))).toBe(true)
    emulator.clearFaults()
    const second = await cleanup(false, { CLEANUP_BATCH_SIZE: "1", RUN_TIME_BUDGET: "1 second" })
    expect(second.result).toMatchObject({ successful: 1, stoppedEarly: null })
    expect(await db.run(promptExists(ids[2]!))).toBe(false)
  })

  it("treats not_found as already deleted", async () => {
    const gone = await prompt("Asset already gone", free, 7, "image/upload/int/never_there")
    const { result } = await cleanup()
    expect(result).toMatchObject({ successful: 1, assetsAlreadyGone: 1 })
    expect(await db.run(promptExists(gone))).toBe(false)
  })

  it("rolls the batch back when the prompt rows cannot be deleted: the assets may go, the row stays, a re-run converges", async () => {
    const id = await prompt("Locked by a trigger", free, 9, "image/upload/int/trigger")
    emulator.addAsset({ publicId: "int/trigger" })
    await db.run(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`CREATE FUNCTION refuse_delete() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'deletes are paused'; END $$ LANGUAGE plpgsql;
          CREATE TRIGGER refuse BEFORE DELETE ON prompts_prompt FOR EACH ROW EXECUTE FUNCTION refuse_delete();`)
      )
    )
    const failed = await cleanup()
    expect(failed.result.failed).toBe(1)
    expect(failed.result.failures[0]!.error).toContain("deletes are paused")
    expect(await db.run(promptExists(id))).toBe(true)
    await db.run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("DROP TRIGGER refuse ON prompts_prompt; DROP FUNCTION refuse_delete();")))
    const rerun = await cleanup()
    expect(rerun.result).toMatchObject({ successful: 1, failed: 0 })
    expect(await db.run(promptExists(id))).toBe(false)
  })

  it("reports an email that could not be sent, exits 1, and keeps the purge", async () => {
    const id = await prompt("Mail fails", free, 9, null)
    const { result, output } = await cleanup(false, { SMTP_URL: smtp.url("mailer", "wrong-password") })
    expect(await db.run(promptExists(id))).toBe(false)
    expect(result.mail.status).toBe("failed")
    expect(cleanupExitCode(result)).toBe(1)
    expect(output).toContain("✗ Failed to send email summary:")
    expect(output).not.toContain("wrong-password")
  })

  it("never leaks the Cloudinary secret when Cloudinary rejects the credentials", async () => {
    await prompt("Bad credentials", free, 9, "image/upload/int/creds")
    const badUrl = emulator.cloudinaryUrl.replace(emulator.apiSecret, "not-the-secret-xyz")
    const { result, output } = await cleanup(false, { CLOUDINARY_URL: badUrl })
    expect(result.failed).toBe(1)
    expect(result.failures[0]!.error).toContain("HTTP 401")
    // 401 is not retried.
    expect(emulator.requests.filter((r) => r.operation === "delete").length).toBe(1)
    expect(output).not.toContain("not-the-secret-xyz")
    expect(smtp.messages[0]!.text).not.toContain("not-the-secret-xyz")
  })

  it("stops at a wrong premium tier source before touching anything", async () => {
    const id = await prompt("Tier misconfigured", free, 9, null)
    await expect(cleanup(false, { PREMIUM_TIER_SOURCE: "account_tier.no_such_column" })).rejects.toThrow(/PREMIUM_TIER_SOURCE/)
    expect(await db.run(promptExists(id))).toBe(true)
  })
})

const withoutServer = await onlyOnPostgresServer("the restore race and the run lock")

describe.skipIf(withoutServer)("cleanup-deleted-prompts with concurrent sessions (PostgreSQL server only)", () => {
  it("does not purge a prompt restored while the job runs (invariant 4)", async () => {
    const first = await prompt("Race first", free, 9, "image/upload/int/race_first")
    const restored = await prompt("Race restored", free, 9, "image/upload/int/race_restored")
    emulator.addAsset({ publicId: "int/race_first" })
    emulator.addAsset({ publicId: "int/race_restored" })
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    let restoredRows = 0
    // While the first batch is purging, the owner restores the second prompt from another session.
    emulator.onRequest = async ({ operation }) => {
      if (operation === "delete" && restoredRows === 0) {
        const result = await client.query("UPDATE prompts_prompt SET deleted_at = NULL, status = 1 WHERE id = $1", [restored])
        restoredRows = result.rowCount ?? 0
      }
    }
    const { result, output } = await cleanup(false, { CLEANUP_BATCH_SIZE: "1" })
    await client.end()
    expect(restoredRows).toBe(1)
    expect(result).toMatchObject({ successful: 1, skipped: 1, failed: 0 })
    expect(await db.run(promptExists(first))).toBe(false)
    expect(await db.run(promptExists(restored))).toBe(true)
    expect(emulator.hasAsset("image", "int/race_restored")).toBe(true)
    expect(output).toContain(`- Skipped prompt ID ${restored}: restored or changed during the run`)
  })

  it("refuses to run while another run holds the advisory lock", async () => {
    const id = await prompt("Lock held", free, 9, null)
    const holder = await runLive(
      environment(),
      Effect.gen(function* () {
        const { Database } = yield* Effect.promise(() => import("../../src/services/Database.js"))
        const database = yield* Database
        const held = yield* database.tryRunLock("cleanup-deleted-prompts")
        const second = yield* Effect.promise(() => cleanup())
        return { held, second }
      })
    )
    expect(holder.result.held).toBe(true)
    expect(holder.result.second.result.stoppedEarly).toContain("another cleanup run holds the lock")
    expect(cleanupExitCode(holder.result.second.result)).toBe(1)
    expect(await db.run(promptExists(id))).toBe(true)
  })
})
