import { Command } from "@effect/cli"
import type { SqlClient } from "@effect/sql"
import { Clock, Console, Effect } from "effect"
import { startCloudinaryEmulator } from "../dev/cloudinaryEmulator.js"
import { startEmbeddedPostgres } from "../dev/embeddedPostgres.js"
import { loadFixtureSchema, seedDemo } from "../dev/seed.js"
import { runCleanup } from "../jobs/cleanup.js"
import { runScheduledDetect } from "../jobs/detect.js"
import type { AppConfig } from "../services/AppConfig.js"
import type { Cloudinary } from "../services/Cloudinary.js"
import type { Database } from "../services/Database.js"
import type { Mailer } from "../services/Mailer.js"
import type { Progress } from "../services/Progress.js"
import type { ReferenceIndex } from "../services/ReferenceIndex.js"
import { Reports } from "../services/Reports.js"

export type DemoServices =
  | AppConfig
  | Database
  | Cloudinary
  | Mailer
  | Progress
  | Reports
  | ReferenceIndex
  | SqlClient.SqlClient

/** Runs an effect on the live layers, configured by `environment` instead of the process environment. */
export type WithEnvironment = (
  environment: Record<string, string>
) => <A, E>(effect: Effect.Effect<A, E, DemoServices>) => Effect.Effect<A, unknown>

const banner = (text: string) => Console.log(`\n${"=".repeat(8)} ${text} ${"=".repeat(Math.max(4, 70 - text.length))}`)

/** The whole job on embedded defaults: PGlite for PostgreSQL, the emulator for Cloudinary, mail on the console. */
export const makeDemoCommand = (withEnvironment: WithEnvironment) =>
  Command.make("demo", {}, () =>
    Effect.gen(function* () {
      const database = yield* Effect.acquireRelease(Effect.promise(startEmbeddedPostgres), (db) => Effect.promise(db.close))
      const emulator = yield* Effect.acquireRelease(
        Effect.promise(() => startCloudinaryEmulator({ cloudName: "promptflow-demo" })),
        (e) => Effect.promise(e.close)
      )
      const now = new Date(yield* Clock.currentTimeMillis)
      yield* banner("Demo: embedded PostgreSQL (PGlite), Cloudinary emulator, console mail")
      yield* Console.log(`PostgreSQL: ${database.url}`)
      yield* Console.log(`Cloudinary emulator: ${emulator.url} (cloud ${emulator.cloudName})`)

      const baseEnvironment = {
        DATABASE_URL: database.url,
        CLOUDINARY_URL: emulator.cloudinaryUrl,
        ADMIN_EMAIL: "ops@promptflow.example, lead@promptflow.example",
        DEFAULT_FROM_EMAIL: "PromptFlow <noreply@promptflow.example>",
        RETRY_MAX_ELAPSED: "10 seconds",
        REPORTS_DIR: "reports"
      }
      const seeded = yield* withEnvironment(baseEnvironment)(
        Effect.gen(function* () {
          yield* loadFixtureSchema
          return yield* seedDemo(now)
        })
      )
      for (const asset of seeded.assets) emulator.addAsset(asset)
      const environment = { ...baseEnvironment, PREMIUM_TIER_SOURCE: seeded.premiumSource }
      const run = withEnvironment(environment)
      yield* Console.log(
        `Seeded 3 users, 10 prompts (live, trashed of every age, free and premium) and ${seeded.assets.length} Cloudinary assets.`
      )

      yield* banner("cleanup-deleted-prompts --dry-run")
      yield* run(runCleanup({ dryRun: true }))
      yield* banner("cleanup-deleted-prompts")
      const assetsBefore = emulator.assets().length
      const report = yield* run(runCleanup({ dryRun: false }))
      yield* Console.log(
        `\nCloudinary assets: ${assetsBefore} before, ${emulator.assets().length} after; Admin API calls: ${emulator.adminCallCount()}`
      )
      yield* banner("detect-orphaned-files --days 90 --missing")
      const detected = yield* run(runScheduledDetect(90))
      yield* banner("runs")
      const runs = yield* run(Effect.flatMap(Reports, (reports) => reports.listRuns(5)))
      for (const recorded of runs) {
        yield* Console.log(`#${recorded.id}  ${recorded.job}  ${recorded.outcome}  ${JSON.stringify(recorded.counts)}`)
      }
      yield* banner("Demo finished")
      return { report, detected }
    }).pipe(Effect.scoped, Effect.asVoid)
  ).pipe(
    Command.withDescription(
      "Run the jobs on embedded defaults, with no service installed: starts an embedded PostgreSQL (PGlite) " +
        "with PromptFlow's schema and sample data, the Cloudinary emulator and console mail, then runs the " +
        "cleanup in dry-run and for real, then the orphan detection with the missing-file check. Report CSVs go to reports/."
    )
  )
