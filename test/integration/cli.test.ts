import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startCloudinaryEmulator, type CloudinaryEmulator } from "../../src/dev/cloudinaryEmulator.js"
import { insertPrompt, insertUser, promptExists } from "../../src/dev/seed.js"
import { runBin } from "../support/cli.js"
import { createTestDatabase, type TestDatabase } from "../support/database.js"

let db: TestDatabase
let emulator: CloudinaryEmulator
let author: number
const ago = (days: number) => new Date(Date.now() - days * 86_400_000)

const env = (extra: Record<string, string> = {}) => ({
  DATABASE_URL: db.url,
  CLOUDINARY_URL: emulator.cloudinaryUrl,
  ADMIN_EMAIL: "ops@example.com",
  RETRY_MAX_ATTEMPTS: "1",
  RETRY_MAX_ELAPSED: "2 seconds",
  ...extra
})

beforeAll(async () => {
  db = await createTestDatabase()
  emulator = await startCloudinaryEmulator()
  author = await db.run(insertUser("cli_user"))
})
afterAll(async () => {
  await emulator?.close()
  await db?.close()
})

const expectOneCleanLine = (stderr: string) => {
  const lines = stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(stderr).not.toMatch(/\n\s+at /)
}

describe("promptflow-maint, as an operator runs it", () => {
  it("lists its commands with --help", async () => {
    const { code, stdout } = await runBin(["--help"])
    expect(code).toBe(0)
    expect(stdout).toContain("cleanup-deleted-prompts")
    expect(stdout).toContain("demo")
  })

  it("exits 2 with one line, naming every missing setting, when unconfigured", async () => {
    const { code, stdout, stderr } = await runBin(["cleanup-deleted-prompts"])
    expect(code).toBe(2)
    expect(stdout).toBe("")
    expect(stderr.trim()).toBe("✗ Configuration error: DATABASE_URL is not set; CLOUDINARY_URL is not set; ADMIN_EMAIL is not set")
  })

  it.each([
    [{ DATABASE_URL: "mysql://root:dbpass-123@host/db" }, "DATABASE_URL must start with postgres://", "dbpass-123"],
    [{ CLOUDINARY_URL: "cloudinary://key:cloud-secret-9@" }, "CLOUDINARY_URL is not a valid URL", "cloud-secret-9"],
    [{ CLOUDINARY_URL: "cloudinary://:cloud-secret-8@cloud" }, "CLOUDINARY_URL needs an API key", "cloud-secret-8"],
    [{ ADMIN_EMAIL: "admin-at-example" }, "ADMIN_EMAIL is not a valid address", "none"],
    [{ SMTP_URL: "mail://u:smtp-secret-7@x" }, "SMTP_URL must look like", "smtp-secret-7"]
  ])("exits 2 on a malformed setting %j without printing a secret or touching anything", async (override, message, secret) => {
    const id = await db.run(insertPrompt({ title: `cfg ${message}`, authorId: author, deletedAt: ago(30) }))
    const { code, stdout, stderr } = await runBin(["cleanup-deleted-prompts"], env(override))
    expect(code).toBe(2)
    expect(stderr).toContain(message)
    expectOneCleanLine(stderr)
    expect(stdout + stderr).not.toContain(secret)
    expect(await db.run(promptExists(id))).toBe(true)
  })

  it("exits 2 on an unknown flag", async () => {
    const { code, stderr } = await runBin(["cleanup-deleted-prompts", "--dry-rnu"], env())
    expect(code).toBe(2)
    expect(stderr).toContain("--dry-rnu")
  })

  it("exits 1 with one line when the database cannot be reached, without its password", async () => {
    const { code, stderr } = await runBin(["cleanup-deleted-prompts"], env({ DATABASE_URL: "postgres://app:db-secret-5@127.0.0.1:1/promptflow" }))
    expect(code).toBe(1)
    expect(stderr).toContain("✗ Database unavailable")
    expectOneCleanLine(stderr)
    expect(stderr).not.toContain("db-secret-5")
  })

  it("purges for real and exits 0, printing the original's greppable lines and the mail on the console", async () => {
    const id = await db.run(insertPrompt({ title: "CLI expired", authorId: author, deletedAt: ago(8), featuredImage: "image/upload/cli/one" }))
    emulator.addAsset({ publicId: "cli/one" })
    const { code, stdout } = await runBin(["cleanup-deleted-prompts"], env())
    expect(code).toBe(0)
    expect(stdout).toContain("Starting cleanup of deleted prompts...")
    expect(stdout).toContain("Dry-run mode: OFF")
    expect(stdout).toContain(`✓ Successfully deleted prompt ID ${id}`)
    expect(stdout).toContain("Subject: PromptFlow: Daily Trash Cleanup Report")
    expect(stdout).toContain("Email summary sent to 1 admin(s)")
    expect(stdout).toContain("Cleanup complete!")
    expect(stdout).not.toContain(emulator.apiSecret)
    expect(await db.run(promptExists(id))).toBe(false)
    expect(emulator.hasAsset("image", "cli/one")).toBe(false)
  })

  it.each([
    [["--days", "7", "--all"], "Use either --days N or --all"],
    [["--days", "0"], "--days must be a whole number"],
    [["--min-age", "soon"], '--min-age: "soon" is not a duration']
  ])("detect-orphaned-files %j exits 2 with a clear message", async (args, message) => {
    const { code, stderr } = await runBin(["detect-orphaned-files", ...args], env())
    expect(code).toBe(2)
    expect(stderr).toContain(message)
  })

  it("detect-orphaned-files exits 0 when the scan completed, findings or not, and 1 when it is partial", async () => {
    emulator.addAsset({ publicId: "cli/orphan", createdAt: ago(2) })
    const reports = `/tmp/pfm-cli-${process.pid}`
    const found = await runBin(["detect-orphaned-files", "--days", "7", "--output", `${reports}/o.csv`], env())
    expect(found.code).toBe(0)
    expect(found.stdout).toContain("🔍 Starting Cloudinary Orphaned File Detection")
    expect(found.stdout).toContain("Orphan: image/upload/cli/orphan")
    expect(found.stdout).toContain(`📄 Report saved: ${reports}/o.csv`)
    expect(found.stdout).toContain("📧 Email summary sent to 1 admin(s)")
    expect(found.stdout).toContain("✅ Scan complete!")
    emulator.injectFault({ operations: ["search"], status: 500 })
    const partial = await runBin(["detect-orphaned-files", "--all"], env())
    emulator.clearFaults()
    expect(partial.code).toBe(1)
    expect(partial.stdout).toContain("✗ Scan incomplete (partial)")
  })

  it("dev seed refuses a database that already holds prompts", async () => {
    await db.run(insertPrompt({ title: "Existing data", authorId: author }))
    const { code, stderr } = await runBin(["dev", "seed"], { DATABASE_URL: db.url })
    expect(code).toBe(2)
    expect(stderr).toContain("Refusing to seed")
  })

  it("exits 1 when a prompt could not be purged", async () => {
    const id = await db.run(insertPrompt({ title: "CLI outage", authorId: author, deletedAt: ago(8), featuredImage: "image/upload/cli/two" }))
    emulator.addAsset({ publicId: "cli/two" })
    emulator.injectFault({ operations: ["delete"], status: 502 })
    const { code, stdout } = await runBin(["cleanup-deleted-prompts"], env())
    emulator.clearFaults()
    expect(code).toBe(1)
    expect(stdout).toContain(`✗ Failed to delete prompt ID ${id}`)
    expect(stdout).toContain("Cleanup complete with errors")
    expect(await db.run(promptExists(id))).toBe(true)
  })
})
