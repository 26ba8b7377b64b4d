import { Chunk, Clock, Console, Effect } from "effect"
import { assetKey, promptAssets, type AssetRef } from "../domain/cloudinaryField.js"
import { formatUtc, plural } from "../domain/format.js"
import type { TrashedPrompt } from "../domain/prompt.js"
import { cutoffsAt, daysInTrash, type RetentionCutoffs } from "../domain/retention.js"
import { AppConfig } from "../services/AppConfig.js"
import { Cloudinary, MAX_IDS_PER_CALL } from "../services/Cloudinary.js"
import { Database, type LockedBatch } from "../services/Database.js"
import type { MailMessage } from "../services/Mailer.js"
import { Progress } from "../services/Progress.js"
import {
  describeCloudinaryError,
  describeDatabaseError,
  makeDeadline,
  makeQuotaGuard,
  retryTransient,
  type QuotaGuard
} from "./failurePolicy.js"
import { deliverSummary, type MailOutcome } from "./summaryMail.js"

export const CLEANUP_JOB = "cleanup-deleted-prompts"
export const CLEANUP_SUBJECT = "PromptFlow: Daily Trash Cleanup Report"
const LIST_PAGE_SIZE = 500

export interface CleanupFailure {
  readonly id: number
  readonly title: string
  readonly premium: boolean
  readonly error: string
}

export interface TierCounts {
  processed: number
  deleted: number
  failed: number
}

export interface CleanupReport {
  readonly dryRun: boolean
  readonly startedAt: Date
  finishedAt: Date
  readonly cutoffs: RetentionCutoffs
  readonly retentionDays: { readonly free: number; readonly premium: number }
  expiredAtStart: number
  /** Prompts deleted, or in dry-run the prompts that would be. */
  successful: number
  failed: number
  /** Listed as expired, then restored or changed before the purge locked them. */
  skipped: number
  readonly free: TierCounts
  readonly premium: TierCounts
  assetsDeleted: number
  assetsAlreadyGone: number
  assetsKeptShared: number
  readonly failures: Array<CleanupFailure>
  /** Why the run stopped before the end of the trash, if it did. */
  stoppedEarly: string | null
  mail: MailOutcome
}

export const cleanupExitCode = (report: CleanupReport): 0 | 1 =>
  report.failed > 0 || report.stoppedEarly !== null || report.mail.status === "failed" ? 1 : 0

interface AssetDeletion {
  readonly status: "deleted" | "not_found" | "failed"
  readonly error: string | null
}

/** Delete the assets in bulk, grouped by resource and delivery type, ≤ 100 ids a call. */
const deleteAssetsInBulk = (assets: ReadonlyArray<AssetRef>, quota: QuotaGuard) =>
  Effect.gen(function* () {
    const cloudinary = yield* Cloudinary
    const config = yield* AppConfig
    const groups = new Map<string, Array<AssetRef>>()
    for (const asset of assets) {
      const group = `${asset.resourceType}/${asset.deliveryType}`
      groups.set(group, [...(groups.get(group) ?? []), asset])
    }
    const results = new Map<string, AssetDeletion>()
    for (const group of groups.values()) {
      for (const chunk of Chunk.chunksOf(Chunk.fromIterable(group), MAX_IDS_PER_CALL)) {
        const batch = Chunk.toReadonlyArray(chunk)
        const { resourceType, deliveryType } = batch[0]!
        const answer = yield* quota
          .guard(
            retryTransient(config.retry)(
              cloudinary.deleteAssets(resourceType, deliveryType, batch.map((a) => a.publicId))
            )
          )
          .pipe(Effect.either)
        for (const asset of batch) {
          if (answer._tag === "Left") {
            results.set(assetKey(asset), { status: "failed", error: describeCloudinaryError(answer.left) })
            continue
          }
          const status = answer.right.get(asset.publicId)
          results.set(
            assetKey(asset),
            status === "deleted" || status === "not_found"
              ? { status, error: null }
              : { status: "failed", error: `Cloudinary answered "${status ?? "nothing"}" for ${asset.publicId}` }
          )
        }
      }
    }
    return results
  })

interface BatchOutcome {
  readonly purge: ReadonlyArray<number>
  /** Dry-run: what would happen to each prompt, by id. */
  readonly previews: ReadonlyMap<number, string>
  readonly failures: ReadonlyArray<CleanupFailure>
  readonly locked: ReadonlyArray<TrashedPrompt>
  readonly assetsDeleted: number
  readonly assetsAlreadyGone: number
  readonly assetsKeptShared: number
}

/** Within the locked batch: delete what no other prompt uses, and purge exactly the prompts whose assets are gone. */
const decideBatch = (batch: LockedBatch, dryRun: boolean, quota: QuotaGuard) =>
  Effect.gen(function* () {
    const toDelete = new Map<string, AssetRef>()
    let assetsKeptShared = 0
    for (const prompt of batch.prompts) {
      for (const asset of promptAssets(prompt)) {
        const key = assetKey(asset)
        if (batch.sharedAssetKeys.has(key)) assetsKeptShared++
        else toDelete.set(key, asset)
      }
    }
    const results = dryRun ? new Map<string, AssetDeletion>() : yield* deleteAssetsInBulk([...toDelete.values()], quota)
    const previews = new Map<number, string>()
    const failures: Array<CleanupFailure> = []
    const purge: Array<number> = []
    for (const prompt of batch.prompts) {
      const describeAsset = (asset: AssetRef) =>
        `${assetKey(asset)}${batch.sharedAssetKeys.has(assetKey(asset)) ? " (kept: another prompt uses it)" : ""}`
      if (dryRun) {
        const assets = promptAssets(prompt).map(describeAsset)
        previews.set(
          prompt.id,
          `[DRY RUN] Would delete prompt ID ${prompt.id}${assets.length > 0 ? ` and ${assets.join(", ")}` : " (no Cloudinary asset)"}`
        )
        continue
      }
      const errors = promptAssets(prompt).flatMap((asset) => {
        const result = results.get(assetKey(asset))
        return result?.status === "failed" ? [result.error ?? "unknown error"] : []
      })
      if (errors.length === 0) {
        purge.push(prompt.id)
      } else {
        const error = [...new Set(errors)].join("; ")
        failures.push({ id: prompt.id, title: prompt.title, premium: prompt.premium, error })
      }
    }
    const statuses = [...results.values()].map((r) => r.status)
    return {
      purge,
      previews,
      failures,
      locked: batch.prompts,
      assetsDeleted: statuses.filter((s) => s === "deleted").length,
      assetsAlreadyGone: statuses.filter((s) => s === "not_found").length,
      assetsKeptShared
    } satisfies BatchOutcome
  })

const processingLine = (prompt: TrashedPrompt, now: Date) =>
  `Processing prompt ID ${prompt.id}: '${prompt.title}' (deleted ${daysInTrash(prompt.deletedAt, now)} days ago)`

export const summaryLines = (report: CleanupReport): ReadonlyArray<string> => [
  "",
  "Cleanup summary:",
  `  Total processed: ${report.successful + report.failed}`,
  `  Successful: ${report.successful}${report.dryRun ? " (would be deleted)" : ""}`,
  `  Failed: ${report.failed}`,
  `  Skipped (restored or changed during the run): ${report.skipped}`,
  `  Free users: ${report.free.processed} processed, ${report.free.deleted} deleted, ${report.free.failed} failed (retention ${report.retentionDays.free} days)`,
  `  Premium users: ${report.premium.processed} processed, ${report.premium.deleted} deleted, ${report.premium.failed} failed (retention ${report.retentionDays.premium} days)`,
  `  Cloudinary assets deleted: ${report.assetsDeleted}, already gone: ${report.assetsAlreadyGone}, kept because another prompt uses them: ${report.assetsKeptShared}`,
  ...(report.failures.length > 0
    ? ["", "Failed deletions:", ...report.failures.map((f) => `  - ID ${f.id} '${f.title}': ${f.error}`)]
    : []),
  ...(report.stoppedEarly !== null ? ["", `Run stopped early: ${report.stoppedEarly}`] : [])
]

export const cleanupEmail = (report: CleanupReport, recipients: ReadonlyArray<string>): MailMessage => ({
  to: recipients,
  subject: report.failed > 0 || report.stoppedEarly !== null ? `${CLEANUP_SUBJECT} (failures)` : CLEANUP_SUBJECT,
  text: [
    CLEANUP_SUBJECT,
    "",
    `Run time: ${formatUtc(report.startedAt)} (took ${((report.finishedAt.getTime() - report.startedAt.getTime()) / 1000).toFixed(1)} s)`,
    `Free cutoff: ${formatUtc(report.cutoffs.free)} (${report.retentionDays.free} days)`,
    `Premium cutoff: ${formatUtc(report.cutoffs.premium)} (${report.retentionDays.premium} days)`,
    ...summaryLines(report),
    "",
    report.failed > 0
      ? "Failed prompts stay in the trash with their files; the next run tries them again."
      : "Every expired prompt found was deleted."
  ].join("\n")
})

/** `cleanup-deleted-prompts`: purge trashed prompts past their retention, with their assets and dependent rows. */
export const runCleanup = (options: { readonly dryRun: boolean }) =>
  Effect.gen(function* () {
    const config = yield* AppConfig
    const database = yield* Database
    const progress = yield* Progress
    const quota = yield* makeQuotaGuard
    const retry = retryTransient(config.retry)

    const startedAt = new Date(yield* Clock.currentTimeMillis)
    const outOfTime = makeDeadline(startedAt, config.runTimeBudget)
    const cutoffs = cutoffsAt(startedAt, config.retention)
    const report: CleanupReport = {
      dryRun: options.dryRun,
      startedAt,
      finishedAt: startedAt,
      cutoffs,
      retentionDays: { free: config.retention.freeDays, premium: config.retention.premiumDays },
      expiredAtStart: 0,
      successful: 0,
      failed: 0,
      skipped: 0,
      free: { processed: 0, deleted: 0, failed: 0 },
      premium: { processed: 0, deleted: 0, failed: 0 },
      assetsDeleted: 0,
      assetsAlreadyGone: 0,
      assetsKeptShared: 0,
      failures: [],
      stoppedEarly: null,
      mail: { status: "not-needed", detail: null }
    }

    yield* Console.log("Starting cleanup of deleted prompts...")
    yield* Console.log(`Dry-run mode: ${options.dryRun ? "ON" : "OFF"}`)
    yield* Console.log(`Free user cutoff: ${formatUtc(cutoffs.free)} (${config.retention.freeDays} days)`)
    yield* Console.log(`Premium user cutoff: ${formatUtc(cutoffs.premium)} (${config.retention.premiumDays} days)`)
    yield* Console.log(
      `Premium tier source: ${config.premiumTier.kind === "none" ? "none (every user is free)" : `${config.premiumTier.table}.${config.premiumTier.column}`}`
    )

    const work = Effect.gen(function* () {
      if (!options.dryRun && !(yield* retry(database.tryRunLock(CLEANUP_JOB)))) {
        report.stoppedEarly = "another cleanup run holds the lock; nothing was done"
        return
      }
      report.expiredAtStart = yield* retry(database.countExpired(cutoffs))
      yield* Console.log(`Found ${plural(report.expiredAtStart, "expired prompt")} in the trash`)
      yield* progress.start(options.dryRun ? "Checking" : "Purging", report.expiredAtStart)
      let afterId = 0
      scan: while (true) {
        const page = yield* retry(database.expiredTrash(cutoffs, { afterId, limit: LIST_PAGE_SIZE }))
        if (page.length === 0) break
        afterId = page[page.length - 1]!.id
        for (const chunk of Chunk.chunksOf(Chunk.fromIterable(page), config.cleanupBatchSize)) {
          const late = yield* outOfTime
          if (late !== null) {
            report.stoppedEarly = late
            break scan
          }
          const listed = Chunk.toReadonlyArray(chunk)
          const outcome = yield* retry(
            database.purgeExpired(
              listed.map((p) => p.id),
              cutoffs,
              (batch) => decideBatch(batch, options.dryRun, quota)
            )
          ).pipe(Effect.either)
          if (outcome._tag === "Left") {
            const error = describeDatabaseError(outcome.left)
            for (const prompt of listed) {
              yield* Console.log(processingLine(prompt, startedAt))
              yield* Console.log(`✗ Failed to delete prompt ID ${prompt.id}: ${error}`)
              recordFailure(report, { id: prompt.id, title: prompt.title, premium: prompt.premium, error })
            }
          } else {
            yield* recordBatch(report, listed, outcome.right, startedAt)
          }
          yield* progress.advance(listed.length)
        }
      }
      const spent = yield* quota.exhausted
      if (spent !== null) report.stoppedEarly ??= `Cloudinary Admin API quota exhausted: ${spent.message}`
    }).pipe(
      Effect.scoped,
      Effect.catchTag("DatabaseError", (error) =>
        Effect.sync(() => {
          report.stoppedEarly = describeDatabaseError(error)
        })
      ),
      Effect.ensuring(progress.finish)
    )
    yield* work

    report.finishedAt = new Date(yield* Clock.currentTimeMillis)
    for (const line of summaryLines(report)) yield* Console.log(line)

    const processed = report.successful + report.failed
    report.mail = yield* deliverSummary({
      wanted: processed > 0 || (!options.dryRun && report.stoppedEarly !== null),
      dryRun: options.dryRun,
      message: () => cleanupEmail(report, config.adminEmails)
    })

    yield* Console.log(
      cleanupExitCode(report) === 0 ? "Cleanup complete!" : "Cleanup complete with errors (exit code 1)."
    )
    return report
  })

const tierOf = (report: CleanupReport, premium: boolean) => (premium ? report.premium : report.free)

const recordFailure = (report: CleanupReport, failure: CleanupFailure) => {
  report.failed++
  report.failures.push(failure)
  tierOf(report, failure.premium).processed++
  tierOf(report, failure.premium).failed++
}

const recordBatch = (
  report: CleanupReport,
  listed: ReadonlyArray<TrashedPrompt>,
  outcome: BatchOutcome,
  now: Date
) =>
  Effect.gen(function* () {
    const lockedIds = new Set(outcome.locked.map((p) => p.id))
    const purged = new Set(outcome.purge)
    const failures = new Map(outcome.failures.map((f) => [f.id, f]))
    for (const prompt of listed) {
      yield* Console.log(processingLine(prompt, now))
      if (!lockedIds.has(prompt.id)) {
        report.skipped++
        yield* Console.log(`- Skipped prompt ID ${prompt.id}: restored or changed during the run`)
        continue
      }
      const failure = failures.get(prompt.id)
      if (failure !== undefined) {
        yield* Console.log(`✗ Failed to delete prompt ID ${prompt.id}: ${failure.error}`)
        recordFailure(report, failure)
      } else if (report.dryRun || purged.has(prompt.id)) {
        yield* Console.log(outcome.previews.get(prompt.id) ?? `✓ Successfully deleted prompt ID ${prompt.id}`)
        report.successful++
        tierOf(report, prompt.premium).processed++
        tierOf(report, prompt.premium).deleted++
      }
    }
    report.assetsDeleted += outcome.assetsDeleted
    report.assetsAlreadyGone += outcome.assetsAlreadyGone
    report.assetsKeptShared += outcome.assetsKeptShared
  })
