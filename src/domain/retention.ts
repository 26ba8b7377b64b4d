/** Retention rules of the trash: how long a trashed prompt is kept before it may be purged. */
export interface RetentionPolicy {
  readonly freeDays: number
  readonly premiumDays: number
}

export interface RetentionCutoffs {
  /** A free user's prompt trashed at or before this instant has expired. */
  readonly free: Date
  /** A premium user's prompt trashed at or before this instant has expired. */
  readonly premium: Date
}

const DAY_MS = 24 * 60 * 60 * 1000

export const cutoffsAt = (now: Date, policy: RetentionPolicy): RetentionCutoffs => ({
  free: new Date(now.getTime() - policy.freeDays * DAY_MS),
  premium: new Date(now.getTime() - policy.premiumDays * DAY_MS)
})

export const hasExpired = (
  prompt: { readonly deletedAt: Date | null; readonly premium: boolean },
  cutoffs: RetentionCutoffs
): boolean =>
  prompt.deletedAt !== null &&
  prompt.deletedAt.getTime() <= (prompt.premium ? cutoffs.premium : cutoffs.free).getTime()

/** Whole days since the prompt was trashed, as the original printed them. */
export const daysInTrash = (deletedAt: Date, now: Date): number =>
  Math.floor((now.getTime() - deletedAt.getTime()) / DAY_MS)
