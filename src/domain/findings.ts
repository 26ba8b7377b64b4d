import type { DeliveryType, ResourceType } from "./cloudinaryField.js"
import { megabytes } from "./format.js"

/** What a scan found, one row each; persisted per run and exported as CSV. */
export interface OrphanFinding {
  readonly kind: "orphan"
  readonly publicId: string
  readonly resourceType: ResourceType
  readonly deliveryType: DeliveryType
  readonly bytes: number
  readonly format: string | null
  readonly uploadedAt: Date
  readonly url: string | null
}

export interface PromptFinding {
  /** missing: the referenced asset does not exist; unparseable: the stored value is not a CloudinaryField value. */
  readonly kind: "missing" | "unparseable"
  readonly promptId: number
  readonly title: string
  readonly author: string
  readonly mediaType: "image" | "video"
  readonly publicId: string | null
  readonly storedValue: string
  readonly problem: string
}

export type Finding = OrphanFinding | PromptFinding

export const ORPHAN_CSV_HEADER = ["public_id", "resource_type", "size_bytes", "size_mb", "format", "uploaded_at", "cloudinary_url"] as const

export const PROMPT_CSV_HEADER = ["prompt_id", "title", "author", "media_type", "public_id", "stored_value", "problem"] as const

export const orphanCsvRow = (f: OrphanFinding): ReadonlyArray<string> => [
  f.publicId,
  f.resourceType,
  String(f.bytes),
  megabytes(f.bytes),
  f.format ?? "",
  f.uploadedAt.toISOString(),
  f.url ?? ""
]

export const promptCsvRow = (f: PromptFinding): ReadonlyArray<string> => [
  String(f.promptId),
  f.title,
  f.author,
  f.mediaType,
  f.publicId ?? "",
  f.storedValue,
  f.problem
]

export const findingCsvRow = (finding: Finding): ReadonlyArray<string> =>
  finding.kind === "orphan" ? orphanCsvRow(finding) : promptCsvRow(finding)

/** `reports/orphaned_files_2026-11-30_040000.csv`, in UTC like the original's. */
export const defaultReportName = (at: Date): string => {
  const iso = at.toISOString()
  return `orphaned_files_${iso.slice(0, 10)}_${iso.slice(11, 19).replace(/:/g, "")}.csv`
}

/** The missing/unparseable report sits beside the orphan report: `x.csv` → `x_missing.csv`. */
export const missingReportPath = (orphanPath: string): string =>
  orphanPath.toLowerCase().endsWith(".csv") ? `${orphanPath.slice(0, -4)}_missing.csv` : `${orphanPath}_missing.csv`
