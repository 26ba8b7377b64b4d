import { Chunk, Clock, Console, Duration, Effect, Either, Option, Stream } from "effect"
import { basename, join } from "node:path"
import { assetKey, parseCloudinaryField, type AssetRef, type ResourceType } from "../domain/cloudinaryField.js"
import { defaultReportName, missingReportPath, type OrphanFinding, type PromptFinding } from "../domain/findings.js"
import { formatUtc, megabytes, percent, plural } from "../domain/format.js"
import { AppConfig } from "../services/AppConfig.js"
import { Cloudinary, MAX_IDS_PER_CALL, MAX_SEARCH_RESULTS, type CloudinaryError, type RateLimitSnapshot, type SearchPage } from "../services/Cloudinary.js"
import { Database } from "../services/Database.js"
import type { MailAttachment, MailMessage } from "../services/Mailer.js"
import { Progress } from "../services/Progress.js"
import { ReferenceIndex, type StoredReference } from "../services/ReferenceIndex.js"
import { Reports, writeFindingsCsv, type ScanCheckpoint } from "../services/Reports.js"
import {
  describeCloudinaryError,
  describeDatabaseError,
  makeDeadline,
  makeQuotaGuard,
  retryTransient,
  type QuotaGuard
} from "./failurePolicy.js"
import { deliverSummary, type MailOutcome } from "./summaryMail.js"

export const DETECT_JOB = "detect-orphaned-files"
export const DETECT_SUBJECT = "PromptFlow: Orphaned Files Detection Report"
const PROMPT_PAGE = 1000
const EMAIL_LIST_LIMIT = 20
const LOW_QUOTA_SHARE = 0.2

export interface DetectOptions {
  /** Scan assets uploaded in the last N days; null scans the whole account. */
  readonly days: number | null
  /** Where the orphan CSV goes; by default reports/orphaned_files_<UTC time>.csv. */
  readonly output: Option.Option<string>
  /** Younger assets are never orphans (the upload race). */
  readonly gracePeriod: Duration.Duration
  readonly checkMissing: boolean
  readonly dryRun: boolean
}

export interface DetectReport {
  runId: number | null
  readonly startedAt: Date
  finishedAt: Date
  readonly options: DetectOptions
  complete: boolean
  stoppedReason: string | null
  totalFiles: number
  readonly byType: Record<string, number>
  validFiles: number
  orphanedFiles: number
  orphanBytes: number
  skippedForGrace: number
  missingFiles: number
  /** Whether the missing-file check ran to the end. */
  missingChecked: boolean
  unparseable: number
  referencesIndexed: number
  adminCalls: number
  rateLimit: RateLimitSnapshot | null
  readonly firstOrphans: Array<OrphanFinding>
  readonly firstMissing: Array<PromptFinding>
  orphanReportPath: string | null
  missingReportPath: string | null
  /** Set when a CSV could not be written (the findings are still in the database). */
  reportError: string | null
  /** The partial run whose checkpoint this one carried on from. */
  resumedFrom: number | null
  mail: MailOutcome
}

/** 0 when the scan completed, whatever it found; 1 when it stopped early, or the report or the email failed. */
export const detectExitCode = (report: DetectReport): 0 | 1 =>
  report.complete && report.mail.status !== "failed" && report.reportError === null ? 0 : 1

const scanRange = (options: DetectOptions, startedAt: Date) =>
  options.days === null
    ? "all files"
    : `files uploaded in the last ${plural(options.days, "day")} (since ${formatUtc(new Date(startedAt.getTime() - options.days * 86_400_000))})`

/** The window sits inside the expression, so assets outside it are neither listed nor billed. */
export const searchExpression = (days: number | null): string => (days === null ? "" : `uploaded_at>${days}d`)

const orphanLine = (f: OrphanFinding) =>
  `  Orphan: ${f.resourceType}/${f.deliveryType}/${f.publicId} (${megabytes(f.bytes)} MB, uploaded ${formatUtc(f.uploadedAt)})`

const rateLimitLine = (limit: RateLimitSnapshot) =>
  `API calls used: ${limit.limit - limit.remaining}/${limit.limit} (${percent(limit.limit - limit.remaining, limit.limit)}), resets at ${formatUtc(limit.resetAt)}`

export const detectSummaryLines = (report: DetectReport): ReadonlyArray<string> => {
  const total = report.totalFiles
  return [
    "",
    `Total Cloudinary files: ${total}${Object.keys(report.byType).length > 0 ? ` (${Object.entries(report.byType).map(([t, n]) => `${t}: ${n}`).join(", ")})` : ""}`,
    `Valid files: ${report.validFiles} (${percent(report.validFiles, total)})`,
    `Orphaned files: ${report.orphanedFiles} (${percent(report.orphanedFiles, total)}), ${megabytes(report.orphanBytes)} MB`,
    `Skipped, younger than the grace period: ${report.skippedForGrace}`,
    ...(report.options.checkMissing
      ? [`Missing files (referenced by a prompt, not on Cloudinary): ${report.missingChecked ? report.missingFiles : `${report.missingFiles} (check not completed)`}`]
      : []),
    `Unparseable media values in the database: ${report.unparseable}`,
    report.rateLimit !== null ? rateLimitLine(report.rateLimit) : "API calls used: unknown (no Admin API answer)",
    `Admin API calls by this run: ${report.adminCalls}`
  ]
}

export const detectEmail = (report: DetectReport, recipients: ReadonlyArray<string>, attachments: ReadonlyArray<MailAttachment>): MailMessage => {
  const more = report.orphanedFiles - report.firstOrphans.length
  const moreMissing = report.missingFiles - report.firstMissing.length
  return {
    to: recipients,
    subject: report.complete ? DETECT_SUBJECT : `${DETECT_SUBJECT} (partial scan)`,
    text: [
      DETECT_SUBJECT,
      "",
      `Run time: ${formatUtc(report.startedAt)}${report.runId !== null ? ` (run ${report.runId})` : ""}`,
      `Scan range: ${scanRange(report.options, report.startedAt)}`,
      `Grace period: ${Duration.format(report.options.gracePeriod)}`,
      ...(report.resumedFrom !== null ? [`Resumed the partial scan of run ${report.resumedFrom}; the figures cover both runs.`] : []),
      ...(report.complete ? [] : ["", `PARTIAL SCAN: ${report.stoppedReason ?? "stopped early"}. The figures below cover only what was scanned.`]),
      ...detectSummaryLines(report),
      `Total orphan size: ${megabytes(report.orphanBytes)} MB`,
      ...(report.firstOrphans.length > 0
        ? ["", "Orphaned files:", ...report.firstOrphans.map(orphanLine), ...(more > 0 ? [`  ... and ${more} more`] : [])]
        : []),
      ...(report.firstMissing.length > 0
        ? [
            "",
            "Missing or unparseable files:",
            ...report.firstMissing.map((m) => `  Prompt ${m.promptId} '${m.title}' by ${m.author} (${m.mediaType}): ${m.problem}${m.publicId !== null ? ` [${m.publicId}]` : ""}`),
            ...(moreMissing > 0 ? [`  ... and ${moreMissing} more`] : [])
          ]
        : []),
      "",
      ...[report.orphanReportPath, report.missingReportPath].flatMap((p) => (p !== null ? [`Report: ${p} (attached)`] : [])),
      ...(report.reportError !== null ? [`Report file not written: ${report.reportError}`] : []),
      report.runId !== null ? `The findings are kept in the database: promptflow-maint runs show ${report.runId}` : ""
    ].join("\n"),
    attachments
  }
}

/** Parse every prompt's media columns into the reference index; unparseable values become findings. */
const indexReferences = (runId: number, report: DetectReport) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const database = yield* Database
    const index = yield* ReferenceIndex
    const reports = yield* Reports
    const retry = retryTransient(config.retry)
    let afterId = 0
    while (true) {
      const rows = yield* retry(database.promptMedia({ afterId, limit: PROMPT_PAGE }))
      if (rows.length === 0) break
      afterId = rows[rows.length - 1]!.id
      const references: Array<StoredReference> = []
      const problems: Array<PromptFinding> = []
      for (const row of rows) {
        for (const [mediaType, value] of [["image", row.featuredImage], ["video", row.featuredVideo]] as const) {
          const parsed = parseCloudinaryField(value, mediaType)
          const base = { promptId: row.id, title: row.title, author: row.author, mediaType, storedValue: value ?? "" }
          if (parsed.kind === "asset") references.push({ ...base, asset: parsed.asset })
          else if (parsed.kind === "unparseable") problems.push({ ...base, kind: "unparseable", publicId: null, problem: `unparseable: ${parsed.reason}` })
          else if (parsed.kind === "placeholder") problems.push({ ...base, kind: "unparseable", publicId: null, problem: "legacy placeholder value, no Cloudinary asset" })
        }
      }
      yield* retry(index.add(runId, references))
      yield* retry(reports.recordFindings(runId, problems))
      report.referencesIndexed += references.length
      report.unparseable += problems.length
      for (const problem of problems) {
        if (report.firstMissing.length < EMAIL_LIST_LIMIT) report.firstMissing.push(problem)
        yield* Console.log(`  Unparseable: prompt ${problem.promptId} ${problem.mediaType} ${JSON.stringify(problem.storedValue)} (${problem.problem})`)
      }
    }
  })

/** Count an orphan into the report (the email lists the first few). */
const noteOrphan = (report: DetectReport, finding: OrphanFinding) => {
  report.orphanedFiles++
  report.orphanBytes += finding.bytes
  if (report.firstOrphans.length < EMAIL_LIST_LIMIT) report.firstOrphans.push(finding)
}

const checkpointCounts = (report: DetectReport): Record<string, number> => ({
  total: report.totalFiles,
  valid: report.validFiles,
  skippedForGrace: report.skippedForGrace,
  ...Object.fromEntries(Object.entries(report.byType).map(([type, n]) => [`type:${type}`, n]))
})

const resetScanCounts = (report: DetectReport) => {
  report.totalFiles = 0
  report.validFiles = 0
  report.skippedForGrace = 0
  report.orphanedFiles = 0
  report.orphanBytes = 0
  report.firstOrphans.length = 0
  for (const type of Object.keys(report.byType)) delete report.byType[type]
}

/**
 * Take over what a partial run already scanned: its counts, and its orphans re-checked against the
 * current references (a prompt saved since may now use one of them), a page at a time.
 */
const carryOver = (previousRunId: number, runId: number, checkpoint: ScanCheckpoint, report: DetectReport) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const index = yield* ReferenceIndex
    const reports = yield* Reports
    const retry = retryTransient(config.retry)
    report.totalFiles = checkpoint.counts["total"] ?? 0
    report.validFiles = checkpoint.counts["valid"] ?? 0
    report.skippedForGrace = checkpoint.counts["skippedForGrace"] ?? 0
    for (const [key, n] of Object.entries(checkpoint.counts)) {
      if (key.startsWith("type:")) report.byType[key.slice(5)] = n
    }
    yield* reports.findings(previousRunId, "orphan").pipe(
      Stream.grouped(MAX_SEARCH_RESULTS),
      Stream.runForEach((chunk) =>
        Effect.gen(function* () {
          const carried = Chunk.toReadonlyArray(chunk) as ReadonlyArray<OrphanFinding>
          const unreferenced = yield* retry(index.unreferenced(runId, carried))
          const stillOrphans = carried.filter((f) => unreferenced.has(assetKey(f)))
          report.validFiles += carried.length - stillOrphans.length
          for (const finding of stillOrphans) noteOrphan(report, finding)
          yield* retry(reports.recordFindings(runId, stillOrphans))
        })
      )
    )
  })

/** `detect-orphaned-files`: Cloudinary assets no prompt references, and prompts whose asset is gone. */
export const runDetect = (options: DetectOptions) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const cloudinary = yield* Cloudinary
    const database = yield* Database
    const index = yield* ReferenceIndex
    const reports = yield* Reports
    const progress = yield* Progress
    const quota = yield* makeQuotaGuard
    const retry = retryTransient(config.retry)

    const startedAt = new Date(yield* Clock.currentTimeMillis)
    const outOfTime = makeDeadline(startedAt, config.runTimeBudget)
    const graceCutoff = new Date(startedAt.getTime() - Duration.toMillis(options.gracePeriod))
    const report: DetectReport = {
      runId: null,
      startedAt,
      finishedAt: startedAt,
      options,
      complete: false,
      stoppedReason: null,
      totalFiles: 0,
      byType: {},
      validFiles: 0,
      orphanedFiles: 0,
      orphanBytes: 0,
      skippedForGrace: 0,
      missingFiles: 0,
      missingChecked: false,
      unparseable: 0,
      referencesIndexed: 0,
      adminCalls: 0,
      rateLimit: null,
      firstOrphans: [],
      firstMissing: [],
      orphanReportPath: null,
      missingReportPath: null,
      reportError: null,
      resumedFrom: null,
      mail: { status: "not-needed", detail: null }
    }

    yield* Console.log("🔍 Starting Cloudinary Orphaned File Detection")
    yield* Console.log(`Scan range: ${scanRange(options, startedAt)}`)
    yield* Console.log(`Grace period: ${Duration.format(options.gracePeriod)} (files uploaded after ${formatUtc(graceCutoff)} are never orphans)`)
    yield* Console.log(`Missing-file check: ${options.checkMissing ? "ON" : "OFF"}`)
    if (options.dryRun) yield* Console.log("Dry-run mode: ON (no report file, no email)")

    // Only a run of the same window may resume another; a dry-run never takes over a real scan.
    const scope = `${options.days === null ? "all" : `days:${options.days}`}${options.dryRun ? ":dry-run" : ""}`
    const runId = yield* retry(
      reports.startRun(
        DETECT_JOB,
        scope,
        { ...options, gracePeriod: Duration.format(options.gracePeriod), output: Option.getOrNull(options.output) },
        startedAt
      )
    )
    report.runId = runId

    const stopScan = (reason: string) =>
      Effect.sync(() => {
        report.stoppedReason ??= reason
      })
    const quotaReserveReached = Effect.map(cloudinary.rateLimit, (limit) =>
      Option.isSome(limit) && limit.value.remaining <= config.apiQuotaReserve
        ? `the Admin API quota is down to its reserve (${limit.value.remaining} left, API_QUOTA_RESERVE=${config.apiQuotaReserve})`
        : null
    )

    const scan = Effect.gen(function* () {
      // Two scans of one window at once would race for the same checkpoint.
      if (!(yield* retry(database.tryRunLock(`${DETECT_JOB}:${scope}`)))) {
        yield* stopScan("another scan of this window is running")
        return
      }
      yield* indexReferences(runId, report)
      yield* Console.log(`Prompt media references indexed: ${report.referencesIndexed} (unparseable: ${report.unparseable})`)

      // ---- resume a partial scan of the same window, if one stopped within the grace period ----
      let cursor: string | null = null
      const resumable = yield* retry(reports.resumable(DETECT_JOB, scope, runId, graceCutoff))
      if (Option.isSome(resumable)) {
        const { runId: previous, checkpoint } = resumable.value
        yield* Console.log(`↻ Resuming the scan of run #${previous} from its checkpoint (${checkpoint.counts["total"] ?? 0} files already scanned)`)
        yield* carryOver(previous, runId, checkpoint, report)
        report.resumedFrom = previous
        cursor = checkpoint.cursor
      }

      // ---- the scan: one Search stream over images and videos, 500 a page ----
      yield* progress.start("Scanning", null)
      let scanFinished = false
      while (true) {
        const stop = (yield* outOfTime) ?? (yield* quotaReserveReached)
        if (stop !== null) {
          yield* stopScan(stop)
          break
        }
        const page: Either.Either<SearchPage, CloudinaryError> = yield* quota
          .guard(retry(cloudinary.search({ expression: searchExpression(options.days), maxResults: MAX_SEARCH_RESULTS, nextCursor: cursor })))
          .pipe(Effect.either)
        if (page._tag === "Left" && page.left._tag === "CloudinaryRejected" && report.resumedFrom !== null && cursor !== null) {
          // A cursor Cloudinary no longer accepts: scan the window from the start instead.
          yield* Console.log(`↻ The checkpoint of run #${report.resumedFrom} was rejected (${page.left.message}); scanning from the start`)
          yield* retry(reports.discardFindings(runId, "orphan"))
          resetScanCounts(report)
          report.resumedFrom = null
          cursor = null
          continue
        }
        if (page._tag === "Left") {
          yield* stopScan(describeCloudinaryError(page.left))
          break
        }
        const assets = page.right.assets
        const keys: Array<AssetRef> = assets.map((a) => ({ resourceType: a.resourceType, deliveryType: a.deliveryType, publicId: a.publicId }))
        const unreferenced = yield* retry(index.unreferenced(runId, keys))
        const orphans: Array<OrphanFinding> = []
        for (const asset of assets) {
          report.totalFiles++
          report.byType[asset.resourceType] = (report.byType[asset.resourceType] ?? 0) + 1
          if (!unreferenced.has(assetKey(asset))) {
            report.validFiles++
          } else if (asset.createdAt.getTime() > graceCutoff.getTime()) {
            report.skippedForGrace++
          } else {
            const finding: OrphanFinding = {
              kind: "orphan",
              publicId: asset.publicId,
              resourceType: asset.resourceType,
              deliveryType: asset.deliveryType,
              bytes: asset.bytes,
              format: asset.format,
              uploadedAt: asset.createdAt,
              url: asset.secureUrl
            }
            orphans.push(finding)
            noteOrphan(report, finding)
            yield* Console.log(orphanLine(finding))
          }
        }
        yield* retry(reports.recordFindings(runId, orphans))
        yield* progress.advance(assets.length)
        cursor = page.right.nextCursor
        yield* retry(reports.saveCheckpoint(runId, cursor === null ? null : { cursor, counts: checkpointCounts(report) }))
        if (cursor === null) {
          scanFinished = true
          break
        }
      }
      yield* progress.finish

      // ---- missing files: prompts whose asset does not exist ----
      if (options.checkMissing && scanFinished) {
        // After a resumed scan, the first part's references were marked seen in the earlier run only.
        report.missingChecked = yield* checkMissing(runId, report, options.days === null && report.resumedFrom === null, quota)
      }
      report.complete = scanFinished && (!options.checkMissing || report.missingChecked)
    }).pipe(
      Effect.scoped,
      Effect.ensuring(progress.finish),
      Effect.catchTag("DatabaseError", (error) => stopScan(describeDatabaseError(error))),
      Effect.ensuring(index.clear(runId).pipe(Effect.ignore))
    )
    yield* scan

    report.adminCalls = yield* cloudinary.adminCalls
    report.rateLimit = Option.getOrNull(yield* cloudinary.rateLimit)
    for (const line of detectSummaryLines(report)) yield* Console.log(line)
    if (report.rateLimit !== null && report.rateLimit.remaining < report.rateLimit.limit * LOW_QUOTA_SHARE) {
      yield* Console.log(
        `⚠️  Warning: only ${report.rateLimit.remaining} of ${report.rateLimit.limit} Admin API calls left until ${formatUtc(report.rateLimit.resetAt)} (under 20%)`
      )
    }

    const found = report.orphanedFiles + report.missingFiles + report.unparseable > 0
    const attachments: Array<MailAttachment> = []
    if (found && !options.dryRun) {
      const orphanPath = Option.getOrElse(options.output, () => join(config.reportsDir, defaultReportName(startedAt)))
      const saveReport = (group: "orphan" | "prompt", path: string) =>
        writeFindingsCsv(runId, group, path).pipe(
          Effect.zipRight(Console.log(`📄 Report saved: ${path}`)),
          Effect.as(true),
          // The findings are safe in the database; a file that cannot be written is reported, not fatal.
          Effect.catchTag("ReportFileError", (error) =>
            Effect.sync(() => {
              report.reportError = `could not write ${error.path}: ${error.message}`
            }).pipe(Effect.zipRight(Console.log(`✗ Report not saved: ${error.path}: ${error.message}`)), Effect.as(false))
          )
        )
      if (report.orphanedFiles > 0 && (yield* saveReport("orphan", orphanPath))) {
        report.orphanReportPath = orphanPath
        attachments.push({ filename: basename(orphanPath), path: orphanPath, contentType: "text/csv" })
      }
      const promptPath = missingReportPath(orphanPath)
      if (report.missingFiles + report.unparseable > 0 && (yield* saveReport("prompt", promptPath))) {
        report.missingReportPath = promptPath
        attachments.push({ filename: basename(promptPath), path: promptPath, contentType: "text/csv" })
      }
    }

    report.finishedAt = new Date(yield* Clock.currentTimeMillis)
    report.mail = yield* deliverSummary({
      wanted: found || (!options.dryRun && !report.complete),
      dryRun: options.dryRun,
      message: () => detectEmail(report, config.adminEmails, attachments),
      sentPrefix: "📧 "
    })

    yield* retry(
      reports.finishRun(runId, {
        outcome: report.complete ? "complete" : "partial",
        finishedAt: report.finishedAt,
        counts: {
          total: report.totalFiles,
          valid: report.validFiles,
          orphaned: report.orphanedFiles,
          orphanBytes: report.orphanBytes,
          skippedForGrace: report.skippedForGrace,
          missing: report.missingFiles,
          unparseable: report.unparseable
        },
        adminCalls: report.adminCalls,
        rateLimit: report.rateLimit === null ? null : { ...report.rateLimit, resetAt: report.rateLimit.resetAt.toISOString() },
        message: report.stoppedReason,
        resumedFrom: report.resumedFrom
      })
    )

    yield* Console.log(
      report.complete ? "✅ Scan complete!" : `✗ Scan incomplete (partial): ${report.stoppedReason ?? "stopped early"}. Exit code 1.`
    )
    return report
  })

/** A scan as the scheduler runs it: the window, the configured grace period, the missing-file check, reports and email. */
export const runScheduledDetect = (days: number) =>
  Effect.flatMap(AppConfig, (config) =>
    runDetect({ days, output: Option.none(), gracePeriod: config.orphanGracePeriod, checkMissing: true, dryRun: false })
  )

/** References the scan did not see: gone for sure after a full-account scan, otherwise asked for by id, ≤ 100 a call. */
const checkMissing = (runId: number, report: DetectReport, scanCoveredAccount: boolean, quota: QuotaGuard) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const cloudinary = yield* Cloudinary
    const index = yield* ReferenceIndex
    const reports = yield* Reports
    const retry = retryTransient(config.retry)
    for (const group of yield* retry(index.unseenGroups(runId))) {
      let after = ""
      while (true) {
        const ids = yield* retry(index.unseenPublicIds(runId, group, after, MAX_IDS_PER_CALL))
        if (ids.length === 0) break
        after = ids[ids.length - 1]!
        let missing: ReadonlyArray<string> = ids
        if (!scanCoveredAccount) {
          const found = yield* quota.guard(retry(cloudinary.existingAssets(group.resourceType as ResourceType, group.deliveryType, ids))).pipe(Effect.either)
          if (found._tag === "Left") {
            report.stoppedReason ??= `missing-file check stopped: ${describeCloudinaryError(found.left)}`
            return false
          }
          const present = new Set(found.right.map((a) => a.publicId))
          missing = ids.filter((id) => !present.has(id))
        }
        const references = yield* retry(index.referencesTo(runId, group, missing))
        const findings: Array<PromptFinding> = references.map((r) => ({
          kind: "missing",
          promptId: r.promptId,
          title: r.title,
          author: r.author,
          mediaType: r.mediaType,
          publicId: r.asset.publicId,
          storedValue: r.storedValue,
          problem: `missing on Cloudinary (${assetKey(r.asset)})`
        }))
        yield* retry(reports.recordFindings(runId, findings))
        for (const finding of findings) {
          report.missingFiles++
          if (report.firstMissing.length < EMAIL_LIST_LIMIT) report.firstMissing.push(finding)
          yield* Console.log(`  Missing: prompt ${finding.promptId} '${finding.title}' ${finding.mediaType} ${finding.publicId}`)
        }
      }
    }
    return true
  })
