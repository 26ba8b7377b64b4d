import { Data } from "effect"

/** Exit codes a scheduler can act on. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2
} as const

/** A job that finished but must make the process exit non-zero (failures, partial scan, unsent mail). */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}
