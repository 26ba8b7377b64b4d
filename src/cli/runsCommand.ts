import { Args, Command, Options } from "@effect/cli"
import { stringify } from "csv-stringify/sync"
import { Console, Effect, Option, Stream } from "effect"
import { join } from "node:path"
import { defaultReportName, findingCsvRow, missingReportPath, ORPHAN_CSV_HEADER, PROMPT_CSV_HEADER } from "../domain/findings.js"
import { formatUtc } from "../domain/format.js"
import { Reports, writeFindingsCsv, type FindingGroup, type RunRecord } from "../services/Reports.js"
import { ExitWith } from "./exit.js"

const runLine = (run: RunRecord) =>
  [
    `#${run.id}`,
    run.job,
    formatUtc(run.startedAt),
    run.outcome,
    Object.entries(run.counts)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
    `admin_calls=${run.adminCalls}`,
    JSON.stringify(run.parameters),
    run.message ?? ""
  ]
    .filter((part) => part !== "")
    .join("  ")

const findRun = (runId: number) =>
  Effect.flatMap(Reports, (reports) => reports.getRun(runId)).pipe(
    Effect.flatMap(
      Option.match({
        onNone: () => Console.error(`✗ No run #${runId}`).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code: 1 })))),
        onSome: Effect.succeed
      })
    )
  )

const runId = Args.integer({ name: "run-id" }).pipe(Args.withDescription("The run's number, as `runs` lists it."))

const show = Command.make(
  "show",
  {
    runId,
    missing: Options.boolean("missing").pipe(Options.withDescription("Print the missing and unparseable files instead of the orphans."))
  },
  ({ runId, missing }) =>
    Effect.gen(function* () {
      const reports = yield* Reports
      yield* findRun(runId)
      const group: FindingGroup = missing ? "prompt" : "orphan"
      yield* Console.log(stringify([[...(missing ? PROMPT_CSV_HEADER : ORPHAN_CSV_HEADER)]]).trimEnd())
      yield* reports.findings(runId, group).pipe(
        Stream.runForEach((finding) => Console.log(stringify([[...findingCsvRow(finding)]]).trimEnd()))
      )
    })
).pipe(Command.withDescription("Print a run's findings as CSV on stdout (orphans, or with --missing the prompts whose file is missing or unparseable)."))

const exportCommand = Command.make(
  "export",
  {
    runId,
    output: Options.text("output").pipe(Options.withPseudoName("PATH"), Options.withDescription("Path of the orphan CSV; missing files go beside it as *_missing.csv."), Options.optional)
  },
  ({ runId, output }) =>
    Effect.gen(function* () {
      const run = yield* findRun(runId)
      const orphanPath = Option.getOrElse(output, () => join("reports", defaultReportName(run.startedAt)))
      const orphans = yield* writeFindingsCsv(runId, "orphan", orphanPath)
      yield* Console.log(`📄 Report saved: ${orphanPath} (${orphans} orphaned files)`)
      const missingPath = missingReportPath(orphanPath)
      const missing = yield* writeFindingsCsv(runId, "prompt", missingPath)
      yield* Console.log(`📄 Report saved: ${missingPath} (${missing} missing or unparseable)`)
    })
).pipe(Command.withDescription("Write a run's findings to CSV files again (the originals may have gone with the dyno)."))

export const runsCommand = Command.make(
  "runs",
  { limit: Options.integer("limit").pipe(Options.withPseudoName("N"), Options.withDefault(20), Options.withDescription("How many recent runs to list.")) },
  ({ limit }) =>
    Effect.gen(function* () {
      const reports = yield* Reports
      const runs = yield* reports.listRuns(limit)
      if (runs.length === 0) yield* Console.log("No runs recorded yet.")
      for (const run of runs) yield* Console.log(runLine(run))
    })
).pipe(
  Command.withDescription("List recent runs recorded in the database (newest first); `runs show ID` and `runs export ID` give a run's findings."),
  Command.withSubcommands([show, exportCommand])
)
