/**
 * Benchmark: detect-orphaned-files as the account and the prompts table grow. Runs the real bin as a
 * child process against PostgreSQL (the local server when it answers, else embedded PGlite) and the
 * emulator, and prints wall time, Admin calls (against the formula) and the child's peak memory.
 *
 *   npm run build && npm run bench            (sizes: BENCH_SIZES=1000,10000,50000)
 *   BENCH_HEAP_MB=64 npm run bench            (caps the child's V8 heap: a job that held the account
 *                                             or the table in memory would die as they grow)
 */
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { startCloudinaryEmulator } from "../src/dev/cloudinaryEmulator.js"
import { startEmbeddedPostgres } from "../src/dev/embeddedPostgres.js"
import { fixtureSchemaPath, projectRoot } from "../src/dev/paths.js"

const sizes = (process.env["BENCH_SIZES"] ?? "1000,10000,50000").split(",").map(Number)
const heapCap = process.env["BENCH_HEAP_MB"]
const serverUrl = process.env["BENCH_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

const database = async (name: string) => {
  const admin = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 2000 })
  try {
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${name}`)
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return { url: url.toString(), backend: "postgresql", close: async () => undefined }
  } catch {
    await admin.end().catch(() => undefined)
    const embedded = await startEmbeddedPostgres()
    return { url: embedded.url, backend: "pglite", close: embedded.close }
  }
}

const peakRssOf = (pid: number): number => {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

const runBin = (args: Array<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; ms: number; peakRss: number; stdout: string }>((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, [join(projectRoot(), "dist", "src", "main.js"), ...args], {
      env: { PATH: process.env["PATH"] ?? "", ...(heapCap !== undefined ? { NODE_OPTIONS: `--max-old-space-size=${heapCap}` } : {}), ...env },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let peakRss = 0
    let stdout = ""
    const poll = setInterval(() => (peakRss = Math.max(peakRss, peakRssOf(child.pid!))), 20)
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.on("close", (code) => {
      clearInterval(poll)
      resolve({ code, ms: Date.now() - started, peakRss, stdout })
    })
  })

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

console.log(`heap cap: ${heapCap !== undefined ? `${heapCap} MB` : "none"}`)
console.log("assets  prompts  orphans  admin_calls(expected)  wall_time  peak_rss  exit  backend")
for (const size of sizes) {
  const db = await database(`pfm_bench_${size}`)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  await client.query(readFileSync(fixtureSchemaPath(), "utf8"))
  await client.query(
    "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) VALUES ('!', false, 'bench', '', '', 'b@example.com', false, true, now())"
  )
  // Every prompt references one asset; 90% of the assets are referenced, the rest are orphans.
  const prompts = Math.round(size * 0.9)
  await client.query(
    `INSERT INTO prompts_prompt (title, slug, content, excerpt, author_id, status, ai_generator, "order", created_on, updated_on,
       moderation_status, requires_manual_review, review_notes, deletion_reason, featured_image)
     SELECT 'p' || i, 'p-' || i, '', '', 1, 1, 'x', 0, now(), now(), 'approved', false, '', '', 'image/upload/v1/bench/a' || i || '.jpg'
     FROM generate_series(1, $1::int) AS i`,
    [prompts]
  )
  await client.end()
  const emulator = await startCloudinaryEmulator({ hourlyLimit: 5000 })
  for (let i = 1; i <= size; i++) emulator.addAsset({ publicId: `bench/a${i}`, createdAt: new Date(Date.now() - 2 * 86_400_000) })
  const result = await runBin(["detect-orphaned-files", "--days", "7", "--output", `/tmp/pfm-bench-${size}.csv`], {
    DATABASE_URL: db.url,
    CLOUDINARY_URL: emulator.cloudinaryUrl,
    ADMIN_EMAIL: "bench@example.com",
    REPORTS_DIR: "/tmp"
  })
  const orphans = /Orphaned files: (\d+)/.exec(result.stdout)?.[1] ?? "?"
  console.log(
    [size, prompts, orphans, `${emulator.adminCallCount()}(${Math.ceil(size / 500)})`, `${(result.ms / 1000).toFixed(2)} s`, mb(result.peakRss), String(result.code), db.backend].join("  ")
  )
  await emulator.close()
  await db.close()
}
