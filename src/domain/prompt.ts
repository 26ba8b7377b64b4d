/** A trashed prompt as the purge sees it. Ids are PostgreSQL bigints, well inside 2^53. */
export interface TrashedPrompt {
  readonly id: number
  readonly title: string
  readonly authorId: number
  readonly deletedAt: Date
  readonly premium: boolean
  readonly featuredImage: string | null
  readonly featuredVideo: string | null
}
