import { SqlClient } from "@effect/sql"
import { stringify } from "csv-stringify/sync"
import { Chunk, Context, Data, Effect, Layer, Option, Stream } from "effect"
import { mkdirSync, openSync, closeSync, renameSync, rmSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import {
  findingCsvRow,
  ORPHAN_CSV_HEADER,
  PROMPT_CSV_HEADER,
  type Finding,
  type OrphanFinding,
  type PromptFinding
} from "../domain/findings.js"
import type { DeliveryType, ResourceType } from "../domain/cloudinaryField.js"
import { type DatabaseError, toDatabaseError } from "./Database.js"
import { OWN_SCHEMA } from "./Migrations.js"

/**
 * Where a run's results outlive the dyno: each run and its findings in the program's own schema,
 * and CSV files on disk (attached to the email).
 */
export type RunOutcome = "running" | "complete" | "partial" | "failed"

export interface RunRecord {
  readonly id: number
  readonly job: string
  readonly parameters: Record<string, unknown>
  readonly startedAt: Date
  readonly finishedAt: Date | null
  readonly outcome: RunOutcome
  readonly counts: Record<string, number>
  readonly adminCalls: number
  readonly rateLimit: Record<string, unknown> | null
  readonly message: string | null
}

/** Where a scan stood after its last complete page: enough for the next run to carry on from there. */
export interface ScanCheckpoint {
  readonly cursor: string
  readonly counts: Record<string, number>
}

export interface ResumableRun {
  readonly runId: number
  readonly checkpoint: ScanCheckpoint
}

export interface RunSummary {
  readonly outcome: Exclude<RunOutcome, "running">
  readonly finishedAt: Date
  readonly counts: Record<string, number>
  readonly adminCalls: number
  readonly rateLimit: Record<string, unknown> | null
  readonly message: string | null
  readonly resumedFrom: number | null
}

export class ReportFileError extends Data.TaggedError("ReportFileError")<{ readonly path: string; readonly message: string }> {}

export type FindingGroup = "orphan" | "prompt"

export interface ReportsShape {
  /** `scope` names what a run covers (a job's window): only a run of the same scope may resume it. */
  readonly startRun: (
    job: string,
    scope: string,
    parameters: Record<string, unknown>,
    startedAt: Date
  ) => Effect.Effect<number, DatabaseError>
  readonly saveCheckpoint: (runId: number, checkpoint: ScanCheckpoint | null) => Effect.Effect<void, DatabaseError>
  /**
   * The latest earlier run of this job and scope, when it stopped partial with a checkpoint and
   * started after `since` (files uploaded after it started are then all younger than the grace period).
   */
  readonly resumable: (job: string, scope: string, runId: number, since: Date) => Effect.Effect<Option.Option<ResumableRun>, DatabaseError>
  readonly discardFindings: (runId: number, group: FindingGroup) => Effect.Effect<void, DatabaseError>
  readonly recordFindings: (runId: number, findings: ReadonlyArray<Finding>) => Effect.Effect<void, DatabaseError>
  readonly finishRun: (runId: number, summary: RunSummary) => Effect.Effect<void, DatabaseError>
  readonly listRuns: (limit: number) => Effect.Effect<ReadonlyArray<RunRecord>, DatabaseError>
  readonly getRun: (runId: number) => Effect.Effect<Option.Option<RunRecord>, DatabaseError>
  /** A run's findings of one group, read page by page (memory stays flat however many there are). */
  readonly findings: (runId: number, group: FindingGroup) => Stream.Stream<Finding, DatabaseError>
}

export class Reports extends Context.Tag("promptflow/Reports")<Reports, ReportsShape>() {}

/**
 * Write rows as CSV (RFC 4180 quoting by csv-stringify) to a temporary file and rename it into place,
 * so a failure never leaves half a report behind. Returns the number of data rows.
 */
export const writeCsvFile = <E>(
  path: string,
  header: ReadonlyArray<string>,
  rows: Stream.Stream<ReadonlyArray<string>, E>
): Effect.Effect<number, E | ReportFileError> => {
  const temporary = `${path}.partial`
  const fileError = (error: unknown) =>
    new ReportFileError({ path, message: error instanceof Error ? error.message : String(error) })
  return Effect.acquireUseRelease(
    Effect.try({
      try: () => {
        mkdirSync(dirname(path), { recursive: true })
        const fd = openSync(temporary, "w")
        writeSync(fd, stringify([header as Array<string>]))
        return fd
      },
      catch: fileError
    }),
    (fd) =>
      rows.pipe(
        Stream.grouped(500),
        Stream.runFoldEffect(0, (count, chunk) =>
          Effect.try({
            try: () => {
              writeSync(fd, stringify(Chunk.toReadonlyArray(chunk) as Array<Array<string>>))
              return count + Chunk.size(chunk)
            },
            catch: fileError
          })
        ),
        Effect.tap(() => Effect.try({ try: () => renameSync(temporary, path), catch: fileError }))
      ),
    (fd, exit) =>
      Effect.sync(() => {
        closeSync(fd)
        if (exit._tag === "Failure") rmSync(temporary, { force: true })
      })
  )
}

/** A run's findings of one group as a CSV file (orphans, or missing and unparseable references). */
export const writeFindingsCsv = (runId: number, group: FindingGroup, path: string) =>
  Effect.flatMap(Reports, (reports) =>
    writeCsvFile(
      path,
      group === "orphan" ? ORPHAN_CSV_HEADER : PROMPT_CSV_HEADER,
      reports.findings(runId, group).pipe(Stream.map(findingCsvRow))
    )
  )

// ---- live layer ----

interface RunRow {
  readonly id: string
  readonly job: string
  readonly parameters: Record<string, unknown>
  readonly started_at: Date
  readonly finished_at: Date | null
  readonly outcome: RunOutcome
  readonly counts: Record<string, number>
  readonly admin_calls: number
  readonly rate_limit: Record<string, unknown> | null
  readonly message: string | null
}

const toRunRecord = (row: RunRow): RunRecord => ({
  id: Number(row.id),
  job: row.job,
  parameters: row.parameters,
  startedAt: new Date(row.started_at),
  finishedAt: row.finished_at === null ? null : new Date(row.finished_at),
  outcome: row.outcome,
  counts: row.counts,
  adminCalls: Number(row.admin_calls),
  rateLimit: row.rate_limit,
  message: row.message
})

interface FindingRow {
  readonly id: string
  readonly kind: Finding["kind"]
  readonly public_id: string | null
  readonly resource_type: string | null
  readonly delivery_type: string | null
  readonly size_bytes: string | null
  readonly format: string | null
  readonly uploaded_at: Date | null
  readonly url: string | null
  readonly prompt_id: string | null
  readonly title: string | null
  readonly author: string | null
  readonly media_type: string | null
  readonly stored_value: string | null
  readonly problem: string | null
}

const toFinding = (row: FindingRow): Finding =>
  row.kind === "orphan"
    ? ({
        kind: "orphan",
        publicId: row.public_id ?? "",
        resourceType: (row.resource_type ?? "image") as ResourceType,
        deliveryType: (row.delivery_type ?? "upload") as DeliveryType,
        bytes: Number(row.size_bytes ?? 0),
        format: row.format,
        uploadedAt: new Date(row.uploaded_at ?? 0),
        url: row.url
      } satisfies OrphanFinding)
    : ({
        kind: row.kind,
        promptId: Number(row.prompt_id),
        title: row.title ?? "",
        author: row.author ?? "",
        mediaType: (row.media_type ?? "image") as "image" | "video",
        publicId: row.public_id,
        storedValue: row.stored_value ?? "",
        problem: row.problem ?? ""
      } satisfies PromptFinding)

const FINDINGS_PAGE = 1000

export const makeSqlReports = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const runs = sql(`${OWN_SCHEMA}.runs`)
  const findingsTable = sql(`${OWN_SCHEMA}.findings`)

  const findingColumns = (runId: number, f: Finding) =>
    f.kind === "orphan"
      ? {
          run_id: runId,
          kind: f.kind,
          public_id: f.publicId,
          resource_type: f.resourceType,
          delivery_type: f.deliveryType,
          size_bytes: f.bytes,
          format: f.format,
          uploaded_at: f.uploadedAt,
          url: f.url,
          prompt_id: null,
          title: null,
          author: null,
          media_type: null,
          stored_value: null,
          problem: null
        }
      : {
          run_id: runId,
          kind: f.kind,
          public_id: f.publicId,
          resource_type: null,
          delivery_type: null,
          size_bytes: null,
          format: null,
          uploaded_at: null,
          url: null,
          prompt_id: f.promptId,
          title: f.title,
          author: f.author,
          media_type: f.mediaType,
          stored_value: f.storedValue,
          problem: f.problem
        }

  return Reports.of({
    startRun: (job, scope, parameters, startedAt) =>
      sql<{ id: string }>`INSERT INTO ${runs} (job, scope, parameters, started_at)
        VALUES (${job}, ${scope}, ${JSON.stringify(parameters)}::jsonb, ${startedAt}) RETURNING id`.pipe(
        Effect.map((rows) => Number(rows[0]!.id)),
        Effect.mapError(toDatabaseError("record the run"))
      ),
    saveCheckpoint: (runId, checkpoint) =>
      sql`UPDATE ${runs} SET checkpoint = ${checkpoint === null ? null : JSON.stringify(checkpoint)}::jsonb WHERE id = ${runId}`.pipe(
        Effect.asVoid,
        Effect.mapError(toDatabaseError("save the scan checkpoint"))
      ),
    resumable: (job, scope, runId, since) =>
      sql<{ id: string; outcome: RunOutcome; checkpoint: ScanCheckpoint | null; recent: boolean }>`
        SELECT id, outcome, checkpoint, started_at >= ${since} AS recent FROM ${runs}
        WHERE job = ${job} AND scope = ${scope} AND id <> ${runId}
        ORDER BY started_at DESC, id DESC LIMIT 1`.pipe(
        Effect.map((rows): Option.Option<ResumableRun> => {
          const last = rows[0]
          return last !== undefined && last.outcome === "partial" && last.checkpoint !== null && last.recent
            ? Option.some({ runId: Number(last.id), checkpoint: last.checkpoint })
            : Option.none()
        }),
        Effect.mapError(toDatabaseError("look for a scan to resume"))
      ),
    discardFindings: (runId, group) =>
      sql`DELETE FROM ${findingsTable} WHERE run_id = ${runId} AND kind IN ${sql.in(group === "orphan" ? ["orphan"] : ["missing", "unparseable"])}`.pipe(
        Effect.asVoid,
        Effect.mapError(toDatabaseError("discard findings"))
      ),
    recordFindings: (runId, findings) =>
      findings.length === 0
        ? Effect.void
        : sql`INSERT INTO ${findingsTable} ${sql.insert(findings.map((f) => findingColumns(runId, f)))}`.pipe(
            Effect.asVoid,
            Effect.mapError(toDatabaseError("record findings"))
          ),
    finishRun: (runId, summary) =>
      sql`UPDATE ${runs} SET outcome = ${summary.outcome}, finished_at = ${summary.finishedAt},
            counts = ${JSON.stringify(summary.counts)}::jsonb, admin_calls = ${summary.adminCalls},
            rate_limit = ${summary.rateLimit === null ? null : JSON.stringify(summary.rateLimit)}::jsonb, message = ${summary.message},
            resumed_from = ${summary.resumedFrom}
          WHERE id = ${runId}`.pipe(Effect.asVoid, Effect.mapError(toDatabaseError("record the run's outcome"))),
    listRuns: (limit) =>
      sql<RunRow>`SELECT * FROM ${runs} ORDER BY started_at DESC, id DESC LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(toRunRecord)),
        Effect.mapError(toDatabaseError("list runs"))
      ),
    getRun: (runId) =>
      sql<RunRow>`SELECT * FROM ${runs} WHERE id = ${runId}`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]).pipe(Option.map(toRunRecord))),
        Effect.mapError(toDatabaseError("read the run"))
      ),
    findings: (runId, group) => {
      const kinds = group === "orphan" ? ["orphan"] : ["missing", "unparseable"]
      return Stream.paginateChunkEffect(0, (afterId: number) =>
        sql<FindingRow>`SELECT * FROM ${findingsTable} WHERE run_id = ${runId} AND kind IN ${sql.in(kinds)} AND id > ${afterId}
          ORDER BY id LIMIT ${FINDINGS_PAGE}`.pipe(
          Effect.map((rows) => [
            Chunk.fromIterable(rows.map(toFinding)),
            rows.length === FINDINGS_PAGE ? Option.some(Number(rows[rows.length - 1]!.id)) : Option.none()
          ] as const),
          Effect.mapError(toDatabaseError("read findings"))
        )
      )
    }
  })
})

export const ReportsLive = Layer.effect(Reports, makeSqlReports)

// ---- in-memory layer ----

export interface InMemoryReportsState {
  readonly runs: Array<{ -readonly [K in keyof RunRecord]: RunRecord[K] } & { scope: string; checkpoint: ScanCheckpoint | null }>
  readonly findings: Array<{ runId: number; finding: Finding }>
}

export const makeInMemoryReportsState = (): InMemoryReportsState => ({ runs: [], findings: [] })

export const ReportsInMemory = (state: InMemoryReportsState) =>
  Layer.succeed(
    Reports,
    Reports.of({
      startRun: (job, scope, parameters, startedAt) =>
        Effect.sync(() => {
          const id = state.runs.length + 1
          state.runs.push({ id, job, scope, parameters, startedAt, finishedAt: null, outcome: "running", counts: {}, adminCalls: 0, rateLimit: null, message: null, checkpoint: null })
          return id
        }),
      saveCheckpoint: (runId, checkpoint) =>
        Effect.sync(() => {
          const run = state.runs.find((r) => r.id === runId)
          if (run !== undefined) run.checkpoint = checkpoint
        }),
      resumable: (job, scope, runId, since) =>
        Effect.sync(() => {
          const last = state.runs.filter((r) => r.job === job && r.scope === scope && r.id !== runId).at(-1)
          return last !== undefined && last.outcome === "partial" && last.checkpoint !== null &&
            last.startedAt.getTime() >= since.getTime()
            ? Option.some({ runId: last.id, checkpoint: last.checkpoint })
            : Option.none()
        }),
      discardFindings: (runId, group) =>
        Effect.sync(() => {
          for (let i = state.findings.length - 1; i >= 0; i--) {
            const f = state.findings[i]!
            if (f.runId === runId && (group === "orphan") === (f.finding.kind === "orphan")) state.findings.splice(i, 1)
          }
        }),
      recordFindings: (runId, findings) =>
        Effect.sync(() => {
          for (const finding of findings) state.findings.push({ runId, finding })
        }),
      finishRun: (runId, summary) =>
        Effect.sync(() => {
          const run = state.runs.find((r) => r.id === runId)
          if (run !== undefined) {
            const { resumedFrom: _resumedFrom, ...recorded } = summary
            Object.assign(run, recorded)
          }
        }),
      listRuns: (limit) => Effect.sync(() => [...state.runs].reverse().slice(0, limit)),
      getRun: (runId) => Effect.sync(() => Option.fromNullable(state.runs.find((r) => r.id === runId))),
      findings: (runId, group) =>
        Stream.fromIterable(
          state.findings
            .filter((f) => f.runId === runId && (group === "orphan") === (f.finding.kind === "orphan"))
            .map((f) => f.finding)
        )
    })
  )
