import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Config, Cron, Effect, Either } from "effect"
import { runClock } from "../jobs/clock.js"

export interface ClockJobs {
  readonly cleanup: Effect.Effect<number>
  readonly detect: (days: number) => Effect.Effect<number>
}

const cronOption = (name: string, variable: string, fallback: string, what: string) =>
  Options.text(name).pipe(
    Options.withDescription(`${what} (cron, UTC; env ${variable}; default "${fallback}").`),
    Options.withFallbackConfig(Config.string(variable)),
    Options.withDefault(fallback),
    Options.mapEffect((expression) =>
      Either.isRight(Cron.parse(expression, "UTC"))
        ? Effect.succeed(expression)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name}: "${expression}" is not a cron expression`)))
    )
  )

/** The three jobs of the original scheduler guide, on the program's own clock (Procfile `clock:`). */
export const makeClockCommand = (jobs: ClockJobs) =>
  Command.make(
    "clock",
    {
      cleanupCron: cronOption("cleanup-cron", "CLOCK_CLEANUP_CRON", "0 3 * * *", "Trash cleanup"),
      detectCron: cronOption("detect-cron", "CLOCK_DETECT_CRON", "0 4 * * *", "Orphan detection, last 7 days"),
      deepScanCron: cronOption("deep-scan-cron", "CLOCK_DEEP_SCAN_CRON", "0 5 * * 0", "Deep scan, last 90 days")
    },
    ({ cleanupCron, detectCron, deepScanCron }) =>
      runClock([
        { name: "cleanup-deleted-prompts", cron: cleanupCron, run: jobs.cleanup },
        { name: "detect-orphaned-files --days 7", cron: detectCron, run: jobs.detect(7) },
        { name: "detect-orphaned-files --days 90", cron: deepScanCron, run: jobs.detect(90) }
      ]).pipe(Effect.asVoid)
  ).pipe(
    Command.withDescription(
      "Run the jobs on their own schedule (a Heroku clock dyno instead of Heroku Scheduler): cleanup daily 03:00 UTC, " +
        "orphan detection (7 days) daily 04:00 UTC, deep scan (90 days) Sundays 05:00 UTC. A failed run is reported and the clock goes on."
    )
  )
