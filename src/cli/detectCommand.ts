import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Duration, Effect, Option } from "effect"
import { parseDurationText } from "../domain/format.js"
import { detectExitCode, runDetect } from "../jobs/detect.js"
import { AppConfig } from "../services/AppConfig.js"
import { exitWithCode } from "./exit.js"

const usage = (message: string) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(message)))

const windowOption = Options.all({
  days: Options.integer("days").pipe(
    Options.withPseudoName("N"),
    Options.withDescription("Scan files uploaded in the last N days (default 7, as in the scheduler guide)."),
    Options.optional
  ),
  all: Options.boolean("all").pipe(Options.withDescription("Scan the whole account instead of a window."))
}).pipe(
  Options.mapEffect(({ days, all }) => {
    if (all && Option.isSome(days)) return usage("Use either --days N or --all, not both.")
    if (all) return Effect.succeed(null)
    const value = Option.getOrElse(days, () => 7)
    return value >= 1 && value <= 3650 ? Effect.succeed(value) : usage("--days must be a whole number from 1 to 3650.")
  })
)

const minAgeOption = Options.text("min-age").pipe(
  Options.withPseudoName("DURATION"),
  Options.withDescription(
    "Grace period: files uploaded more recently are never called orphans (a user may still be saving the prompt). " +
      "Examples: 24h, 45m, 2d. Default: ORPHAN_GRACE_PERIOD, or 24 hours."
  ),
  Options.optional,
  Options.mapEffect((text) => {
    if (Option.isNone(text)) return Effect.succeed(Option.none<Duration.Duration>())
    const millis = parseDurationText(text.value)
    return millis === null || millis < 0
      ? usage(`--min-age: "${text.value}" is not a duration (examples: 24h, 45m, 2d).`)
      : Effect.succeed(Option.some(Duration.millis(millis)))
  })
)

export const detectCommand = Command.make(
  "detect-orphaned-files",
  {
    window: windowOption,
    output: Options.text("output").pipe(
      Options.withPseudoName("PATH"),
      Options.withDescription("Where to write the orphan CSV (default reports/orphaned_files_YYYY-MM-DD_HHMMSS.csv); missing files go beside it as *_missing.csv."),
      Options.optional
    ),
    minAge: minAgeOption,
    missing: Options.boolean("missing").pipe(
      Options.withDescription("Also find prompts whose referenced file does not exist on Cloudinary (at most one Admin call per 100 references outside the scan).")
    ),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Scan and print, but write no CSV and send no email."))
  },
  ({ window, output, minAge, missing, dryRun }) =>
    Effect.gen(function* () {
      const config = yield* AppConfig
      const report = yield* runDetect({
        days: window,
        output,
        gracePeriod: Option.getOrElse(minAge, () => config.orphanGracePeriod),
        checkMissing: missing,
        dryRun
      })
      yield* exitWithCode(detectExitCode(report))
    })
).pipe(
  Command.withDescription(
    "Find Cloudinary files that no prompt references (orphans) in a time window, and with --missing the prompts whose " +
      "file is gone. Uses the Search API with the window in the expression: ceil(files in window / 500) Admin calls. " +
      "Writes a CSV, keeps the findings in the database (see `runs`), emails ADMIN_EMAIL when anything is found. " +
      "Exit 0 when the scan completed (findings are not a failure), 1 when it failed or is partial, 2 for bad usage or configuration."
  )
)
