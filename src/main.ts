#!/usr/bin/env node
import { Command } from "@effect/cli"
import { SqlError } from "@effect/sql"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { ConfigError, ConfigProvider, Console, Effect, Exit, Layer } from "effect"
import { cleanupCommand } from "./cli/cleanupCommand.js"
import { makeClockCommand } from "./cli/clockCommand.js"
import { makeDemoCommand, type WithEnvironment } from "./cli/demoCommand.js"
import { detectCommand } from "./cli/detectCommand.js"
import { makeDevCommand } from "./cli/devCommand.js"
import { ExitCode, ExitWith, exitWithCode } from "./cli/exit.js"
import { runsCommand } from "./cli/runsCommand.js"
import { cleanupExitCode, runCleanup } from "./jobs/cleanup.js"
import { detectExitCode, runScheduledDetect } from "./jobs/detect.js"
import { AppConfigLive, describeConfigError } from "./services/AppConfig.js"
import { CloudinaryLive } from "./services/Cloudinary.js"
import { DatabaseLive, PgLive } from "./services/Database.js"
import { MailerLive } from "./services/Mailer.js"
import { MigrationsLive } from "./services/Migrations.js"
import { ProgressLive } from "./services/Progress.js"
import { ReferenceIndexLive } from "./services/ReferenceIndex.js"
import { ReportsLive } from "./services/Reports.js"

// The only place live layers are composed. Each command gets what it needs and no more: `runs`
// needs only DATABASE_URL; the cleanup never creates the program's own schema.
const PgWithOwnSchema = MigrationsLive.pipe(Layer.provideMerge(PgLive))
const RecordsLive = Layer.mergeAll(ReportsLive, ReferenceIndexLive).pipe(Layer.provideMerge(PgWithOwnSchema))

const CleanupLive = Layer.mergeAll(DatabaseLive, CloudinaryLive, MailerLive, ProgressLive).pipe(
  Layer.provideMerge(PgLive),
  Layer.provideMerge(AppConfigLive)
)

const DetectLive = Layer.mergeAll(DatabaseLive, CloudinaryLive, MailerLive, ProgressLive).pipe(
  Layer.provideMerge(RecordsLive),
  Layer.provideMerge(AppConfigLive)
)

const withEnvironment: WithEnvironment = (environment) => (effect) =>
  Effect.provide(effect, DetectLive).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(environment))))
  )

const fail = (code: number, message: string) => Console.error(message).pipe(Effect.as(code))

const CLI_ERROR_TAGS = new Set([
  "ValidationError", "CommandMismatch", "InvalidValue", "MissingValue", "MissingFlag", "UnclusteredFlag",
  "MultipleValuesDetected", "CorrectedFlag", "InvalidArgument", "MissingSubcommand", "NoBuiltInMatch", "HelpRequested"
])

/** Map every way a run can end to one line and an exit code; never a stack trace, never a secret. */
const toExitCode = <E, R>(effect: Effect.Effect<unknown, E, R>): Effect.Effect<number, never, R> =>
  effect.pipe(
    Effect.as(ExitCode.ok as number),
    Effect.catchAll((error: unknown) => {
      if (error instanceof ExitWith) return Effect.succeed(error.code)
      if (ConfigError.isConfigError(error)) return fail(ExitCode.usage, `✗ Configuration error: ${describeConfigError(error)}`)
      if (typeof error === "object" && error !== null && "_tag" in error) {
        const tagged = error as { _tag: string; message?: string }
        if (tagged._tag === "DatabaseSetupError") return fail(ExitCode.usage, `✗ Configuration error: ${tagged.message}`)
        if (CLI_ERROR_TAGS.has(tagged._tag)) return Effect.succeed(ExitCode.usage as number)
      }
      if (error instanceof SqlError.SqlError) {
        const cause = error.cause as { message?: string } | undefined
        return fail(ExitCode.failed, `✗ Database unavailable: ${cause?.message ?? error.message}`)
      }
      const message =
        error instanceof Error
          ? error.message
          : typeof error === "object" && error !== null && "message" in error
            ? String((error as { message: unknown }).message)
            : String(error)
      return fail(ExitCode.failed, `✗ Run failed: ${message}`)
    })
  )

// The clock builds each job's layers per run, so no connection outlives a run.
const clockJobs = {
  cleanup: toExitCode(
    runCleanup({ dryRun: false }).pipe(
      Effect.flatMap((report) => exitWithCode(cleanupExitCode(report))),
      Effect.provide(CleanupLive)
    )
  ),
  detect: (days: number) =>
    toExitCode(
      runScheduledDetect(days).pipe(
        Effect.flatMap((report) => exitWithCode(detectExitCode(report))),
        Effect.provide(DetectLive)
      )
    )
}

const root = Command.make("promptflow-maint").pipe(
  Command.withDescription(
    "Maintenance jobs for PromptFlow's PostgreSQL database and Cloudinary account. Configuration comes from " +
      "the environment (DATABASE_URL, CLOUDINARY_URL, SMTP_URL, ADMIN_EMAIL, ...; see the README)."
  ),
  Command.withSubcommands([
    cleanupCommand.pipe(Command.provide(CleanupLive)),
    detectCommand.pipe(Command.provide(DetectLive)),
    runsCommand.pipe(Command.provide(RecordsLive)),
    makeClockCommand(clockJobs),
    makeDemoCommand(withEnvironment),
    makeDevCommand(PgLive)
  ])
)

const cli = Command.run(root, { name: "promptflow-maint", version: "0.1.0" })

const program = toExitCode(cli(process.argv)).pipe(
  Effect.onInterrupt(() => Console.error("✗ Interrupted: work in progress was rolled back; the next run resumes.")),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? (exit.value as number) : ExitCode.failed)
})
