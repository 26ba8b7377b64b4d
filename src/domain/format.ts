/** Formatting shared by console lines, emails and reports. */

/** `2026-11-30 03:00:12 UTC` */
export const formatUtc = (date: Date): string => `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`

export const percent = (part: number, whole: number): string =>
  whole === 0 ? "0.0%" : `${((part / whole) * 100).toFixed(1)}%`

export const plural = (count: number, singular: string, pluralForm = `${singular}s`): string =>
  `${count} ${count === 1 ? singular : pluralForm}`

/** Replace every occurrence of each secret, so a message from a library can be shown safely. */
export const redact = (text: string, secrets: ReadonlyArray<string>): string =>
  secrets.reduce((result, secret) => (secret === "" ? result : result.split(secret).join("[redacted]")), text)

export const megabytes = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(2)

const DURATION_UNITS: Record<string, number> = {
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
  w: 604_800_000, week: 604_800_000, weeks: 604_800_000
}

/** `24h`, `45 minutes`, `2d`, `90m`: milliseconds, or null when the text is not a duration. */
export const parseDurationText = (text: string): number | null => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text)
  if (match === null) return null
  const unit = DURATION_UNITS[match[2]!.toLowerCase()]
  return unit === undefined ? null : Number(match[1]) * unit
}
