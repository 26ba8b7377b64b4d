/** Formatting shared by console lines, emails and reports. */

/** `2026-11-30 03:00:12 UTC` */
export const formatUtc = (date: Date): string => `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`

export const percent = (part: number, whole: number): string =>
  whole === 0 ? "0.0%" : `${((part / whole) * 100).toFixed(1)}%`

export const plural = (count: number, singular: string, pluralForm = `${singular}s`): string =>
  `${count} ${count === 1 ? singular : pluralForm}`

export const megabytes = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(2)
